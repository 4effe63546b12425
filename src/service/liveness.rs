//! What "live" means for each component ([`Liveness`]: its event loop is responsive) and
//! running one check with a time limit, so a check stuck in a lock counts as failed and is
//! not started again while it hangs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

/// A liveness verdict: `Err` says why the component is not live.
pub type Verdict = Result<(), String>;

/// The future of one liveness check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// Proof that a component's event loop is responsive: its accept loop runs, its state handle
/// answers. A check that never answers counts as failed (see [`Service::supervise`]), so a
/// check may take locks the component's loop takes.
pub trait Liveness: Send + Sync + 'static {
    /// Checks the component once.
    fn check(&self) -> CheckFuture<'_>;
}

/// A synchronous check as a [`Liveness`].
pub struct CheckFn<F>(pub F);

impl<F> Liveness for CheckFn<F>
where
    F: Fn() -> Verdict + Send + Sync + 'static,
{
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready((self.0)()))
    }
}

/// The license server is live while its periodic sweep — which takes the engine's lock and is
/// driven by the accept loop's `select!` — beat within
/// [`LIVENESS_MAX_AGE`](license_server::server::LIVENESS_MAX_AGE).
impl Liveness for license_server::LicenseServer {
    fn check(&self) -> CheckFuture<'_> {
        let max = license_server::server::LIVENESS_MAX_AGE;
        let verdict = if self.is_live(max) {
            Ok(())
        } else {
            Err(match self.heartbeat_age() {
                None => "the license server is not serving yet".to_owned(),
                Some(age) => format!(
                    "the license engine's heartbeat is {:.1} s old (limit {} s): its accept \
                     loop or lock is stalled",
                    age.as_secs_f64(),
                    max.as_secs()
                ),
            })
        };
        Box::pin(std::future::ready(verdict))
    }
}

/// The relay is live while it accepts connections, its accept loop beat within
/// [`LIVENESS_MAX_AGE`](relay_server::stats::LIVENESS_MAX_AGE), and its counters answer (they
/// sit behind the lock its connection tasks update).
impl Liveness for relay_server::RelayStats {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(
            self.liveness(relay_server::stats::LIVENESS_MAX_AGE),
        ))
    }
}

/// The relay-listener is live while its main loop (connect, serve the control channel, wait
/// to reconnect) beats: an unreachable relay does not count against it, a stuck task does.
impl Liveness for relay_listener::ListenerStatus {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(
            self.liveness(ops_http::heartbeat::LIVENESS_MAX_AGE),
        ))
    }
}

/// The local-proxy is live while it listens and its accept loop beats.
impl Liveness for local_proxy::ProxyStatus {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(
            self.liveness(ops_http::heartbeat::LIVENESS_MAX_AGE),
        ))
    }
}

/// Runs liveness checks in their own task, so one stuck in a lock is timed out here (and not
/// started again while it hangs).
pub(super) struct Checker {
    liveness: Arc<dyn Liveness>,
    limit: Duration,
    hanging: Option<JoinHandle<Verdict>>,
}

impl Checker {
    pub(super) fn new(liveness: Arc<dyn Liveness>, limit: Duration) -> Self {
        Self {
            liveness,
            limit,
            hanging: None,
        }
    }

    pub(super) async fn check(&mut self) -> Verdict {
        let mut task = self.hanging.take().unwrap_or_else(|| {
            let liveness = self.liveness.clone();
            tokio::spawn(async move { liveness.check().await })
        });
        match tokio::time::timeout(self.limit, &mut task).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => Err(format!("the liveness check failed: {e}")),
            Err(_) => {
                self.hanging = Some(task);
                Err(format!(
                    "the liveness check did not answer within {:?}",
                    self.limit
                ))
            }
        }
    }
}
