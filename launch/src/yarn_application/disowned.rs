//! The ApplicationMaster of a disowned cloud (`--disown`): its container's launch context,
//! the settings it carries there, the driver's wait for the cloud it forms, and the master
//! itself (`eddy-mapper am`), which runs in the container and outlives the driver.

use std::time::{Duration, Instant};

use eddy_common::env::Environment;
use eddy_common::ClusterSecret;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_yarn_client::rm::{application_id_text, ResourceManager};

use super::{await_report, connect_to, register_master, run_cloud, worker_resources, Master, Setup};
use crate::args::YarnArgs;
use crate::cloud::Outcome;
use crate::cloud::{self, CloudOptions};
use crate::launcher::{ContainerPlan, Timeline};
use crate::{DriverError, DriverResult};
use eddy_frame::storage::StorageOptions;

/// The environment that carries the settings of a disowned cloud to its ApplicationMaster.
mod am_env {
    pub const SETTINGS: &str = "EDDY_AM_SETTINGS";
    pub const MAPPER: &str = "EDDY_AM_MAPPER_RESOURCE";
    pub const RESOURCE_MANAGERS: &str = "EDDY_AM_RESOURCE_MANAGERS";
    pub const SCHEDULERS: &str = "EDDY_AM_SCHEDULERS";
    pub const STAGING: &str = "EDDY_AM_STAGING_DIR";
    pub const REMOVE_STAGING: &str = "EDDY_AM_REMOVE_STAGING";
    /// Set for the master container of an attached Kerberized application: where to put
    /// the sealed AMRMToken for the driver.
    pub const RELAY: &str = "EDDY_AM_RELAY";
}

/// The master container of an attached application on a Kerberized cluster, where the
/// driver cannot be an unmanaged master (see `security::relay_path`): `eddy-mapper am` with
/// only the relay path, the HDFS tokens and the cluster secret. It hands the driver its
/// AMRMToken and lives until YARN ends the application; the driver is the master.
pub(super) fn relay_container(setup: &Setup<'_>, mapper: &LocalResourceProto, relay: &str) -> ContainerLaunchContextProto {
    let env = [
        (am_env::RELAY, relay.to_string()),
        ("HADOOP_USER_NAME", setup.user.to_string()),
        (crate::launcher::ALLOCATOR_ENV.0, crate::launcher::ALLOCATOR_ENV.1.to_string()),
    ];
    am_container(mapper, env.to_vec(), super::security::hdfs_tokens(setup.tokens), setup.secret)
}

/// `eddy-mapper am` in a master container: the staged mapper, `env`, and a token file with
/// `tokens` and the cluster secret.
fn am_container(
    mapper: &LocalResourceProto,
    env: Vec<(&str, String)>,
    tokens: Vec<(String, eddy_hadoop_ipc::proto::common::TokenProto)>,
    secret: &ClusterSecret,
) -> ContainerLaunchContextProto {
    ContainerLaunchContextProto {
        local_resources: vec![StringLocalResourceMapProto { key: Some("eddy-mapper".into()), value: Some(mapper.clone()) }],
        environment: env.into_iter().map(|(k, v)| StringStringMapProto { key: Some(k.to_string()), value: Some(v) }).collect(),
        command: vec!["./eddy-mapper".into(), "am".into(), "1><LOG_DIR>/stdout".into(), "2><LOG_DIR>/stderr".into()],
        tokens: Some(
            eddy_hadoop_ipc::credentials::Credentials {
                tokens,
                secrets: vec![(eddy_yarn_client::CLUSTER_SECRET_ALIAS.into(), secret.expose().as_bytes().to_vec())],
            }
            .to_bytes(),
        ),
        ..Default::default()
    }
}

/// The relay master's work: seal the AMRMToken under the cluster secret, write it where the
/// driver looks, and wait until YARN stops this container (when the driver ends the
/// application) or a signal comes.
async fn relay_token(path: &str, credentials: &eddy_hadoop_ipc::credentials::Credentials, env: &Environment) -> DriverResult<Outcome> {
    let token = credentials
        .token_of_kind("YARN_AM_RM_TOKEN")
        .ok_or_else(|| DriverError::Yarn { reason: "the token file holds no AMRMToken".into() })?;
    let secret = credentials
        .secret(eddy_yarn_client::CLUSTER_SECRET_ALIAS)
        .ok_or_else(|| DriverError::Yarn { reason: "the token file holds no cluster secret".into() })?;
    let secret = ClusterSecret::from_text(&String::from_utf8_lossy(secret))?;
    let sealed = super::security::seal_token(&secret, token)?;
    eddy_frame::storage::write(path, sealed.into(), &StorageOptions::from_env(env))
        .await
        .map_err(|e| DriverError::Yarn { reason: format!("cannot hand the AMRMToken to the driver through {path}: {e}") })?;
    println!("Handed the AMRMToken to the driver through {path}; the driver is the ApplicationMaster, this container holds its place");
    // YARN waits for a finished master's container to exit: leave when the driver says it is
    // done, or the staging directory is gone, or on a signal.
    let storage = StorageOptions::from_env(env);
    let done = format!("{path}{}", super::security::RELAY_DONE_SUFFIX);
    // The staged mapper stands for the staging directory (a directory does not stat as a file).
    let staging = format!("{}/eddy-mapper", path.rsplit_once('/').map_or(path, |(dir, _)| dir));
    let finished = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let done_written = matches!(eddy_frame::storage::stat(&done, &storage).await, Ok(Some(_)));
            let staging_gone = matches!(eddy_frame::storage::stat(&staging, &storage).await, Ok(None));
            if done_written || staging_gone {
                return;
            }
        }
    };
    tokio::select! {
        () = finished => println!("The driver ended the application"),
        signal = eddy_node::signal::stop_signal() => println!("Stopped ({})", signal.verb()),
    }
    Ok(Outcome::Stopped)
}

/// The launch context of a disowned cloud's ApplicationMaster: `eddy-mapper am` with the
/// driver's settings in its environment.
pub(super) fn master_container(
    setup: &Setup<'_>,
    mapper: &LocalResourceProto,
    cloud_name: &str,
) -> DriverResult<ContainerLaunchContextProto> {
    use prost::Message;
    let Setup { args, conf, user, staging_dir, remove_staging, secret, env: environment, tokens, .. } = *setup;
    let mut settings = args.clone();
    // The name the edge node chose (a default one is random): the REST token is bound to it.
    settings.cloud.name = Some(cloud_name.to_string());
    // The secret travels in the master's token file, as to every worker, not as a path.
    settings.cloud.secret_file = None;
    // The master runs inside the cluster: the edge node's interface and files mean nothing there.
    settings.cloud.disown = false;
    settings.cloud.notify = None;
    settings.cloud.status_file = None;
    settings.cloud.driver_ip = None;
    settings.cloud.driver_port = 0;
    settings.cloud.driver_port_range = None;
    // No keytab in the cluster: the master and its workers use the delegation tokens.
    settings.cloud.principal = None;
    settings.cloud.keytab = None;
    settings.mapper = None;
    let settings = encode_settings(&settings)?;
    let mut env = vec![
        (am_env::SETTINGS, settings),
        (am_env::MAPPER, hex::encode(mapper.encode_to_vec())),
        (am_env::RESOURCE_MANAGERS, conf.resource_manager_addresses().join(",")),
        (am_env::SCHEDULERS, conf.scheduler_addresses().join(",")),
        (am_env::STAGING, staging_dir.to_string()),
        (am_env::REMOVE_STAGING, remove_staging.to_string()),
        ("HADOOP_USER_NAME", user.to_string()),
        (crate::launcher::ALLOCATOR_ENV.0, crate::launcher::ALLOCATOR_ENV.1.to_string()),
    ];
    // The master hands them on to its workers as an attached driver does.
    env.extend(environment.forwarded_to_workers());
    Ok(am_container(mapper, env, tokens.to_vec(), secret))
}

/// The settings of a disowned cloud as its master's environment carries them: hex of their
/// JSON. Not the JSON itself: YARN writes `export KEY="VALUE"` into the container's launch
/// script without escaping, so the JSON's quotes did not survive bash.
fn encode_settings(settings: &YarnArgs) -> DriverResult<String> {
    let json =
        serde_json::to_vec(settings).map_err(|e| DriverError::InvalidArgument { reason: format!("cannot encode the settings: {e}") })?;
    Ok(hex::encode(json))
}

fn decode_settings(text: &str) -> DriverResult<YarnArgs> {
    let bad = |e: String| DriverError::InvalidArgument { reason: format!("bad {}: {e}", am_env::SETTINGS) };
    let json = hex::decode(text.trim()).map_err(|e| bad(format!("not hex-encoded JSON: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}

/// `--disown`: waits until the ApplicationMaster in the cluster reports the formed cloud
/// (its tracking URL becomes the leader's REST API), then prints it and leaves.
pub(super) async fn wait_for_disowned_cloud(
    rm: &ResourceManager,
    app: &ApplicationIdProto,
    timeout: Duration,
    submitted_at: Instant,
    notify: Option<&std::path::Path>,
    token_opt: Option<&str>,
) -> DriverResult<()> {
    let app_text = application_id_text(app);
    let deadline = submitted_at + timeout;
    let ready = |r: &ApplicationReportProto| {
        let running = r.yarn_application_state == Some(YarnApplicationStateProto::Running as i32);
        // The master's own URL: Apache's RM reports its web proxy as `trackingUrl` as soon as
        // the attempt runs, whatever the master set.
        r.original_tracking_url.clone().filter(|u| running && u.starts_with("http"))
    };
    let url = await_report(rm, app, deadline, Duration::from_millis(200), "its cloud to form", ready).await?;
    let cloud: Option<serde_json::Value> = async {
        let mut request = reqwest::Client::new().get(format!("{url}/3/Cloud"));
        if let Some(token) = token_opt {
            request = request.bearer_auth(token);
        }
        request.send().await.ok()?.json().await.ok()
    }
    .await;
    let size = cloud.as_ref().and_then(|c| c["cloud_size"].as_u64()).unwrap_or(0);
    let nodes: Vec<String> = cloud
        .as_ref()
        .and_then(|c| c["nodes"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n["ip_port"].as_str().map(str::to_string))
        .collect();
    println!("Cloud of size {size} formed [{}] ({:.2} s after submission)", nodes.join(", "), submitted_at.elapsed().as_secs_f64());
    println!("REST API: {url}/3/Cloud");
    if let Some(token) = token_opt {
        println!("{}", ClusterSecret::access_line(&url, token));
    }
    if let Some(path) = notify {
        let leader = url.trim_start_matches("http://").trim_start_matches("https://");
        cloud::write_notify(path, leader, Some(&app_text), token_opt)?;
    }
    println!("Driver exits; YARN application {app_text} keeps the cloud running. End it with: eddy-driver yarn kill {app_text}");
    Ok(())
}

/// `eddy-mapper am`: the ApplicationMaster of a disowned cloud, inside its YARN container.
/// Registers with the AMRMToken from the container's token file and runs the same cloud
/// protocol as an attached driver, with the gather service on this container's host.
pub async fn run_master(env: &Environment) -> DriverResult<Outcome> {
    use prost::Message;
    let var = |k: &str| {
        env.get(k).map(str::to_string).ok_or_else(|| DriverError::InvalidArgument {
            reason: format!("{k} is not set: `eddy-mapper am` runs in the container eddy-driver yarn --disown starts"),
        })
    };
    if let Some(path) = env.get(am_env::RELAY) {
        let token_file = var("HADOOP_TOKEN_FILE_LOCATION")?;
        let credentials = eddy_hadoop_ipc::credentials::Credentials::read_file(std::path::Path::new(&token_file))
            .map_err(|reason| DriverError::Yarn { reason })?;
        return relay_token(path, &credentials, env).await;
    }
    let args = decode_settings(&var(am_env::SETTINGS)?)?;
    let mapper = LocalResourceProto::decode(hex::decode(var(am_env::MAPPER)?).unwrap_or_default().as_slice())
        .map_err(|e| DriverError::InvalidArgument { reason: format!("bad {}: {e}", am_env::MAPPER) })?;
    let token_file = var("HADOOP_TOKEN_FILE_LOCATION")?;
    let credentials = eddy_hadoop_ipc::credentials::Credentials::read_file(std::path::Path::new(&token_file))
        .map_err(|reason| DriverError::Yarn { reason })?;

    let token = credentials
        .token_of_kind("YARN_AM_RM_TOKEN")
        .cloned()
        .ok_or_else(|| DriverError::Yarn { reason: format!("the token file {token_file} holds no AMRMToken") })?;
    let container = var("CONTAINER_ID")?;
    let app = application_of_container(&container)
        .ok_or_else(|| DriverError::InvalidArgument { reason: format!("CONTAINER_ID {container} is not a container id") })?;
    let user = env.hadoop_user();
    let resource_managers: Vec<String> = var(am_env::RESOURCE_MANAGERS)?.split(',').map(str::to_string).collect();
    // On a Kerberized cluster the edge node gave this master a ResourceManager token.
    let rm = match credentials.token_of_kind(super::security::RM_DELEGATION_TOKEN) {
        Some(token) => {
            let auth = eddy_yarn_client::rm::RmAuth::Token(token.clone());
            let rm = eddy_yarn_client::rm::ResourceManager::connect_with(&resource_managers, &auth, super::RPC_TIMEOUT)
                .await
                .map_err(|e| DriverError::Yarn { reason: format!("cannot reach the ResourceManager with the application's token: {e}") })?;
            std::sync::Arc::new(rm)
        }
        None => connect_to(&resource_managers, &user).await?,
    };
    let host = var("NM_HOST")?;
    let schedulers: Vec<String> = var(am_env::SCHEDULERS)?.split(',').map(str::to_string).collect();
    let am = register_master(&schedulers, &token, &host).await?;
    let (memory, capability) = worker_resources(&args)?;
    let cloud_name = args.cloud.name.clone().unwrap_or_else(|| crate::default_cloud_name(env));
    let mut options = CloudOptions::from_args(&args.cloud, cloud_name, env)?;
    let secret = credentials.secret(eddy_yarn_client::CLUSTER_SECRET_ALIAS).ok_or_else(|| DriverError::Yarn {
        reason: format!("the token file {token_file} holds no cluster secret; was this container started by eddy-driver?"),
    })?;
    options.secret_opt = Some(ClusterSecret::from_text(&String::from_utf8_lossy(secret))?);
    // This master's output is its container's log: the edge node printed the token already.
    options.print_token = false;
    options.memory_opt = Some(memory);
    options.driver_ip = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| DriverError::InvalidArgument { reason: format!("cannot resolve NM_HOST {host}") })?;
    let master = Master {
        rm,
        app,
        am,
        plan: ContainerPlan { mapper, capability, tokens: super::security::hdfs_tokens(&credentials.tokens) },
        queue: args.queue.clone(),
        staging_dir: var(am_env::STAGING)?,
        remove_staging: var(am_env::REMOVE_STAGING)? == "true",
        timeline: Timeline::default(),
        storage: StorageOptions::from_env(env),
        relay_done_opt: None,
    };
    run_cloud(master, options).await
}

/// The application of `container_<ts>_<app>_<attempt>_<n>` (or `container_e<epoch>_...`).
fn application_of_container(id: &str) -> Option<ApplicationIdProto> {
    let parts: Vec<&str> = id.strip_prefix("container_")?.split('_').collect();
    let parts = if parts.first()?.starts_with('e') { &parts[1..] } else { &parts[..] };
    Some(ApplicationIdProto { cluster_timestamp: Some(parts.first()?.parse().ok()?), id: Some(parts.get(1)?.parse().ok()?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_name_their_application() {
        let app = application_of_container("container_1700000000000_0042_01_000003").unwrap();
        assert_eq!((app.cluster_timestamp, app.id), (Some(1_700_000_000_000), Some(42)));
        let app = application_of_container("container_e17_1700000000000_0042_01_000003").unwrap();
        assert_eq!(app.id, Some(42));
        assert!(application_of_container("application_1_2").is_none());
    }

    #[test]
    fn a_disowned_masters_settings_survive_yarns_launch_script() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            yarn: YarnArgs,
        }
        let args = Wrapper::parse_from(["eddy-driver", "--nodes", "2", "--name", "a \"quoted\" $name", "--disown"]).yarn;
        let text = encode_settings(&args).unwrap();
        // Nothing bash would interpret inside `export EDDY_AM_SETTINGS="..."`.
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
        let back = decode_settings(&text).unwrap();
        assert_eq!((back.cloud.nodes, back.cloud.name.as_deref()), (Some(2), Some("a \"quoted\" $name")));
        assert!(decode_settings("{\"nodes\":2}").unwrap_err().to_string().contains("not hex-encoded JSON"));
    }
}
