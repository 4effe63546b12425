//! The local-proxy: runs at a client site, accepts local TCP connections and forwards each one
//! over the relay — as a stream of a pooled, multiplexed relay connection when the listener
//! is ours, else as one Hybrid Connections sender WebSocket (modelled on IPWorks'
//! AzureRelayProxy: local host/port, backlog, connection limit, idle timeout, keepalive,
//! optional TLS for local clients, accept/deny of clients, graceful shutdown), optionally with
//! Azure Relay Bridge's preamble.
//!
//! - [`config`]: [`ProxyConfig`] and the `proxy` configuration file.
//! - [`local_tls`]: TLS for local clients (PEM certificate and key).
//! - [`status`]: [`ProxyStatus`], live counters, dial latency, accept-loop heartbeat.
//! - [`metrics`]: Prometheus metrics read from the [`ProxyStatus`].
//! - [`pool`]: the pool of long-lived multiplexed relay connections (`auto`/`mux` modes).
//! - [`preopen`]: pre-opened 1:1 tunnels, parked before clients come (`preopen = N`).
//! - [`relay_dial`]: one sender WebSocket over the relay replicas, with fail-over.
//! - [`proxy`]: [`LocalProxy`], the accept loop and one tunnel per client; [`bind`].

pub mod config;
pub mod local_tls;
pub mod metrics;
pub mod pool;
pub mod preopen;
pub mod proxy;
pub mod relay_dial;
pub mod status;

pub use config::{ProxyConfig, ProxyFile, ProxyOptions, ProxySetup, TunnelMode};
pub use proxy::{LocalProxy, ProxyError, bind};
pub use status::{ProxySnapshot, ProxyStatus};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs a local-proxy on `listener` until `shutdown` is cancelled, then lets open tunnels drain
/// for the grace period.
///
/// # Errors
/// [`ProxyError`] when the configuration is unusable.
pub async fn run(
    config: ProxyConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    LocalProxy::new(config)?.run(listener, shutdown).await
}
