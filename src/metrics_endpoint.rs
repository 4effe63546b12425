//! The metrics endpoint of the tunnel commands (`relay`, `listen`, `proxy`): `--metrics ADDR`
//! serves Prometheus metrics (`/metrics`) and a health check (`/healthz`) through `ops-http`
//! on an address of its own, separate from the traffic. Off by default; like the license
//! server's admin endpoint it may only listen on loopback unless a bearer token is configured
//! (`DONGLE_RELAY_METRICS_TOKEN`, or the first line of `--metrics-token-file`), and `/metrics`
//! then needs the token. `/healthz` is public and answers the component's [`Liveness`] check:
//! `{"live": true}` (200) or `{"live": false, "reason": …}` (503).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use http::StatusCode;
use ops_http::{Access, BearerToken, Router, json_reply};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::service::Liveness;

/// Environment variable holding the metrics endpoint's bearer token.
pub const METRICS_TOKEN_ENV: &str = "DONGLE_RELAY_METRICS_TOKEN";

/// The metrics options of a command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (/metrics) and a health check (/healthz) on this address, e.g.
    /// 127.0.0.1:9464; off by default. Off loopback it needs a bearer token
    /// ($DONGLE_RELAY_METRICS_TOKEN or --metrics-token-file).
    #[arg(long, value_name = "IP:PORT")]
    pub metrics: Option<SocketAddr>,
    /// File whose first line is the metrics endpoint's bearer token (at least 16 characters)
    /// [$DONGLE_RELAY_METRICS_TOKEN wins].
    #[arg(long, value_name = "FILE", requires = "metrics")]
    pub metrics_token_file: Option<PathBuf>,
}

/// A validated metrics endpoint: where, and its token.
pub struct MetricsSettings {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its token, if any.
    pub token: Option<BearerToken>,
}

impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("addr", &self.addr)
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl MetricsArgs {
    /// The endpoint, if asked for: its token from the environment, else the file; refused off
    /// loopback without one (before anything is bound).
    ///
    /// # Errors
    /// An unreadable or too short token, or a non-loopback address without one.
    pub fn settings(&self) -> anyhow::Result<Option<MetricsSettings>> {
        let Some(addr) = self.metrics else {
            return Ok(None);
        };
        let token = match std::env::var(METRICS_TOKEN_ENV) {
            Ok(text) if !text.trim().is_empty() => Some(
                BearerToken::new(&text).map_err(|e| anyhow::anyhow!("{METRICS_TOKEN_ENV}: {e}"))?,
            ),
            _ => match &self.metrics_token_file {
                Some(path) => Some(BearerToken::from_file(path)?),
                None => None,
            },
        };
        ops_http::check_bind(addr, token.as_ref()).context("--metrics")?;
        Ok(Some(MetricsSettings { addr, token }))
    }
}

/// The endpoint's routes: `/healthz` (public) from `liveness`, `/metrics` from `registry`.
pub fn router(registry: Registry, liveness: Arc<dyn Liveness>) -> Router {
    Router::new()
        .route(http::Method::GET, "/healthz", Access::Public, move |_| {
            let liveness = liveness.clone();
            async move {
                match liveness.check().await {
                    Ok(()) => json_reply(StatusCode::OK, &serde_json::json!({ "live": true })),
                    Err(reason) => json_reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &serde_json::json!({ "live": false, "reason": reason }),
                    ),
                }
            }
        })
        .metrics("/metrics", Arc::new(registry))
}

/// A running endpoint. It outlives the component's shutdown signal on purpose: during the
/// drain `/metrics` shows the connections draining and `/healthz` answers 503 (the component
/// no longer accepts), which tells load balancers and probes to look elsewhere. The command
/// stops it with [`Running::finish`] once the component has stopped.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Binds `settings.addr` and serves `router` until [`Running::finish`].
///
/// # Errors
/// The address cannot be bound.
pub async fn start(settings: MetricsSettings, router: Router) -> anyhow::Result<Running> {
    let listener = ops_http::bind(settings.addr, settings.token.as_ref()).await?;
    let addr = listener.local_addr().context("metrics endpoint address")?;
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            ops_http::serve(listener, router, settings.token, stop)
                .await
                .context("metrics endpoint")
        }
    });
    Ok(Running { addr, stop, task })
}

impl Running {
    /// Stops the endpoint (requests in progress finish) and waits at most `limit`.
    pub async fn finish(self, limit: std::time::Duration) {
        self.stop.cancel();
        match tokio::time::timeout(limit, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("{e:#}"),
            Ok(Err(e)) => tracing::warn!("metrics endpoint task failed: {e}"),
            Err(_) => tracing::warn!("metrics endpoint still running after {limit:?}"),
        }
    }
}

/// The banner line for the endpoint at `addr`.
pub fn banner(addr: SocketAddr, token: bool) -> String {
    format!(
        "metrics: http://{addr}/metrics, health: http://{addr}/healthz ({})",
        if token {
            "bearer token required for /metrics"
        } else {
            "loopback, no token"
        }
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::service::CheckFn;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    fn settings(argv: &[&str]) -> anyhow::Result<Option<MetricsSettings>> {
        Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))?
            .metrics
            .settings()
    }

    #[test]
    fn off_by_default_loopback_only_without_a_token() {
        // The variable is not set in the test environment.
        assert!(std::env::var_os(METRICS_TOKEN_ENV).is_none());
        assert!(settings(&[]).expect("parse").is_none());
        let s = settings(&["--metrics", "127.0.0.1:9464"])
            .expect("loopback")
            .expect("on");
        assert_eq!(s.addr, "127.0.0.1:9464".parse().expect("addr"));
        assert!(s.token.is_none());
        let err = settings(&["--metrics", "0.0.0.0:9464"])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("--metrics"), "{err}");

        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "metrics-token-0123456789\n").expect("write");
        let path = file.to_str().expect("utf-8");
        let s = settings(&["--metrics", "0.0.0.0:9464", "--metrics-token-file", path])
            .expect("with a token")
            .expect("on");
        assert!(s.token.is_some());
        assert!(!format!("{s:?}").contains("metrics-token"), "{s:?}");
        assert!(settings(&["--metrics-token-file", path]).is_err());
    }

    #[tokio::test]
    async fn healthz_answers_the_liveness_check_and_metrics_need_the_token() {
        let mut registry = Registry::default();
        registry.register(
            "probe",
            "A test counter",
            prometheus_client::metrics::counter::Counter::<u64>::default(),
        );
        let live = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let check = {
            let live = live.clone();
            CheckFn(move || {
                if live.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("stalled".to_owned())
                }
            })
        };
        let token = BearerToken::new("metrics-token-0123456789").expect("token");
        let settings = MetricsSettings {
            addr: "127.0.0.1:0".parse().expect("addr"),
            token: Some(token),
        };
        let running = start(settings, router(registry, Arc::new(check)))
            .await
            .expect("start");
        let addr = running.addr;
        let limit = std::time::Duration::from_secs(10);
        let call = |path: &'static str, token: Option<&'static str>| {
            ops_http::client::call(addr, http::Method::GET, path, token, None, limit)
        };
        let health = call("/healthz", None).await.expect("healthz");
        assert_eq!(health.status, 200);
        assert_eq!(health.json().expect("json")["live"], true);
        live.store(false, std::sync::atomic::Ordering::SeqCst);
        let health = call("/healthz", None).await.expect("healthz");
        assert_eq!(health.status, 503);
        assert_eq!(health.json().expect("json")["reason"], "stalled");
        assert_eq!(call("/metrics", None).await.expect("metrics").status, 401);
        let metrics = call("/metrics", Some("metrics-token-0123456789"))
            .await
            .expect("metrics");
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.text().contains("probe_total 0"),
            "{}",
            metrics.text()
        );
        running.finish(limit).await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "stopped"
        );
    }
}
