//! One view across dongle hosts (issue 18): a headquarters instance reads the status and the
//! usage history of every configured license server's admin endpoint — directly
//! (`http://host:port`) or through the relay's HTTP request mode
//! (`https://RELAY/<hybrid-connection>/…` with a Send token) — and shows them on one page and
//! as one JSON document (`GET /api/hosts`).
//!
//! - [`config`]: the `hq.toml` file: its endpoint, its token, and each host's way in and token.
//! - [`fetch`]: one GET to a host's admin endpoint, bounded in time and size.
//! - [`view`]: what the page and `/api/hosts` show: each host's seats and usage (or why it
//!   cannot be read), and the combined table.
//! - [`endpoint`]: the routes (page, `/api/hosts`) and [`serve`].
//!
//! Each host's own admin token is still required: the headquarters sends it with every request,
//! and a host that refuses it shows as an error row while the others still show. The view is
//! served by [`ops_http`] with its own bearer token, like the admin endpoint it reads.

pub mod config;
pub mod endpoint;
pub mod fetch;
pub mod view;

pub use config::{ConfigError, HostConfig, HqConfig, Route};
pub use endpoint::{router, serve};
pub use view::{CombinedRow, HostView, HostsView};
