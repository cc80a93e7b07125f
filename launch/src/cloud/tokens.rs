//! New delegation tokens for the workers while the driver watches the cloud.
//!
//! On a Kerberized cluster YARN containers read HDFS with delegation tokens that the
//! ResourceManager renews, but only up to the token's maximum lifetime (7 days by default).
//! An attached driver still holds the login, so it obtains new tokens every three quarters of
//! the renewal interval, as Spark's driver does, and gives them to every worker; a worker
//! puts them into its token file, which new HDFS connections read.

use std::sync::Arc;
use std::time::Duration;

use eddy_hadoop_ipc::credentials::Credentials;

use crate::DriverResult;

/// Where new tokens come from.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// How long to wait between two.
    fn every(&self) -> Duration;
    /// New tokens, by alias.
    async fn obtain(&self) -> DriverResult<Credentials>;
}

/// Waits after a failure before trying again, so a KDC or NameNode that is briefly away does
/// not leave the workers without tokens for a whole period.
const RETRY: Duration = Duration::from_secs(60);

/// Obtains and hands out tokens until dropped (the task is aborted then).
pub(super) struct Refresher(tokio::task::JoinHandle<()>);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Refresher {
    pub(super) fn start(source: Arc<dyn TokenSource>, frames: eddy_frame::FrameCloud) -> Self {
        Self(tokio::spawn(async move {
            let mut wait = source.every();
            loop {
                tokio::time::sleep(wait).await;
                let given = match source.obtain().await {
                    Ok(credentials) => frames.update_tokens(&credentials).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                wait = match given {
                    Ok(workers) => {
                        println!("Gave {workers} workers new HDFS delegation tokens; the next in {:.0} s", source.every().as_secs_f64());
                        source.every()
                    }
                    Err(e) => {
                        eprintln!(
                            "eddy-driver: could not give the workers new delegation tokens ({e}); trying again in {} s. Their current tokens last until the ResourceManager stops renewing them (their maximum lifetime).",
                            RETRY.as_secs()
                        );
                        RETRY.min(source.every())
                    }
                };
            }
        }))
    }
}
