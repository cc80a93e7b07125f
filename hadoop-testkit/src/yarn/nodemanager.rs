//! A test NodeManager: `ContainerManagementProtocol` behind NMToken authentication, and the
//! container launcher (localize from HDFS, write the token file and launch script, run).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use eddy_hadoop_ipc::credentials::Credentials;
use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_hadoop_ipc::protocols::CONTAINER_MANAGEMENT;
use eddy_hadoop_ipc::server::{reply, Call, CallResult, IpcServer, RpcException, RpcHandler, SaslOffer, TokenSecrets};
use prost::Message;

use super::state::{attempt_id, container_id_text, exit_status, Node, Shared};

/// One lock per localized file: containers starting together wait for a single download.
static LOCALIZING: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<tokio::sync::Mutex<()>>>>> =
    std::sync::LazyLock::new(Default::default);

const INVALID_TOKEN: &str = "org.apache.hadoop.security.token.SecretManager$InvalidToken";

#[derive(Debug)]
pub(crate) struct NodeManager {
    server: IpcServer,
}

impl NodeManager {
    pub async fn start(shared: Shared, index: usize, dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let secrets = NmSecrets { shared: shared.clone(), index };
        let service = ContainerService { shared: shared.clone(), index };
        let server = IpcServer::bind_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            std::sync::Arc::new(service),
            SaslOffer::TokenOnly(std::sync::Arc::new(secrets)),
        )
        .await?;
        let addr = server.local_addr();
        if let Ok(mut s) = shared.lock() {
            s.nodes.push(Node {
                id: NodeIdProto { host: Some(addr.ip().to_string()), port: Some(i32::from(addr.port())) },
                dir,
                used_mb: 0,
                used_vcores: 0,
            });
        }
        Ok(Self { server })
    }

    pub fn stop(&self) {
        self.server.stop();
    }
}

fn nm_identifier(identifier: &[u8]) -> Result<NmTokenIdentifierProto, String> {
    NmTokenIdentifierProto::decode(identifier).map_err(|_| "not an NMToken identifier".to_string())
}

/// The NMToken secret manager of node `index`: tokens for this node, of live applications.
struct NmSecrets {
    shared: Shared,
    index: usize,
}

impl TokenSecrets for NmSecrets {
    fn password(&self, identifier: &[u8]) -> Result<Vec<u8>, String> {
        let id = nm_identifier(identifier)?;
        let s = self.shared.lock().map_err(|_| "state lock poisoned".to_string())?;
        if id.node_id.as_ref() != Some(&s.nodes[self.index].id) {
            return Err(format!("Given NMToken for application {:?} is not valid for current node manager", id.app_attempt_id));
        }
        Ok(s.password(identifier))
    }
}

struct ContainerService {
    shared: Shared,
    index: usize,
}

fn container_exception(id: Option<ContainerIdProto>, class: &str, message: String) -> ContainerExceptionMapProto {
    ContainerExceptionMapProto {
        container_id: id,
        exception: Some(SerializedExceptionProto { message: Some(message), class_name: Some(class.into()), ..Default::default() }),
    }
}

impl ContainerService {
    fn attempt_of_caller(&self, call: &Call) -> Result<ApplicationAttemptIdProto, RpcException> {
        let identifier = call.token_identifier.as_ref().ok_or_else(|| RpcException::new(INVALID_TOKEN, "no NMToken"))?;
        let id = nm_identifier(identifier).map_err(|e| RpcException::new(INVALID_TOKEN, e))?;
        id.app_attempt_id.ok_or_else(|| RpcException::new(INVALID_TOKEN, "an NMToken without an attempt"))
    }

    /// Checks one start request as the NodeManager does; the container id on success.
    fn check_start(&self, attempt: &ApplicationAttemptIdProto, request: &StartContainerRequestProto) -> Result<String, String> {
        let token = request.container_token.as_ref().ok_or("no container token")?;
        let s = self.shared.lock().map_err(|_| "state lock poisoned".to_string())?;
        if s.password(&token.identifier) != token.password {
            return Err("the container token's password is wrong: it was not issued by this ResourceManager".into());
        }
        let id = ContainerTokenIdentifierProto::decode(token.identifier.as_slice()).map_err(|_| "not a container token")?;
        let container = container_id_text(id.container_id.as_ref());
        if id.nm_host_addr.as_deref() != Some(s.node_address(self.index).as_str()) {
            return Err(format!("the container token of {container} was issued for {:?}, not this node", id.nm_host_addr));
        }
        if id.container_id.and_then(|c| c.app_attempt_id).as_ref() != Some(attempt) {
            return Err(format!("the NMToken's application attempt did not get {container}"));
        }
        match s.containers.get(&container) {
            Some(c) if c.started => Err(format!("Container {container} is already started")),
            Some(c) if c.status.is_some() => Err(format!("Container {container} has already completed")),
            Some(_) => Ok(container),
            None => Err(format!("unknown container {container}")),
        }
    }
}

#[async_trait]
impl RpcHandler for ContainerService {
    async fn call(&self, call: Call) -> CallResult {
        call.expect_protocol(CONTAINER_MANAGEMENT)?;
        let attempt = self.attempt_of_caller(&call)?;
        match call.method.as_str() {
            "startContainers" => {
                let q: StartContainersRequestProto = call.decode()?;
                let mut response = StartContainersResponseProto::default();
                for request in q.start_container_request {
                    let token_id = request
                        .container_token
                        .as_ref()
                        .and_then(|t| ContainerTokenIdentifierProto::decode(t.identifier.as_slice()).ok())
                        .and_then(|t| t.container_id);
                    match self.check_start(&attempt, &request) {
                        Ok(container) => {
                            let dir = match self.shared.lock() {
                                Ok(mut s) => {
                                    if let Some(c) = s.containers.get_mut(&container) {
                                        c.started = true;
                                    }
                                    s.nodes[self.index].dir.clone()
                                }
                                Err(_) => return Err(RpcException::new("java.io.IOException", "state lock poisoned")),
                            };
                            let context = request.container_launch_context.unwrap_or_default();
                            spawn_launch(self.shared.clone(), self.index, container, context, Vec::new(), dir);
                            response.succeeded_requests.extend(token_id);
                        }
                        Err(why) => response.failed_requests.push(container_exception(
                            token_id,
                            "org.apache.hadoop.yarn.exceptions.YarnException",
                            format!("Unauthorized request to start container. {why}"),
                        )),
                    }
                }
                reply(&response)
            }
            "stopContainers" => {
                let q: StopContainersRequestProto = call.decode()?;
                let mut response = StopContainersResponseProto::default();
                let mut s = self.shared.lock().map_err(|_| RpcException::new("java.io.IOException", "state lock poisoned"))?;
                for id in q.container_id {
                    let text = container_id_text(Some(&id));
                    let ours = s.containers.get(&text).is_some_and(|c| Some(attempt_id(s.cluster_timestamp, c.app)) == Some(attempt));
                    if ours {
                        s.kill_locked(&text, exit_status::KILLED_BY_APPMASTER, "Container killed by the ApplicationMaster.");
                        response.succeeded_requests.push(id);
                    } else {
                        response.failed_requests.push(container_exception(
                            Some(id),
                            "org.apache.hadoop.yarn.exceptions.YarnException",
                            format!("Unauthorized request to stop container {text}"),
                        ));
                    }
                }
                reply(&response)
            }
            "getContainerStatuses" => {
                let q: GetContainerStatusesRequestProto = call.decode()?;
                let s = self.shared.lock().map_err(|_| RpcException::new("java.io.IOException", "state lock poisoned"))?;
                let mut response = GetContainerStatusesResponseProto::default();
                for id in q.container_id {
                    let text = container_id_text(Some(&id));
                    match s.containers.get(&text).filter(|c| c.node == self.index) {
                        Some(c) => {
                            let (state, exit, diagnostics) = match &c.status {
                                Some((e, d)) => (ContainerStateProto::CComplete, *e, d.clone()),
                                None if c.pid.is_some() => (ContainerStateProto::CRunning, exit_status::INVALID, String::new()),
                                None => (ContainerStateProto::CNew, exit_status::INVALID, String::new()),
                            };
                            response.status.push(ContainerStatusProto {
                                container_id: Some(id),
                                state: Some(state as i32),
                                exit_status: Some(exit),
                                diagnostics: Some(diagnostics),
                                capability: c.proto.resource,
                                ..Default::default()
                            });
                        }
                        None => response.failed_requests.push(container_exception(
                            Some(id),
                            "org.apache.hadoop.yarn.exceptions.InvalidContainerException",
                            format!("Container {text} is not handled by this NodeManager"),
                        )),
                    }
                }
                reply(&response)
            }
            _ => Err(call.no_such_method("the test NodeManager serves startContainers, stopContainers, getContainerStatuses")),
        }
    }
}

/// Launches a container in the background; failures complete it with YARN's exit status
/// for launch failures and the reason in its diagnostics.
pub(crate) fn spawn_launch(
    shared: Shared,
    node: usize,
    container: String,
    context: ContainerLaunchContextProto,
    extra_tokens: Vec<(String, TokenProto)>,
    dir: PathBuf,
) {
    tokio::spawn(async move {
        if let Err(why) = launch(&shared, node, &container, context, extra_tokens, &dir).await {
            if let Ok(mut s) = shared.lock() {
                s.complete(&container, exit_status::INVALID, why);
            }
        }
    });
}

/// Single-quoted for bash: nothing inside expands.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `{{VAR}}` is Hadoop's cross-platform form of `$VAR`; `<LOG_DIR>` the container's log dir.
fn expand(s: &str, log_dir: &Path) -> String {
    let mut out = s.replace("<LOG_DIR>", &log_dir.to_string_lossy()).replace("<CPS>", ":");
    while let (Some(a), Some(b)) = (out.find("{{"), out.find("}}")) {
        if b < a {
            break;
        }
        out = format!("{}${}{}", &out[..a], &out[a + 2..b], &out[b + 2..]);
    }
    out
}

async fn localize(resource: &LocalResourceProto, to: &Path) -> Result<(), String> {
    let url = resource.resource.clone().unwrap_or_default();
    let scheme = url.scheme.unwrap_or_default();
    let file = url.file.unwrap_or_default();
    let text = format!("{scheme}://{}:{}{file}", url.host.as_deref().unwrap_or(""), url.port.unwrap_or(0));
    let bytes = match scheme.as_str() {
        "hdfs" => {
            let client = hdfs_native::ClientBuilder::new()
                .with_url(format!("hdfs://{}:{}", url.host.as_deref().unwrap_or(""), url.port.unwrap_or(0)))
                .build()
                .map_err(|e| format!("cannot localize {text}: {e}"))?;
            let status = client.get_file_info(&file).await.map_err(|e| format!("cannot localize {text}: {e}"))?;
            if status.length as i64 != resource.size.unwrap_or(-1) || status.modification_time as i64 != resource.timestamp.unwrap_or(-1) {
                return Err(format!(
                    "Resource {text} changed on src filesystem - expected: size {:?}, timestamp {:?}, was: size {}, timestamp {}",
                    resource.size, resource.timestamp, status.length, status.modification_time
                ));
            }
            let reader = client.read(&file).await.map_err(|e| format!("cannot localize {text}: {e}"))?;
            reader.read_range(0, reader.file_length()).await.map_err(|e| format!("cannot localize {text}: {e}"))?.to_vec()
        }
        "file" => std::fs::read(&file).map_err(|e| format!("cannot localize {text}: {e}"))?,
        other => return Err(format!("cannot localize {text}: this test NodeManager reads hdfs:// and file:// only, not {other}://")),
    };
    // An ARCHIVE (type 1 in yarn_protos' LocalResourceTypeProto) is unpacked into a directory
    // of the resource's name, as YARN's localizer does; zip archives only here.
    if resource.r#type == Some(1) {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("cannot unpack {text}: {e} (zip archives only here)"))?;
        return archive.extract(to).map_err(|e| format!("cannot unpack {text} into {}: {e}", to.display()));
    }
    std::fs::write(to, bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // YARN localizes application files read+execute for the owner.
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o500)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Where a container lives on its node, and whose it is.
struct ContainerPlace {
    user: String,
    nm_host: String,
    nm_port: i32,
    /// The working directory.
    work: PathBuf,
    /// The application's file cache on this node.
    cache: PathBuf,
    /// `<LOG_DIR>`.
    logs: PathBuf,
}

fn io(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

/// Launches a container as a NodeManager does, phase by phase: directories, localized
/// resources, the token file, the launch script, the process; then records how it ended.
async fn launch(
    shared: &Shared,
    node: usize,
    container: &str,
    context: ContainerLaunchContextProto,
    extra_tokens: Vec<(String, TokenProto)>,
    dir: &Path,
) -> Result<(), String> {
    let place = place_of(shared, node, container, dir)?;
    localize_resources(&context, container, &place).await?;
    let token_file = write_tokens(&context, extra_tokens, &place)?;
    let script = write_launch_script(&context, container, &place, &token_file)?;
    let Some(code) = run(shared, container, &script, &place.work).await? else {
        return Ok(());
    };
    record_end(shared, container, code, &place.logs);
    Ok(())
}

fn place_of(shared: &Shared, node: usize, container: &str, dir: &Path) -> Result<ContainerPlace, String> {
    let (app, user, nm_host, nm_port) = {
        let s = shared.lock().map_err(|_| "state lock poisoned".to_string())?;
        let c = s.containers.get(container).ok_or("unknown container")?;
        let app_text = format!("application_{}_{:04}", s.cluster_timestamp, c.app);
        let user = s.apps.get(&c.app).map(|a| a.user.clone()).unwrap_or_default();
        let id = &s.nodes[node].id;
        (app_text, user, id.host.clone().unwrap_or_default(), id.port.unwrap_or(0))
    };
    let work = dir.join("usercache").join(&user).join("appcache").join(&app).join(container);
    // APPLICATION (and PUBLIC) resources are fetched once per node and application and shared
    // by its containers, as YARN's localizer does; PRIVATE ones per container here.
    let cache = dir.join("appcache").join(&app).join("filecache");
    let logs = dir.join("logs").join(&app).join(container);
    for d in [&work, &cache, &logs] {
        std::fs::create_dir_all(d).map_err(|e| io("cannot create container directories", e))?;
    }
    Ok(ContainerPlace { user, nm_host, nm_port, work, cache, logs })
}

async fn localize_resources(context: &ContainerLaunchContextProto, container: &str, place: &ContainerPlace) -> Result<(), String> {
    let (work, cache) = (&place.work, &place.cache);
    for entry in &context.local_resources {
        let name = entry.key.clone().unwrap_or_default();
        if name.is_empty() || name.contains('/') {
            return Err(format!("invalid local resource name {name:?}"));
        }
        let resource = entry.value.clone().unwrap_or_default();
        let shared = resource.visibility != Some(LocalResourceVisibilityProto::Private as i32);
        let localized = if shared { cache.join(&name) } else { cache.join(container).join(&name) };
        std::fs::create_dir_all(localized.parent().unwrap_or(cache)).map_err(|e| io("cannot create the file cache", e))?;
        {
            // One download per file; containers starting together wait for it.
            let lock = LOCALIZING.lock().map(|mut m| m.entry(localized.clone()).or_default().clone()).unwrap_or_default();
            let _one_at_a_time = lock.lock().await;
            if !localized.exists() {
                let partial = localized.with_extension("partial");
                localize(&resource, &partial).await?;
                std::fs::rename(&partial, &localized).map_err(|e| io("cannot place a localized file", e))?;
            }
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&localized, work.join(&name)).map_err(|e| io("cannot link a local resource", e))?;
    }
    Ok(())
}

fn write_tokens(
    context: &ContainerLaunchContextProto,
    extra_tokens: Vec<(String, TokenProto)>,
    place: &ContainerPlace,
) -> Result<PathBuf, String> {
    let mut credentials = match context.tokens.as_deref() {
        Some(bytes) if !bytes.is_empty() => Credentials::from_bytes(bytes).map_err(|e| format!("bad tokens in the launch context: {e}"))?,
        _ => Credentials::default(),
    };
    credentials.tokens.extend(extra_tokens);
    let token_file = place.work.join("container_tokens");
    credentials.write_file(&token_file).map_err(|e| io("cannot write container_tokens", e))?;

    Ok(token_file)
}

fn write_launch_script(
    context: &ContainerLaunchContextProto,
    container: &str,
    place: &ContainerPlace,
    token_file: &Path,
) -> Result<PathBuf, String> {
    let ContainerPlace { user, nm_host, nm_port, work, cache, logs, .. } = place;
    // The NodeManager's variables first, then the application's, which may refer to them.
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("CONTAINER_ID", container.to_string()),
        ("NM_HOST", nm_host.clone()),
        ("NM_PORT", nm_port.to_string()),
        ("NM_HTTP_PORT", "0".into()),
        ("LOCAL_DIRS", cache.to_string_lossy().into_owned()),
        ("LOG_DIRS", logs.to_string_lossy().into_owned()),
        ("USER", user.clone()),
        ("LOGNAME", user.clone()),
        ("PWD", work.to_string_lossy().into_owned()),
        ("HADOOP_TOKEN_FILE_LOCATION", token_file.to_string_lossy().into_owned()),
    ] {
        env.push((k.into(), v));
    }
    for kv in &context.environment {
        if let Some(k) = &kv.key {
            env.push((k.clone(), expand(kv.value.as_deref().unwrap_or(""), logs)));
        }
    }
    let command = context.command.iter().map(|c| expand(c, logs)).collect::<Vec<_>>().join(" ");
    let mut script = String::from("#!/bin/bash\n");
    for (k, v) in &env {
        // As YARN writes them (UnixShellScriptBuilder.env): inside double quotes and not
        // escaped, so `$VAR` (from `{{VAR}}`) expands at launch and a value's own quotes,
        // backslashes and `$` are bash's to interpret.
        script.push_str(&format!("export {k}=\"{v}\"\n"));
    }
    script.push_str(&format!("exec /bin/bash -c {}\n", shell_quote(&command)));
    let script_path = work.join("launch_container.sh");
    std::fs::write(&script_path, script).map_err(|e| io("cannot write launch_container.sh", e))?;

    Ok(script_path)
}

/// Runs the launch script; `None` when the container was killed before it could start.
async fn run(shared: &Shared, container: &str, script_path: &Path, work: &Path) -> Result<Option<i32>, String> {
    let mut cmd = tokio::process::Command::new("/bin/bash");
    cmd.arg(script_path).current_dir(work).env_clear().stdin(std::process::Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    #[cfg(unix)]
    cmd.process_group(0);
    // The kill check and the spawn happen under the lock, so a kill never misses the process.
    let mut child = {
        let mut s = shared.lock().map_err(|_| "state lock poisoned".to_string())?;
        if let Some((exit, reason)) = s.containers.get(container).and_then(|c| c.kill_reason.clone()) {
            s.complete(container, exit, reason);
            return Ok(None);
        }
        let child = cmd.spawn().map_err(|e| io("cannot start the container", e))?;
        let ratio = s.vmem_pmem_ratio;
        if let Some(c) = s.containers.get_mut(container) {
            c.pid = child.id();
            let memory_mb = c.proto.resource.and_then(|r| r.memory).unwrap_or(0);
            if let (Some(ratio), Some(pid)) = (ratio, child.id()) {
                let limit = (memory_mb as f64 * ratio * 1048576.0) as u64;
                tokio::spawn(watch_virtual_memory(shared.clone(), container.to_string(), pid, limit));
            }
        }
        child
    };
    let status = child.wait().await.map_err(|e| io("waiting for the container", e))?;
    let code = exit_code(status);
    Ok(Some(code))
}

/// Records how a container ended, with YARN's diagnostics.
fn record_end(shared: &Shared, container: &str, code: i32, logs: &Path) {
    if let Ok(mut s) = shared.lock() {
        match s.containers.get(container).and_then(|c| c.kill_reason.clone()) {
            Some((exit, reason)) => s.complete(container, exit, format!("{reason}\nContainer killed on request. Exit code is {code}")),
            None if code == 0 => s.complete(container, 0, String::new()),
            None => {
                let stderr_tail = tail(&logs.join("stderr"), 4096);
                s.complete(
                    container,
                    code,
                    format!(
                        "Exception from container-launch.\nContainer id: {container}\nExit code: {code}\n[Container exited with a non-zero exit code {code}. Last 4096 bytes of stderr :\n{stderr_tail}\n]"
                    ),
                )
            }
        }
    }
}

/// Kills the container once the virtual size of its process group passes `limit` bytes, as
/// the NodeManager's ContainersMonitor does (every 3 s there, every second here); ends when
/// the container does. The scan of `/proc` runs off the runtime, which the test servers share.
async fn watch_virtual_memory(shared: Shared, container: String, pgid: u32, limit: u64) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let running = shared.lock().ok().and_then(|s| s.containers.get(&container).map(|c| c.status.is_none())).unwrap_or(false);
        if !running {
            return;
        }
        let Ok(used) = tokio::task::spawn_blocking(move || group_virtual_size(pgid)).await else { return };
        if used > limit {
            let mb = |b: u64| b as f64 / 1048576.0;
            let why = format!(
                "Container [pid={pgid},containerID={container}] is running {}B beyond the 'VIRTUAL' memory limit. Current usage: {:.1} MB of {:.1} MB virtual memory used. Killing container.",
                used - limit,
                mb(used),
                mb(limit)
            );
            super::state::kill(&shared, &container, exit_status::KILLED_EXCEEDED_VMEM, &why);
            return;
        }
    }
}

/// Bytes of address space of every process in group `pgid` (`/proc/PID/stat`: pgrp is the
/// 5th field, vsize the 23rd).
fn group_virtual_size(pgid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (fields.get(2)?.parse::<u32>().ok()? == pgid).then(|| fields.get(20)?.parse::<u64>().ok()).flatten()
        })
        .sum()
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(exit_status::INVALID)
}

fn tail(path: &Path, bytes: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
