//! The relay-listener: runs on the dongle host, keeps an outbound control channel to the relay
//! and bridges each accepted rendezvous to a local TCP target (the license server).
//!
//! - [`config`]: [`ListenerConfig`] and the `listen` configuration file.
//! - [`status`]: [`ListenerStatus`], the live state (connected, reconnects, streams, counters).
//! - [`target`]: [`TargetConnector`], how a rendezvous reaches the target — **the extension
//!   point for the PROXY v2 header** — and the plain [`TcpTarget`].
//! - [`control`]: one control-channel session (accepts, token renewal, keep-alive pings).
//! - [`rendezvous`]: one accepted connection: connect the target, then accept or reject.
//! - [`listener`]: [`RelayListener`], the reconnect loop and graceful shutdown.

pub mod config;
pub mod control;
pub mod listener;
pub mod rendezvous;
pub mod status;
pub mod target;

pub use config::{ListenerConfig, ListenerFile};
pub use listener::{ListenerError, RelayListener};
pub use status::{ListenerSnapshot, ListenerStatus};
pub use target::{TargetConnector, TcpTarget};

use tokio_util::sync::CancellationToken;

/// Runs a relay-listener with the plain TCP target until `shutdown` is cancelled.
///
/// # Errors
/// [`ListenerError`] when the configuration is unusable (the relay being unreachable is not an
/// error: it is retried forever).
pub async fn run(config: ListenerConfig, shutdown: CancellationToken) -> Result<(), ListenerError> {
    RelayListener::new(config)?.run(shutdown).await
}
