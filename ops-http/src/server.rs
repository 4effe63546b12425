//! The HTTP/1.1 server: accepts connections (at most [`MAX_CONNECTIONS`] at once, with a
//! deadline for the request head: hyper's own connection loop, which `axum::serve` does not
//! offer), applies the endpoint's checks (bind policy, loopback `Host` without a token,
//! same-origin actions) as a tower stack in front of the axum router (token check, body of at
//! most [`MAX_BODY`] bytes, the route's handler), and hardens every response. On shutdown it stops accepting, lets each connection finish its
//! request, and waits at most [`SHUTDOWN_GRACE`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::bind::{BindError, check_bind};
use crate::reply::error_reply;
use crate::router::{Auth, Router};
use crate::token::BearerToken;

/// The largest request body read.
pub const MAX_BODY: usize = 64 * 1024;
/// How long shutdown waits for requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// A request head must arrive within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an endpoint cannot run.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The address is not allowed without a token.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The socket cannot be bound or inspected.
    #[error("admin endpoint {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds `addr` after checking that it may be used with `token` ([`check_bind`]).
///
/// # Errors
/// A non-loopback address without a token, or a socket error.
pub async fn bind(addr: SocketAddr, token: Option<&BearerToken>) -> Result<TcpListener, OpsError> {
    check_bind(addr, token)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| OpsError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Serves `router` on `listener` until `shutdown` is cancelled. With `auth`, every route but
/// public assets needs `Authorization: Bearer <token>`.
///
/// # Errors
/// The listener is on a non-loopback address and `auth` is `None`, or its address cannot be
/// read.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    auth: Option<BearerToken>,
    shutdown: CancellationToken,
) -> Result<(), OpsError> {
    let local = listener.local_addr().map_err(|source| OpsError::Listen {
        addr: "(unknown)".to_owned(),
        source,
    })?;
    check_bind(local, auth.as_ref())?;
    tracing::info!(addr = %local, token = auth.is_some(), "admin endpoint listening");
    let endpoint = Endpoint::new(router, auth);
    let tracker = TaskTracker::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    crate::accept::accept_limited(
        &listener,
        "admin endpoint",
        &shutdown,
        permits,
        |tcp, peer, permit| {
            tracker.spawn(connection(
                endpoint.clone(),
                tcp,
                peer,
                shutdown.clone(),
                permit,
            ));
        },
    )
    .await;
    drop(listener);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("admin endpoint: requests still open after {SHUTDOWN_GRACE:?}");
    }
    tracing::info!(addr = %local, "admin endpoint stopped");
    Ok(())
}

async fn connection(
    endpoint: Endpoint,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let service = service_fn(move |req: http::Request<Incoming>| {
        let endpoint = endpoint.clone();
        async move { endpoint.call(req, peer).await }
    });
    let connection = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        r = connection.as_mut() => r,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "admin connection ended: {e}");
    }
}

/// One endpoint's request path: the hardened headers on every answer (tower-http), the
/// loopback-`Host` and same-origin checks, then axum's routing (404, 405, the token check of
/// the routes that need it, the handler).
#[derive(Clone)]
struct Endpoint {
    service: BoxCloneSyncService<axum::extract::Request, Response, Infallible>,
    auth: Auth,
}

impl Endpoint {
    fn new(router: Router, auth: Option<BearerToken>) -> Self {
        let service = ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(middleware::from_fn(same_machine_and_origin))
            .service(router.into_axum());
        Self {
            service: BoxCloneSyncService::new(service),
            auth: Auth(auth.map(Arc::new)),
        }
    }

    async fn call(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response, Infallible> {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(self.auth.clone());
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let reply = self.service.clone().oneshot(req).await?;
        // The path only: queries and headers may carry secrets.
        tracing::debug!(%peer, %method, path, status = reply.status().as_u16(), "admin request");
        Ok(reply)
    }
}

/// Without a token, only requests naming a loopback `Host` are served (no DNS rebinding);
/// actions (not GET/HEAD/OPTIONS) from another origin are refused (no CSRF), token or not.
async fn same_machine_and_origin(request: axum::extract::Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let tokenless = matches!(request.extensions().get::<Auth>(), Some(Auth(None)) | None);
    if tokenless && !is_local_host(host) {
        return error_reply(
            StatusCode::FORBIDDEN,
            "this endpoint has no token and answers only requests for a loopback host \
             (127.0.0.1, [::1], localhost)",
        )
        .into_response();
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && cross_origin(request.headers(), host) {
        return error_reply(StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    next.run(request).await
}

/// Whether a `Host` header names this machine by address or as `localhost` (so no DNS name an
/// attacker controls can point a browser at the endpoint).
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether a browser says the request comes from another origin than `http://{host}`.
fn cross_origin(headers: &HeaderMap, host: &str) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    match header("origin") {
        None => false,
        Some(origin) => {
            let own = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            own.is_none_or(|o| !o.eq_ignore_ascii_case(host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts_and_origins() {
        for ok in [
            "127.0.0.1:12380",
            "127.0.0.1",
            "[::1]:80",
            "localhost:1",
            "LOCALHOST",
        ] {
            assert!(is_local_host(ok), "{ok}");
        }
        for refused in [
            "evil.example:12380",
            "10.0.0.5:1",
            "",
            "[2001:db8::1]:1",
            "localhost.evil",
        ] {
            assert!(!is_local_host(refused), "{refused}");
        }
        let mut headers = HeaderMap::new();
        assert!(!cross_origin(&headers, "127.0.0.1:1"));
        headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:1"));
        assert!(!cross_origin(&headers, "127.0.0.1:1"));
        headers.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(cross_origin(&headers, "127.0.0.1:1"));
        headers.insert("origin", HeaderValue::from_static("null"));
        assert!(cross_origin(&headers, "127.0.0.1:1"));
        let mut headers = HeaderMap::new();
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_origin(&headers, "127.0.0.1:1"));
    }
}
