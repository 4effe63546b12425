//! The relay-listener: runs on the dongle host, keeps an outbound control channel to the relay
//! and bridges each accepted rendezvous to a local TCP target (the license server).
//!
//! - [`config`]: [`ListenerConfig`] and the `listen` configuration file.
//! - [`status`]: [`ListenerStatus`], the live state (connected, reconnects, streams, counters).
//! - [`identity`]: [`RemoteClient`], the real client behind a connection (sender headers,
//!   relay endpoint, site), and [`IdentityConfig`], how the target learns it.
//! - [`target`]: [`TargetConnector`], how a rendezvous reaches the target, the plain
//!   [`TcpTarget`] and [`ConfiguredTarget`] (the connector of the configured identity mode).
//! - [`proxy_v2`]: [`ProxyV2Target`], a PROXY protocol v2 header naming the client and site.
//! - [`loopback`]: [`LoopbackTarget`], a per-client loopback source address (Linux).
//! - [`control`]: one control-channel session (accepts, HTTP requests and their inline
//!   answers, token renewal, keep-alive pings).
//! - [`http_mode`]: [`HttpForward`], HTTP-mode requests forwarded to the dongle host's admin
//!   endpoint and answered inline or on the request's rendezvous.
//! - [`rendezvous`]: one accepted connection: connect the target, then accept or reject.
//! - [`mux_session`]: a local-proxy's pooled connection, many streams over yamux.
//! - [`preopened`]: a local-proxy's pre-opened 1:1 connection, target connected once the
//!   client is named.
//! - [`listener`]: [`RelayListener`], the reconnect loop and graceful shutdown.
//! - [`metrics`]: Prometheus metrics read from the [`ListenerStatus`].

pub mod config;
pub mod control;
pub mod http_mode;
pub mod identity;
pub mod listener;
pub mod loopback;
pub mod metrics;
pub mod mux_session;
pub mod preopened;
pub mod proxy_v2;
pub mod rendezvous;
pub mod status;
pub mod target;

pub use config::{ListenerConfig, ListenerFile, ListenerOptions};
pub use http_mode::HttpForward;
pub use identity::{ClientSource, IdentityConfig, IdentityMode, RemoteClient};
pub use listener::{ListenerError, RelayListener};
pub use loopback::LoopbackTarget;
pub use proxy_v2::{PP2_TYPE_SITE, ProxyV2Target};
pub use status::{ListenerSnapshot, ListenerStatus, StreamInfo, StreamState};
pub use target::{ConfiguredTarget, Connected, TargetConnector, TargetRequest, TcpTarget};

use tokio_util::sync::CancellationToken;

/// Runs a relay-listener with the configured target and identity mode until `shutdown` is cancelled.
///
/// # Errors
/// [`ListenerError`] when the configuration is unusable (the relay being unreachable is not an
/// error: it is retried forever).
pub async fn run(config: ListenerConfig, shutdown: CancellationToken) -> Result<(), ListenerError> {
    RelayListener::new(config)?.run(shutdown).await
}
