//! The license server: the tokio server around `license-core`'s engine and protocol, with what
//! a running service needs around it.
//!
//! - [`server`]: the tokio server (connections, dispatch, PROXY v2 identity, heartbeat).
//! - [`config`]: `mxnet2.ini` / TOML server configuration.
//! - [`backends`]: dongle backends (simulated, USB).
//! - [`store`]: sessions and logins persisted in SQLite, so seats survive a restart, and the
//!   usage history.
//! - [`usage`]: usage reports (summary and events) from that history.
//! - [`admin`]: the admin endpoint's routes: status JSON, actions, status page, metrics.
//! - [`logs`]: the daily `mxnetYYYY-MM-DD.log` writer.
//! - [`metrics`]: the Prometheus metrics (counters on the request path, state read at scrape).
//!
//! Nothing here depends on the relay: the relay carries the same TCP stream.

pub mod admin;
pub mod backends;
pub mod config;
pub mod logs;
pub mod metrics;
pub mod server;
pub mod store;
pub mod usage;

pub use config::{DEFAULT_PORT, ServerConfig};
pub use server::{LicenseServer, Peer, ServerError, run};
