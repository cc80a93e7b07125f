//! New delegation tokens for the workers while the driver watches the cloud.
//!
//! On a Kerberized cluster YARN containers read HDFS with delegation tokens that the
//! ResourceManager renews, but only up to the token's maximum lifetime (7 days by default).
//! An attached driver logged in from a keytab can always log in again, so it obtains a token
//! of its own, learns when it expires by renewing it once (as Spark's driver does), gives it
//! to every worker, and obtains the next after three quarters of that time; a worker puts it
//! into its token file, which new HDFS connections read.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use eddy_hadoop_ipc::credentials::Credentials;

use crate::DriverResult;

/// Where new tokens come from.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// New tokens by alias, and when the first of them expires unless renewed.
    async fn obtain(&self) -> DriverResult<(Credentials, SystemTime)>;
}

/// Waits after a failure before trying again, so a KDC or NameNode that is briefly away does
/// not leave the workers without tokens.
const RETRY: Duration = Duration::from_secs(60);
/// The shortest wait between two, whatever a token's lifetime.
const MIN_WAIT: Duration = Duration::from_secs(5);

/// Obtains and hands out tokens until dropped (the task is aborted then).
pub(super) struct Refresher(tokio::task::JoinHandle<()>);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Three quarters of the time left until `expiry`.
fn next_wait(expiry: SystemTime) -> Duration {
    (expiry.duration_since(SystemTime::now()).unwrap_or_default() * 3 / 4).max(MIN_WAIT)
}

impl Refresher {
    pub(super) fn start(source: Arc<dyn TokenSource>, frames: eddy_frame::FrameCloud) -> Self {
        Self(tokio::spawn(async move {
            // The workers' first tokens, which the ResourceManager renews, are fresh now.
            let mut current_expiry_opt: Option<SystemTime> = None;
            let mut wait = Duration::ZERO;
            loop {
                tokio::time::sleep(wait).await;
                let given = match source.obtain().await {
                    Ok((credentials, expiry)) => frames.update_tokens(&credentials).await.map(|n| (n, expiry)).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                wait = match given {
                    Ok((workers, expiry)) => {
                        current_expiry_opt = Some(expiry);
                        let wait = next_wait(expiry);
                        println!("Gave {workers} workers new HDFS delegation tokens; the next in {:.0} s", wait.as_secs_f64());
                        wait
                    }
                    Err(e) => {
                        let lasting = match current_expiry_opt.and_then(|t| t.duration_since(SystemTime::now()).ok()) {
                            Some(left) => format!("the workers' current token expires in {:.0} s", left.as_secs_f64()),
                            None => "the workers keep their first tokens, which YARN renews up to their maximum lifetime".to_string(),
                        };
                        eprintln!(
                            "eddy-driver: could not give the workers new delegation tokens ({e}); {lasting}; trying again in {} s",
                            RETRY.as_secs()
                        );
                        RETRY
                    }
                };
            }
        }))
    }
}
