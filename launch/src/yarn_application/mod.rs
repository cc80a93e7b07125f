//! `eddy-driver yarn`: submit, become the ApplicationMaster, run the cloud protocol with the
//! YARN launcher, end the application and clean the staging directory, whatever happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_common::env::Environment;
use eddy_common::ClusterSecret;
use eddy_frame::storage::StorageOptions;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_yarn_client::am::ApplicationMaster;
use eddy_yarn_client::conf::HadoopConf;
use eddy_yarn_client::rm::{application_id_text, final_status_name, state_name, ResourceManager};

use crate::args::{YarnAction, YarnArgs};
use crate::cloud::{self, CloudOptions, Outcome};
use crate::launcher::{ContainerPlan, Timeline, YarnLauncher};
use crate::{DriverError, DriverResult};

mod disowned;
mod security;
mod staging;

pub use disowned::run_master;
use disowned::{master_container, relay_container, wait_for_disowned_cloud};
use staging::{default_staging_dir, remove_staging_dir, stage_mapper};

const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MEMORY: &str = "2g";

fn yarn_error(context: &str) -> impl Fn(eddy_yarn_client::YarnError) -> DriverError + '_ {
    move |e| DriverError::Yarn { reason: format!("{context}: {e}") }
}

/// The address of this machine that faces `addr` (no packet is sent: a UDP "connect" only
/// picks the route), so that containers elsewhere can reach the gather service.
fn local_ip_towards(addr: &str) -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(addr).ok()?;
    socket.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}

/// Each worker's memory budget (`--memory`, as text for the worker) and its container's size:
/// the budget plus `--extra-mem-percent`, and `--cores`.
fn worker_resources(args: &YarnArgs) -> DriverResult<(String, ResourceProto)> {
    let memory = args.cloud.memory.clone().unwrap_or_else(|| DEFAULT_MEMORY.into());
    let bytes = eddy_node::stats::parse_memory(&memory)?;
    let capability =
        ResourceProto { memory: Some(container_mb(bytes, args.extra_mem_percent)), virtual_cores: Some(i32::from(args.cores)) };
    Ok((memory, capability))
}

/// Container memory in MiB for a worker budget of `bytes` plus `extra_percent`.
pub fn container_mb(bytes: u64, extra_percent: u32) -> i64 {
    let mib = bytes.div_ceil(1 << 20);
    (mib * (100 + u64::from(extra_percent))).div_ceil(100) as i64
}

/// Connects to the first of `addresses` (HA ResourceManagers) that answers.
async fn connect_to(addresses: &[String], user: &str) -> DriverResult<Arc<ResourceManager>> {
    let rm = ResourceManager::connect(addresses, user, RPC_TIMEOUT)
        .await
        .map_err(yarn_error(&format!("cannot reach the ResourceManager at {}", addresses.join(", "))))?;
    Ok(Arc::new(rm))
}

fn load_conf(env: &Environment) -> DriverResult<HadoopConf> {
    let dir = HadoopConf::dir_from_env(env.as_map()).map_err(|e| DriverError::Yarn { reason: e.to_string() })?;
    HadoopConf::load(&dir, env.as_map()).map_err(|e| DriverError::Yarn { reason: e.to_string() })
}

/// What both kinds of ApplicationMaster run once registered.
struct Master {
    rm: Arc<ResourceManager>,
    app: ApplicationIdProto,
    am: ApplicationMaster,
    plan: ContainerPlan,
    queue: String,
    staging_dir: String,
    remove_staging: bool,
    timeline: Timeline,
    storage: StorageOptions,
    /// Attached on a Kerberized cluster: the file that tells the relay master container the
    /// application is done.
    relay_done_opt: Option<String>,
}

/// Runs `eddy-driver yarn`.
pub async fn run(args: YarnArgs, env: &Environment) -> DriverResult<Outcome> {
    if let Some(YarnAction::Kill { app_id, principal, keytab }) = &args.action {
        let kerberos_opt = crate::keytab::login_from_flags(principal.as_ref(), keytab.as_ref())?;
        return kill(app_id, kerberos_opt, env).await;
    }
    let conf = load_conf(env)?;
    let (memory, capability) = worker_resources(&args)?;
    let mapper = crate::find_mapper(args.mapper.clone(), env)?;
    let cloud_name = args.cloud.name.clone().unwrap_or_else(|| crate::default_cloud_name(env));
    let mut options = CloudOptions::from_args(&args.cloud, cloud_name.clone(), env)?;
    // The edge node stages and lists with its own login; containers get delegation tokens.
    let storage = StorageOptions::from_env(&env.with(options.kerberos_env()));
    let identity = security::Identity::for_cluster(&conf, options.kerberos_opt.as_ref());
    // Chosen here also for a disowned cloud, whose master gets it in its token file: the edge
    // node must know it to print the REST access token.
    let secret = match options.secret_opt.clone() {
        Some(s) => s,
        None => ClusterSecret::generate()?,
    };
    options.secret_opt = Some(secret.clone());
    if args.cloud.disown && (args.cloud.check || args.cloud.import.is_some()) {
        return Err(DriverError::InvalidArgument {
            reason: "--disown leaves the cloud to YARN: it cannot be combined with --check or --import".into(),
        });
    }

    let t0 = Instant::now();
    let (rm, user) = security::connect_rm(&conf, &identity, env).await?;
    let tokens = security::application_tokens(&conf, &identity, &rm, args.cloud.disown).await?;
    // Attached with a keytab, the driver hands the workers new tokens as they age; otherwise
    // they keep the first ones, which YARN renews (no keytab goes to a container).
    if !args.cloud.disown {
        if let Some(source) = security::HdfsTokenSource::for_cluster(&conf, &identity)? {
            options.token_source_opt = Some(Arc::new(source));
        }
    }
    let app = rm.new_application().await.map_err(yarn_error("getNewApplication"))?;
    let app_text = application_id_text(&app.id);
    let (mb, vcores) = (capability.memory.unwrap_or(0), capability.virtual_cores.unwrap_or(0));
    if mb > app.max_memory_mb || vcores > app.max_vcores {
        return Err(DriverError::InvalidArgument { reason: format!(
            "a worker container needs {mb} MiB and {vcores} vcores (--memory {memory} + {}%, --cores {}), more than the largest container YARN allows ({} MiB, {} vcores: yarn.scheduler.maximum-allocation-mb/-vcores)",
            args.extra_mem_percent, args.cores, app.max_memory_mb, app.max_vcores
        ) });
    }
    let (staging_dir, remove_staging) = match &args.staging_dir {
        Some(d) => (d.trim_end_matches('/').to_string(), false),
        None => (default_staging_dir(&conf, &user, &app_text)?, true),
    };
    let token_opt = options.rest_auth.token(&secret, &cloud_name);
    let setup = Setup {
        args: &args,
        conf: &conf,
        user: &user,
        rm: &rm,
        app: app.id,
        t0,
        staging_dir: &staging_dir,
        remove_staging,
        secret: &secret,
        token_opt: token_opt.as_deref(),
        storage: &storage,
        env,
        tokens: &tokens,
        // An attached driver on a Kerberized cluster gets its AMRMToken from a master container.
        relay_opt: (matches!(identity, security::Identity::Kerberos(_)) && !args.cloud.disown)
            .then(|| format!("{}/{}", staging_dir.trim_end_matches('/'), security::RELAY_FILE)),
    };
    // From here on the application exists and files may be staged: whatever fails or
    // interrupts the set-up (a refused submission, a signal, the cloud not forming) kills the
    // application and removes the staging directory before the driver exits.
    let result = tokio::select! {
        r = setup.run(&mapper, &cloud_name, capability) => r,
        signal = eddy_node::signal::stop_signal() => Err(SetupError::Signal(signal)),
    };
    match result {
        Ok(SetupDone::Disowned) => Ok(Outcome::Disowned),
        Ok(SetupDone::Master(master, submitted_at)) => {
            options.memory_opt = Some(memory);
            options.notify_extra_opt = Some(app_text.clone());
            if let (None, Some(ip)) = (args.cloud.driver_ip, edge_ip(&conf)) {
                options.driver_ip = ip;
            }
            // --timeout counts from submission, so time in the queue is included.
            options.timeout = args.cloud.timeout.saturating_sub(submitted_at.elapsed()).max(Duration::from_secs(1));
            println!(
                "ApplicationMaster registered ({:.2} s after submission); asking for {} containers of {mb} MiB and {vcores} vcores",
                submitted_at.elapsed().as_secs_f64(),
                options.nodes
            );
            run_cloud(*master, options).await
        }
        Err(e) => {
            let reason = match &e {
                SetupError::Signal(s) => format!("eddy-driver was {} before the cloud formed", s.verb()),
                SetupError::Failed(e) => format!("the cloud did not form: {e}"),
            };
            abandon(&rm, &app.id, &reason, remove_staging.then_some(staging_dir.as_str()), &storage).await;
            match e {
                SetupError::Signal(s) => Ok(Outcome::Interrupted(Some(s))),
                SetupError::Failed(e) => Err(e),
            }
        }
    }
}

/// This machine's address towards the cluster: where containers reach the gather service
/// (the interface that routes to the ResourceManager).
fn edge_ip(conf: &HadoopConf) -> Option<std::net::IpAddr> {
    conf.resource_manager_addresses().first().and_then(|a| local_ip_towards(a))
}

/// Ends an application whose set-up failed: kills it (YARN ignores a kill of an application
/// it never accepted) and removes its staging directory.
async fn abandon(rm: &ResourceManager, app: &ApplicationIdProto, reason: &str, staging_dir: Option<&str>, storage: &StorageOptions) {
    if let Err(e) = rm.kill(app, reason).await {
        tracing::debug!("kill after a failed set-up: {e}");
    }
    if let Some(dir) = staging_dir {
        match remove_staging_dir(dir, storage).await {
            Ok(true) => println!("Removed the staging directory {dir}"),
            Ok(false) => {}
            Err(e) => eprintln!("eddy-driver: could not remove the staging directory {dir}: {e}"),
        }
    }
}

enum SetupError {
    Signal(eddy_node::signal::Signal),
    Failed(DriverError),
}

impl From<DriverError> for SetupError {
    fn from(e: DriverError) -> Self {
        SetupError::Failed(e)
    }
}

enum SetupDone {
    /// `--disown`: the master in the cluster formed the cloud.
    Disowned,
    /// Registered as the unmanaged master; submitted at this instant.
    Master(Box<Master>, Instant),
}

/// Staging, submission and registration of one application.
struct Setup<'a> {
    args: &'a YarnArgs,
    conf: &'a HadoopConf,
    user: &'a str,
    rm: &'a Arc<ResourceManager>,
    app: ApplicationIdProto,
    t0: Instant,
    staging_dir: &'a str,
    remove_staging: bool,
    secret: &'a ClusterSecret,
    token_opt: Option<&'a str>,
    storage: &'a StorageOptions,
    env: &'a Environment,
    /// Delegation tokens for the containers (none on a SIMPLE cluster).
    tokens: &'a [(String, eddy_hadoop_ipc::proto::common::TokenProto)],
    /// Where a master container relays the AMRMToken (attached, Kerberized).
    relay_opt: Option<String>,
}

impl Setup<'_> {
    async fn run(&self, mapper: &std::path::Path, cloud_name: &str, capability: ResourceProto) -> Result<SetupDone, SetupError> {
        let (args, app_text) = (self.args, application_id_text(&self.app));
        let (mapper_resource, _) = stage_mapper(mapper, self.staging_dir, self.storage).await?;
        let staged = self.t0.elapsed();
        let mut context = ApplicationSubmissionContextProto {
            application_id: Some(self.app),
            application_name: Some(cloud_name.to_string()),
            queue: Some(args.queue.clone()),
            unmanaged_am: Some(true),
            // Apache's ResourceManager reads the master's launch context even for an unmanaged
            // master (its tokens, ClientRMService.submitApplication): an empty one, not none.
            // Its tokens are the ones the ResourceManager renews for the application's life.
            am_container_spec: Some(ContainerLaunchContextProto {
                tokens: (!self.tokens.is_empty()).then(|| security::token_file(&security::hdfs_tokens(self.tokens))),
                ..Default::default()
            }),
            max_app_attempts: Some(1),
            application_type: Some("EDDY".into()),
            application_tags: vec!["eddy".into()],
            ..Default::default()
        };
        if args.cloud.disown {
            context.unmanaged_am = Some(false);
            context.resource = Some(ResourceProto { memory: Some(i64::from(args.am_memory_mb)), virtual_cores: Some(1) });
            context.am_container_spec = Some(master_container(self, &mapper_resource, cloud_name)?);
        } else if let Some(relay) = &self.relay_opt {
            context.unmanaged_am = Some(false);
            context.resource = Some(ResourceProto { memory: Some(i64::from(args.am_memory_mb)), virtual_cores: Some(1) });
            context.am_container_spec = Some(relay_container(self, &mapper_resource, relay));
        }
        let submitted_at = Instant::now();
        self.rm.submit(context).await.map_err(yarn_error("submitApplication"))?;
        println!("Submitted YARN application {app_text} to queue {} as {}", args.queue, self.user);
        if args.cloud.disown {
            wait_for_disowned_cloud(self.rm, &self.app, args.cloud.timeout, submitted_at, args.cloud.notify.as_deref(), self.token_opt)
                .await?;
            return Ok(SetupDone::Disowned);
        }
        let host = edge_ip(self.conf).map(|ip| ip.to_string()).unwrap_or_default();
        let am = match &self.relay_opt {
            Some(relay) => {
                let token = security::await_relayed_token(self.rm, &self.app, relay, self.secret, self.storage, args.cloud.timeout).await?;
                register_master(&self.conf.scheduler_addresses(), &token, &host).await
            }
            None => become_master(self.rm, self.conf, &self.app, &host, args.cloud.timeout).await,
        }
        .map_err(|e| DriverError::Yarn { reason: format!("eddy-driver could not become the ApplicationMaster: {e}") })?;
        let timeline = Timeline { started: Some(self.t0), staged, submitted: submitted_at - self.t0, registered: self.t0.elapsed() };
        let master = Master {
            rm: Arc::clone(self.rm),
            app: self.app,
            am,
            plan: ContainerPlan { mapper: mapper_resource, capability, tokens: security::hdfs_tokens(self.tokens) },
            queue: args.queue.clone(),
            staging_dir: self.staging_dir.to_string(),
            remove_staging: self.remove_staging,
            timeline,
            storage: self.storage.clone(),
            relay_done_opt: self.relay_opt.as_ref().map(|r| format!("{r}{}", security::RELAY_DONE_SUFFIX)),
        };
        Ok(SetupDone::Master(Box::new(master), submitted_at))
    }
}

/// The cloud protocol with YARN containers as workers, then the application's end: the
/// final status from how the cloud ended, and the staging directory removed.
async fn run_cloud(master: Master, options: CloudOptions) -> DriverResult<Outcome> {
    let Master { rm, app, am, plan, queue, staging_dir, remove_staging, timeline, storage, relay_done_opt } = master;
    let app_text = application_id_text(&app);
    let mut launcher = YarnLauncher::start(app, Arc::clone(&rm), am, queue, plan, timeline);
    let outcome = cloud::drive(&mut launcher, options).await;
    let (status, diagnostics) = match &outcome {
        Ok(Outcome::Stopped) => (FinalApplicationStatusProto::AppSucceeded, "the cloud was shut down".to_string()),
        Ok(Outcome::Signalled(_)) => (FinalApplicationStatusProto::AppKilled, "the ApplicationMaster was interrupted".to_string()),
        Ok(Outcome::Interrupted(_)) => {
            (FinalApplicationStatusProto::AppKilled, "the ApplicationMaster was interrupted before the cloud formed".to_string())
        }
        Ok(Outcome::Disowned) => (FinalApplicationStatusProto::AppUndefined, String::new()),
        Err(e) => (FinalApplicationStatusProto::AppFailed, e.to_string()),
    };
    if let Some(problem) = launcher.finish(status, &diagnostics).await {
        eprintln!("eddy-driver: could not unregister from YARN ({problem}); killing {app_text}");
        let _ = rm.kill(&app, &diagnostics).await;
    }
    // A relay master container waits for this (YARN waits for a finished master's container
    // to exit by itself); removing the staging directory would end it too.
    if let Some(done) = &relay_done_opt {
        if let Err(e) = eddy_frame::storage::write(done, Vec::new().into(), &storage).await {
            tracing::warn!("cannot tell the master container to stop through {done}: {e}");
        }
    }
    if remove_staging {
        if let Err(e) = remove_staging_dir(&staging_dir, &storage).await {
            eprintln!("eddy-driver: could not remove the staging directory {staging_dir}: {e}");
        }
    }
    let word = match status {
        FinalApplicationStatusProto::AppSucceeded => "SUCCEEDED",
        FinalApplicationStatusProto::AppKilled => "KILLED",
        _ => "FAILED",
    };
    println!("YARN application {app_text} finished: {word}");
    outcome
}

/// Polls the application report every `every` until `ready` finds what is awaited. The
/// application ending first, or `deadline` passing, is an error naming `what` with the state,
/// the queue and YARN's diagnostics.
async fn await_report<T>(
    rm: &ResourceManager,
    app: &ApplicationIdProto,
    deadline: Instant,
    every: Duration,
    what: &str,
    ready: impl Fn(&ApplicationReportProto) -> Option<T>,
) -> DriverResult<T> {
    let app_text = application_id_text(app);
    loop {
        let report = rm.report(app).await.map_err(yarn_error("getApplicationReport"))?;
        if let Some(found) = ready(&report) {
            return Ok(found);
        }
        let ended = is_final(report.yarn_application_state);
        if ended || Instant::now() >= deadline {
            let state = state_name(report.yarn_application_state);
            let how = if ended {
                format!("ended ({state}, final status {}) before", final_status_name(report.final_application_status))
            } else {
                format!("timed out (--timeout, state {state}) waiting for")
            };
            return Err(DriverError::NotFormed {
                reason: format!(
                    "YARN application {app_text} {how} {what}; queue {}: {}",
                    report.queue.unwrap_or_default(),
                    report.diagnostics.unwrap_or_default()
                ),
            });
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether an application state is one YARN never leaves (FINISHED, FAILED, KILLED).
fn is_final(state: Option<i32>) -> bool {
    matches!(
        state.and_then(|s| YarnApplicationStateProto::try_from(s).ok()),
        Some(YarnApplicationStateProto::Failed | YarnApplicationStateProto::Killed | YarnApplicationStateProto::Finished)
    )
}

/// Waits for the unmanaged attempt's AMRMToken in the application report, then registers
/// with the scheduler.
async fn become_master(
    rm: &ResourceManager,
    conf: &HadoopConf,
    app: &ApplicationIdProto,
    host: &str,
    timeout: Duration,
) -> DriverResult<ApplicationMaster> {
    let deadline = Instant::now() + timeout;
    let token = await_report(rm, app, deadline, Duration::from_millis(100), "its attempt to start", |r| r.am_rm_token.clone()).await?;
    register_master(&conf.scheduler_addresses(), &token, host).await
}

/// Registers as ApplicationMaster with the first of the schedulers that takes `token`.
async fn register_master(
    schedulers: &[String],
    token: &eddy_hadoop_ipc::proto::common::TokenProto,
    host: &str,
) -> DriverResult<ApplicationMaster> {
    let mut last = None;
    for addr in schedulers {
        match ApplicationMaster::register(addr, token, host, "", RPC_TIMEOUT).await {
            Ok(am) => return Ok(am),
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(DriverError::Yarn {
        reason: format!(
            "cannot register as ApplicationMaster with the scheduler (yarn.resourcemanager.scheduler.address): {}",
            last.unwrap_or_else(|| "no scheduler address".into())
        ),
    })
}

/// `eddy-driver yarn kill APP_ID`.
async fn kill(app_id: &str, kerberos_opt: Option<(String, std::path::PathBuf)>, env: &Environment) -> DriverResult<Outcome> {
    let id = eddy_yarn_client::parse_application_id(app_id).ok_or_else(|| DriverError::InvalidArgument {
        reason: format!("{app_id:?} is not an application id (application_<timestamp>_<number>)"),
    })?;
    let conf = load_conf(env)?;
    let identity = security::Identity::for_cluster(&conf, kerberos_opt.as_ref());
    let storage = &StorageOptions::from_env(&env.with(crate::keytab::login_env(kerberos_opt.as_ref())));
    let (rm, user) = security::connect_rm(&conf, &identity, env).await?;
    let report = rm.report(&id).await.map_err(yarn_error(&format!("cannot find {app_id}")))?;
    if report.application_type.as_deref().is_some_and(|t| t != "EDDY") {
        return Err(DriverError::InvalidArgument {
            reason: format!(
                "{app_id} is a {} application, not an Eddy cloud; use `yarn application -kill` for it",
                report.application_type.unwrap_or_default()
            ),
        });
    }
    if is_final(report.yarn_application_state) {
        println!(
            "{app_id} had already ended: {} (final status {}){}",
            state_name(report.yarn_application_state),
            final_status_name(report.final_application_status),
            report.diagnostics.filter(|d| !d.trim().is_empty()).map(|d| format!("; YARN says: {d}")).unwrap_or_default()
        );
    } else {
        rm.kill(&id, &format!("killed with eddy-driver yarn kill by {user}")).await.map_err(yarn_error("forceKillApplication"))?;
        println!("Killed {app_id} (it was {})", state_name(report.yarn_application_state));
    }
    // The master was killed with its containers: remove what it staged, if in the default place.
    if let Ok(dir) = default_staging_dir(&conf, report.user.as_deref().unwrap_or(&user), &application_id_text(&id)) {
        if let Ok(true) = remove_staging_dir(&dir, storage).await {
            println!("Removed the staging directory {dir}");
        }
    }
    Ok(Outcome::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_refuse_nonsense() {
        assert_eq!(crate::args::parse_port_range("30000-30100"), Ok((30000, 30100)));
        assert!(crate::args::parse_port_range("30100-30000").is_err());
        assert!(crate::args::parse_port_range("0-10").is_err());
        assert!(crate::args::parse_port_range("30000").unwrap_err().contains("FROM-TO"));
    }

    #[test]
    fn container_memory_adds_the_extra_share_rounded_up() {
        assert_eq!(container_mb(6 << 30, 10), 6759);
        assert_eq!(container_mb(1 << 30, 0), 1024);
        assert_eq!(container_mb(1, 10), 2);
    }
}
