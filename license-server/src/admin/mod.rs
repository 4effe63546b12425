//! The license server's admin endpoint (served by [`ops_http`]): what MxNet2's "Display
//! Connection Status" window shows and does (sections 4.1, 6.3, 6.7 of the manual), as JSON,
//! as a self-refreshing web page, and as Prometheus metrics.
//!
//! | route | access | what |
//! |---|---|---|
//! | `GET /` (`/app.js`, `/charts.js`, `/token.js`, `/style.css`, `/vendor/uplot/…`) | public | the status page (no data; it asks for the token) |
//! | `GET /healthz` | public | `{"live": bool}`, 503 when the engine's heartbeat is stale |
//! | `GET /api/status` | token | [`AdminStatus`] |
//! | `POST /api/sessions/{id}/disconnect` | token | ends a session and its logins |
//! | `POST /api/logins/logout` | token | body `{"session", "dongle_key", "slot"}`: removes one login |
//! | `GET /api/usage` | token | usage history: summary or events, JSON or CSV; chart series ([`usage`]) |
//! | `GET /metrics` | token | [`crate::metrics`] |
//!
//! The relay-listener usually runs as another process; when the same process runs it, an
//! [`InProcessListener`] adds its live state to the status and its metrics to `/metrics`.

pub mod page;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;

use http::StatusCode;
use ops_http::{Reply, Request, Router, error_reply, json_reply};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::server::{LIVENESS_MAX_AGE, LicenseServer, ProxyHeaderStats};
use crate::store::StoreStatus;
use license_core::engine::{SessionId, StatusSnapshot};

/// Reads the in-process relay-listener's state.
pub type ListenerProbe = Arc<dyn Fn() -> ListenerState + Send + Sync>;

/// What a relay-listener running in this process adds to the admin endpoint. License-core
/// does not know the listener's types: the caller reads them into these.
#[derive(Clone)]
pub struct InProcessListener {
    /// Its live state, for the status.
    pub probe: ListenerProbe,
    /// Its metrics (prefix `listener`), served at `/metrics` after the license server's.
    pub metrics: Arc<Registry>,
}

/// The relay-listener's state, as the admin status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerState {
    /// The relay it dials (host:port) and its hybrid connection.
    pub relay: String,
    /// The control channel is open.
    pub connected: bool,
    /// Times the control channel was opened.
    pub connections: u64,
    /// Times it was re-opened after being lost.
    pub reconnects: u64,
    /// Streams being pumped now.
    pub active_streams: u64,
    /// Streams accepted in total.
    pub accepted: u64,
    /// Streams rejected (target unreachable, busy).
    pub rejected: u64,
    /// Streams that failed otherwise.
    pub failed: u64,
    /// The last connection problem.
    pub last_error: Option<String>,
    /// Payload bytes sent to the relay.
    pub bytes_to_relay: u64,
    /// Payload bytes received from the relay.
    pub bytes_from_relay: u64,
    /// The most recent streams.
    pub recent_streams: Vec<ListenerStream>,
}

/// One tunnelled connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStream {
    /// The relay's connection id.
    pub id: String,
    /// The real client.
    pub client: SocketAddr,
    /// Its site.
    pub site: Option<String>,
    /// `active`, `ended`, `rejected` or `failed`.
    pub state: String,
}

/// The relay-listener part of the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerReport {
    /// Whether this process runs the relay-listener (otherwise nothing else is known here).
    pub in_process: bool,
    /// Its state, when it runs here.
    #[serde(flatten)]
    pub state: Option<ListenerState>,
}

/// The license server itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The program's version.
    pub version: String,
    /// The license port's address, once serving.
    pub listening: Option<SocketAddr>,
    /// The public key clients pin.
    pub public_key: String,
    /// When the server started (Unix ms).
    pub started_ms: u64,
    /// The engine's heartbeat is recent ([`LicenseServer::is_live`]).
    pub live: bool,
    /// Milliseconds since the last heartbeat.
    pub heartbeat_age_ms: Option<u64>,
    /// Peers whose PROXY headers are believed.
    pub trusted_proxies: String,
    /// PROXY headers accepted and refused.
    pub proxy_headers: ProxyHeaderStats,
}

/// The state database part of the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReport {
    /// Seats are persisted.
    pub enabled: bool,
    /// Why `StateDb=` is set but not in use.
    pub error: Option<String>,
    /// The database's state, when in use.
    #[serde(flatten)]
    pub status: Option<StoreStatus>,
}

/// `GET /api/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminStatus {
    /// The server.
    pub server: ServerInfo,
    /// Dongles, AppSlots, sessions and logins.
    #[serde(flatten)]
    pub snapshot: StatusSnapshot,
    /// Seat persistence.
    pub store: StoreReport,
    /// The relay-listener.
    pub relay_listener: ListenerReport,
}

/// The status of `server` (and of the in-process relay-listener, if `probe`).
pub fn status(server: &LicenseServer, probe: Option<&ListenerProbe>) -> AdminStatus {
    let age = server.heartbeat_age();
    AdminStatus {
        server: ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            listening: server.local_addr(),
            public_key: server.public_key().to_string(),
            started_ms: server.started_ms(),
            live: server.is_live(LIVENESS_MAX_AGE),
            heartbeat_age_ms: age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            trusted_proxies: server.trusted_proxies().to_string(),
            proxy_headers: server.proxy_header_stats(),
        },
        snapshot: server.snapshot(),
        store: StoreReport {
            enabled: server.store_status().is_some(),
            error: server.store_error().map(ToString::to_string),
            status: server.store_status(),
        },
        relay_listener: ListenerReport {
            in_process: probe.is_some(),
            state: probe.map(|p| p()),
        },
    }
}

/// The body of `POST /api/logins/logout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutRequest {
    /// The session.
    pub session: SessionId,
    /// The dongle's key (`logins[].dongle_key` of the status).
    pub dongle_key: String,
    /// The AppSlot.
    pub slot: u16,
}

/// The admin endpoint's routes for `server` and, when this process runs one, its
/// relay-listener.
pub fn router(server: &LicenseServer, listener: Option<InProcessListener>) -> Router {
    let mut registries = vec![Arc::new(crate::metrics::registry(server))];
    let probe = listener.map(|l| {
        registries.push(l.metrics);
        l.probe
    });
    let for_status = server.clone();
    let for_health = server.clone();
    let for_disconnect = server.clone();
    let for_logout = server.clone();
    let for_usage = server.clone();
    page::routes(Router::new())
        .route(
            http::Method::GET,
            "/healthz",
            ops_http::Access::Public,
            move |_| {
                let live = for_health.is_live(LIVENESS_MAX_AGE);
                async move {
                    let code = if live {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    json_reply(code, &serde_json::json!({ "live": live }))
                }
            },
        )
        .get("/api/status", move |_| {
            let body = status(&for_status, probe.as_ref());
            async move { json_reply(StatusCode::OK, &body) }
        })
        .post("/api/sessions/{id}/disconnect", move |req| {
            let reply = disconnect(&for_disconnect, &req);
            async move { reply }
        })
        .post("/api/logins/logout", move |req| {
            let reply = logout(&for_logout, &req);
            async move { reply }
        })
        .get("/api/usage", move |req| {
            let server = for_usage.clone();
            async move { usage::reply(&server, &req).await }
        })
        .metrics_of("/metrics", registries)
}

fn disconnect(server: &LicenseServer, req: &Request) -> Reply {
    let Some(id) = req.param("id").and_then(|id| id.parse::<SessionId>().ok()) else {
        return error_reply(StatusCode::BAD_REQUEST, "not a session id");
    };
    match server.disconnect_session(id) {
        Ok(()) => {
            tracing::info!(session = %id, by = %req.peer, "admin: session disconnected");
            json_reply(StatusCode::OK, &serde_json::json!({ "disconnected": id }))
        }
        Err(code) => not_found(&format!("no session {id}"), code),
    }
}

fn logout(server: &LicenseServer, req: &Request) -> Reply {
    let body: LogoutRequest = match req.json() {
        Ok(body) => body,
        Err(reply) => return *reply,
    };
    match server.logout_login(body.session, &body.dongle_key, body.slot) {
        Ok(()) => {
            tracing::info!(session = %body.session, dongle = %body.dongle_key,
                slot = body.slot, by = %req.peer, "admin: login logged out");
            json_reply(StatusCode::OK, &serde_json::json!({ "logged_out": body }))
        }
        Err(code) => not_found(
            &format!(
                "session {} has no login to AppSlot {} of {}",
                body.session, body.slot, body.dongle_key
            ),
            code,
        ),
    }
}

fn not_found(message: &str, code: license_core::ErrorCode) -> Reply {
    json_reply(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": message, "code": code.code() }),
    )
}
