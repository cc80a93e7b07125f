//! The Eddy node runtime, shared by workers and observer clients.
//!
//! - [`bind`]: the REST and internal gRPC listeners (port search, `--port 0`).
//! - [`membership`]: the sans-IO membership state machine (heartbeats, consensus, leader,
//!   lock, health).
//! - [`NodeHandle`]: a running node: servers, heartbeat loop, shutdown, network test.
//! - [`rest`]: `GET /3/Cloud` with H2O's field names, `POST /3/Shutdown`, the Kubernetes probe.
//! - [`http_server`]: the REST port's server and its limits (connections, header time, body size).
//! - [`logs`]: every node's last log lines, for the web UI.
//! - [`ui`]: the web console served at `/` to browsers.
//! - [`rest_auth`]: who may use the REST API (the cloud's access token, htpasswd, or nobody checks).

mod error;
mod heartbeat;
mod network_test;
mod runtime;
mod transport;

pub mod bind;
pub mod http_server;
pub mod logging;
pub mod logs;
pub mod membership;
pub mod metrics;
pub mod rest;
pub mod rest_auth;
pub mod routes;
pub mod signal;
pub mod stats;
pub mod stream_port;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod ui;

pub use error::{NodeError, NodeResult};
pub use network_test::NetworkTestResult;
pub use runtime::{Extensions, NodeHandle, NodeOptions, Role, StopReason};
