//! Fixtures for dongle-relay's end-to-end tests (the root `tests/` directory): every component
//! runs in-process on `127.0.0.1:0`, and every fixture signals readiness instead of sleeping.
//!
//! - [`relay`]: [`Relay`], the self-hosted relay over TLS with a self-signed certificate the
//!   other fixtures pin, fixed SAS rules ([`HC`], [`LISTEN_KEY`], [`SEND_KEY`]), configuration
//!   builders for listeners and proxies (1:1 by default; any [`local_proxy::TunnelMode`] with
//!   `proxy_config_mode`), stop and restart on the same port.
//! - [`listener`]: [`Listener`], a running relay-listener with any target connector.
//! - [`proxy`]: [`Proxy`], a running local-proxy on its own port.
//! - [`targets`]: TCP targets: [`targets::echo`], [`targets::answer_after_eof`],
//!   [`targets::recording`] (peer addresses, PROXY v2 headers, payload), [`targets::dead_port`].
//! - [`client`]: license-client stand-ins: [`client::round_trip`], [`client::exchange`],
//!   [`client::refused_client`], [`client::connect_tls`], [`client::random`].
//! - [`foreign`]: a foreign listener that half-closes as .NET's does (frames, not messages).
//! - [`sender`]: a raw Hybrid Connections sender with hand-picked headers.
//! - [`http`]: HTTP request mode: a plain HTTPS client ([`http::https_request`]), an endpoint
//!   for a listener to forward to ([`http::echo_endpoint`]), a listener that never answers
//!   ([`http::silent_listener`]).
//! - [`license`]: [`license::License`], a license server with a seat count, and its clients.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::{Listener, Proxy, Relay, client, targets};
//! let relay = Relay::start_tls().await;
//! let listener = Listener::spawn(relay.listener_config(targets::echo().await));
//! listener.status().wait_for(|s| s.connected).await;
//! let proxy = Proxy::spawn(relay.proxy_config_at("branch-a")).await;
//! assert_eq!(client::round_trip(proxy.addr(), b"hi").await, b"hi");
//! # }
//! ```
//!
//! Fixtures stop what they started when dropped; keep them in a binding for the whole test.

pub mod client;
pub mod foreign;
pub mod http;
pub mod license;
pub mod listener;
pub mod proxy;
pub mod relay;
pub mod sender;
pub mod targets;

use std::time::Duration;

pub use listener::Listener;
pub use proxy::Proxy;
pub use relay::{HC, LISTEN_KEY, Relay, SEND_KEY};

/// The limit every end-to-end test puts on itself (`tokio::time::timeout`).
pub const LIMIT: Duration = Duration::from_secs(60);
