//! A network license server with the semantics of the MxNet2 remote API, its wire protocol and
//! its client library.
//!
//! - [`admin`]: the admin endpoint's routes: status JSON, actions, status page, metrics.
//! - [`error`]: the return codes (the manual's numbers).
//! - [`clock`]: time sources (the engine takes `now` from its callers).
//! - [`engine`]: sessions, AppSlot seats, timeouts, licence types; pure logic.
//! - [`dongle`]: dongle backends (simulated, USB) and the naming rules.
//! - [`config`]: `mxnet2.ini` / TOML server configuration.
//! - [`protocol`]: frames, commands, key exchange and packet authentication.
//! - [`server`]: the tokio server.
//! - [`client`]: the r-API client library (async, blocking, process-wide).
//! - [`logs`]: the daily `mxnetYYYY-MM-DD.log` writer.
//! - [`metrics`]: the Prometheus metrics (counters on the request path, state read at scrape).
//! - [`store`]: sessions and logins persisted in SQLite, so seats survive a restart.
//!
//! Nothing here depends on the relay: the relay carries the same TCP stream.

pub mod admin;
pub mod client;
pub mod clock;
pub mod config;
pub mod dongle;
pub mod engine;
pub mod error;
pub mod logs;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod store;

pub use config::{DEFAULT_PORT, ServerConfig};
pub use engine::{Engine, SlotRef};
pub use error::ErrorCode;
pub use server::{LicenseServer, Peer, ServerError, run};
