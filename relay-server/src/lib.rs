//! The self-hosted Azure Relay **Hybrid Connections** relay.
//!
//! It serves `/$hc/{path}` exactly as Azure Relay does for WebSockets, so the same listener
//! and sender binaries (ours, or Microsoft's SDKs) work against it and against Azure:
//! listener control channels (`sb-hc-action=listen`), senders (`sb-hc-action=connect`), the
//! rendezvous through which a listener accepts or rejects each sender, `renewToken`, SAS
//! authorization, and the documented status codes — and HTTP request mode: a plain HTTP
//! request to `/{path}` is relayed to a listener as a `request` control message. `docs/hc-protocol.md` describes the
//! protocol as implemented; `docs/relay.md` how to run it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), relay_server::RelayError> {
//! use relay_server::{RelayConfig, config::{HybridConnectionConfig, Right, SasRule}};
//! let cert = relay_server::tls::self_signed(&["localhost", "127.0.0.1"])?;
//! let config = RelayConfig::new(cert.tls_config(), vec![HybridConnectionConfig::new(
//!     "license",
//!     vec![SasRule::new("listen", "key1", &[Right::Listen]), SasRule::new("send", "key2", &[Right::Send])],
//! )]);
//! let stats = config.stats();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(relay_server::run(config, listener, shutdown.clone()));
//! stats.wait_serving().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`config`] (TOML and code configuration), [`tls`] (PEM, self-signed, fingerprint),
//! [`stats`] (counters, readiness, liveness), [`metrics`] (Prometheus, read from the stats),
//! [`quickstart`] (the embedded default configuration), [`frames`] (WebSocket frames below
//! the message layer, for the bridge's transparent close).
//! Internals: `server` (accept loop, handshakes, shutdown), `router` (the protocol actions),
//! `request_parts` (paths, queries, header maps), `http_mode` and `http_exchange` (HTTP
//! request mode), `hub` (hybrid connections, listeners, rendezvous), `control_channel`,
//! `bridge`, `established` (the thread bridges run on) and `homed` (moving a socket to its
//! I/O driver), `auth`, `admission`, `handshake`, `refusal`.

mod admission;
mod auth;
mod bridge;
pub mod config;
mod control_channel;
mod established;
pub mod frames;
mod handshake;
mod homed;
mod http_exchange;
mod http_mode;
mod hub;
pub mod metrics;
pub mod quickstart;
mod refusal;
mod relay;
mod request_parts;
mod router;
mod server;
pub mod stats;
pub mod tls;

pub use config::{ConfigError, RelayConfig};
pub use server::run;
pub use stats::{Direction, RelayStats, Snapshot};
pub use tls::{SelfSigned, TlsError};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The configuration is invalid.
    #[error("invalid relay configuration: {0}")]
    Config(#[from] ConfigError),
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The listening socket failed.
    #[error("relay socket: {0}")]
    Io(#[from] std::io::Error),
}
