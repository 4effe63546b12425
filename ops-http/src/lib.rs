//! A small admin/operations HTTP endpoint that any component embeds: a hyper 1 HTTP/1.1 server
//! ([`serve`]) over a [`Router`] (axum underneath, tower-http for the response headers) of JSON
//! handlers, embedded static files ([`Asset`]) and a Prometheus/OpenMetrics `/metrics` page
//! rendered from a `prometheus_client` registry.
//!
//! Security model, in one place so every component gets the same:
//!
//! - [`BearerToken`]: `Authorization: Bearer <token>` on every route but public assets; a
//!   missing or wrong token answers 401 with `WWW-Authenticate: Bearer`. The comparison is
//!   constant-time; the token never reaches logs or `Debug` output.
//! - [`check_bind`]: an endpoint without a token may only listen on a loopback address; `serve`
//!   enforces it again, so no caller can forget.
//! - Without a token, requests must name a loopback `Host` (`127.0.0.1:port`, `[::1]:port`,
//!   `localhost`): a web page on another origin cannot reach the endpoint through DNS
//!   rebinding.
//! - Requests other than GET/HEAD with an `Origin` header must come from the endpoint's own
//!   origin, so a page elsewhere cannot post actions (CSRF), token or not.
//! - Responses carry `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`; HTML pages also a strict
//!   `Content-Security-Policy` (same-origin scripts, styles and fetches only).
//!
//! Beside the endpoint, the runtime pieces every component's server needs: its accept loop
//! ([`accept::accept_until`]), its liveness [`Heartbeat`] and its [`Published`] state that
//! tests and pages wait on.
//!
//! Nothing here knows about licenses or relays: components build a [`Router`] with their own
//! routes and collectors.

pub mod accept;
mod bind;
pub mod client;
pub mod heartbeat;
pub mod metrics;
mod published;
mod reply;
mod router;
mod server;
mod token;

pub use bind::{BindError, DEFAULT_ADMIN_PORT, check_bind, is_loopback_only};
pub use heartbeat::Heartbeat;
pub use published::Published;
pub use reply::{Asset, Reply, csv_reply, error_reply, json_reply};
pub use router::{Access, Request, Router};
pub use server::{MAX_BODY, OpsError, SHUTDOWN_GRACE, bind, serve};
pub use token::{BearerToken, MIN_TOKEN_LEN, TokenError};
