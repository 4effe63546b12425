//! How the tunnel commands (`relay`, `listen`, `proxy`) run their component once it is built:
//! the `--metrics` endpoint starts first and stops last (during the drain it still shows the
//! connections closing and `/healthz` answers 503), the service manager hears READY and
//! watchdog pings while the component's liveness check passes, and both are stopped within a
//! bounded time once the component returned.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::metrics_endpoint::{self, MetricsSettings};
use crate::service::{Liveness, Service};

/// How long stopping waits for the service notifications (STOPPING=1) and the metrics
/// endpoint.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// A component as its metrics endpoint and the service manager see it.
pub struct Supervised {
    /// Its metrics, served at `/metrics` when `--metrics` asks for the endpoint.
    pub registry: Registry,
    /// Its liveness check: `/healthz`, READY and the watchdog pings.
    pub liveness: Arc<dyn Liveness>,
    /// The `STATUS=` line sent with READY.
    pub status: String,
}

impl Supervised {
    /// Starts the metrics endpoint (when `metrics` is set) and the service notifications, runs
    /// `component` to its end, cancels `shutdown` and stops both. The component's own outcome
    /// is returned as is.
    ///
    /// # Errors
    /// The metrics endpoint cannot be bound; the component has not run then.
    pub async fn run<T>(
        self,
        metrics: Option<MetricsSettings>,
        shutdown: CancellationToken,
        component: impl Future<Output = T>,
    ) -> anyhow::Result<T> {
        let endpoint = match metrics {
            Some(settings) => {
                let token = settings.token.is_some();
                let router = metrics_endpoint::router(self.registry, self.liveness.clone());
                let running = metrics_endpoint::start(settings, router).await?;
                println!("{}", metrics_endpoint::banner(running.addr, token));
                Some(running)
            }
            None => None,
        };
        let supervision =
            Service::from_env().supervise(self.liveness, self.status, shutdown.clone());
        let outcome = component.await;
        shutdown.cancel();
        supervision.finish(STOP_LIMIT).await;
        if let Some(endpoint) = endpoint {
            endpoint.finish(STOP_LIMIT).await;
        }
        Ok(outcome)
    }
}
