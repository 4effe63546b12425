//! The HTTP/1.1 server: accepts connections (at most [`MAX_CONNECTIONS`] at once), applies the
//! endpoint's checks (bind policy, loopback `Host` without a token, same-origin actions, bearer
//! token) before reading a body of at most [`MAX_BODY`] bytes, runs the route's handler and
//! hardens the response. On shutdown it stops accepting, lets each connection finish its
//! request, and waits at most [`SHUTDOWN_GRACE`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bind::{BindError, check_bind};
use crate::reply::{Reply, error_reply, harden};
use crate::router::{Access, Found, Request, Router};
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

struct Endpoint {
    router: Router,
    auth: Option<BearerToken>,
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
    let endpoint = Arc::new(Endpoint { router, auth });
    let tracker = TaskTracker::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                tracker.spawn(connection(
                    endpoint.clone(),
                    tcp,
                    peer,
                    shutdown.clone(),
                    permit,
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("admin endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
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
    endpoint: Arc<Endpoint>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let service = service_fn(move |req| {
        let endpoint = endpoint.clone();
        async move { Ok::<_, Infallible>(handle(&endpoint, peer, req).await) }
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

async fn handle(endpoint: &Endpoint, peer: SocketAddr, req: http::Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let mut reply = respond(endpoint, peer, &parts, body).await;
    harden(&mut reply);
    // The path only: queries and headers may carry secrets.
    tracing::debug!(%peer, method = %parts.method, path = parts.uri.path(),
        status = reply.status().as_u16(), "admin request");
    reply
}

async fn respond(endpoint: &Endpoint, peer: SocketAddr, parts: &Parts, body: Incoming) -> Reply {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if endpoint.auth.is_none() && !is_local_host(host) {
        return error_reply(
            StatusCode::FORBIDDEN,
            "this endpoint has no token and answers only requests for a loopback host \
             (127.0.0.1, [::1], localhost)",
        );
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && cross_origin(&parts.headers, host) {
        return error_reply(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    let path = parts.uri.path();
    let (access, handler, params) = match endpoint.router.find(&parts.method, path) {
        Found::Route {
            access,
            handler,
            params,
        } => (access, handler, params),
        Found::WrongMethod(allowed) => {
            let mut reply = error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
                reply.headers_mut().insert(header::ALLOW, value);
            }
            return reply;
        }
        Found::Nothing => return error_reply(StatusCode::NOT_FOUND, "no such page"),
    };
    if access == Access::Token
        && let Some(token) = &endpoint.auth
    {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        let (ok, challenge) = match presented {
            None => (false, "Bearer realm=\"dongle-relay\""),
            Some(value) => (
                token.authorizes(value),
                "Bearer realm=\"dongle-relay\", error=\"invalid_token\"",
            ),
        };
        if !ok {
            tracing::debug!(%peer, path, "admin request without a valid token");
            let mut reply = error_reply(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required (Authorization: Bearer <token>)",
            );
            reply.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            return reply;
        }
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large or broken",
            );
        }
    };
    handler(Request {
        method: parts.method.clone(),
        path: path.to_owned(),
        params,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
        peer,
    })
    .await
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
