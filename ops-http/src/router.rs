//! Routes on axum: a method, a path pattern (`/api/sessions/{id}/disconnect`: literal segments
//! and `{name}` captures, axum's syntax), whether the bearer token is needed, and an async
//! handler that receives the whole (small) request as a [`Request`] and returns a [`Reply`].
//!
//! axum does the matching (404 and 405 with `Allow` included); this module adapts handlers,
//! puts the token check on the routes that need it, and gives unmatched requests the
//! endpoint's JSON errors.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawPathParams};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodFilter, on};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;

use crate::reply::{Asset, Reply, error_reply};
use crate::server::MAX_BODY;
use crate::token::BearerToken;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the endpoint (static files: they hold no data).
    Public,
    /// Only with the bearer token, when the endpoint has one.
    Token,
}

/// A request as a handler sees it: the body is read completely (at most
/// [`MAX_BODY`](crate::MAX_BODY) bytes) before the handler runs.
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The `{name}` captures of the route's pattern.
    pub params: Vec<(String, String)>,
    /// The query string, if any.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The TCP peer.
    pub peer: SocketAddr,
}

impl Request {
    /// The capture `name` of the route's pattern.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// A 400 reply saying what is wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Box<Reply>> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Box::new(error_reply(
                StatusCode::BAD_REQUEST,
                &format!("the body is not the expected JSON: {e}"),
            ))
        })
    }
}

/// The endpoint's token, as the server hands it to every request (an extension), so that a
/// router can be built before the token is known.
#[derive(Clone)]
pub(crate) struct Auth(pub(crate) Option<Arc<BearerToken>>);

/// The routes of an endpoint.
#[derive(Clone, Default)]
pub struct Router {
    inner: axum::Router,
    routes: usize,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .finish()
    }
}

impl Router {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route. `pattern` segments in braces capture one path segment each.
    ///
    /// # Panics
    /// Two routes with the same method and pattern, or a method axum cannot route (programming
    /// errors, found by the first test that builds the router).
    pub fn route<F, Fut>(self, method: Method, pattern: &str, access: Access, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let filter = MethodFilter::try_from(method).expect("a method axum can route");
        let adapted = move |params: RawPathParams,
                            ConnectInfo(peer): ConnectInfo<SocketAddr>,
                            request: axum::extract::Request| {
            let handler = handler.clone();
            async move {
                let params = params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                match whole(request, peer, params).await {
                    Ok(request) => handler(request).await.into_response(),
                    Err(reply) => reply.into_response(),
                }
            }
        };
        let mut method_router = on(filter, adapted);
        if access == Access::Token {
            method_router = method_router.route_layer(middleware::from_fn(require_token));
        }
        Self {
            inner: self.inner.route(pattern, method_router),
            routes: self.routes + 1,
        }
    }

    /// A GET route that needs the token.
    pub fn get<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.route(Method::GET, pattern, Access::Token, handler)
    }

    /// A POST route that needs the token.
    pub fn post<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.route(Method::POST, pattern, Access::Token, handler)
    }

    /// A public static file at `path`.
    pub fn asset(self, path: &str, asset: Asset) -> Self {
        self.route(Method::GET, path, Access::Public, move |_| async move {
            asset.reply()
        })
    }

    /// The metrics of `registry` at `path` (token needed), in the OpenMetrics text format that
    /// Prometheus scrapes.
    pub fn metrics(self, path: &str, registry: Arc<Registry>) -> Self {
        self.metrics_of(path, vec![registry])
    }

    /// The metrics of all `registries` at `path` as one exposition (token needed): for an
    /// endpoint serving several components of one process.
    pub fn metrics_of(self, path: &str, registries: Vec<Arc<Registry>>) -> Self {
        let registries: Arc<[Arc<Registry>]> = registries.into();
        self.get(path, move |_| {
            let registries = registries.clone();
            async move { crate::metrics::reply(&registries) }
        })
    }

    /// Adds every route of `other` (components contribute their routes to one endpoint).
    pub fn merge(self, other: Router) -> Self {
        Self {
            inner: self.inner.merge(other.inner),
            routes: self.routes + other.routes,
        }
    }

    /// The axum router that serves these routes, with the endpoint's JSON 404 and 405.
    pub(crate) fn into_axum(self) -> axum::Router {
        self.inner
            .method_not_allowed_fallback(|| async {
                error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            })
            .fallback(|| async { error_reply(StatusCode::NOT_FOUND, "no such page") })
    }
}

/// The request with its body read (at most [`MAX_BODY`] bytes), as handlers take it.
async fn whole(
    request: axum::extract::Request,
    peer: SocketAddr,
    params: Vec<(String, String)>,
) -> Result<Request, Reply> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large or broken",
            ));
        }
    };
    Ok(Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        params,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        peer,
    })
}

/// The bearer-token check of [`Access::Token`] routes: before the body is read, a missing or
/// wrong token answers 401 with `WWW-Authenticate: Bearer`.
async fn require_token(request: axum::extract::Request, next: Next) -> Response {
    let Some(Auth(Some(token))) = request.extensions().get::<Auth>().cloned() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let (ok, challenge) = match presented {
        None => (false, "Bearer realm=\"dongle-relay\""),
        Some(value) => (
            token.authorizes(value),
            "Bearer realm=\"dongle-relay\", error=\"invalid_token\"",
        ),
    };
    if ok {
        return next.run(request).await;
    }
    tracing::debug!(
        path = request.uri().path(),
        "admin request without a valid token"
    );
    let mut reply = error_reply(
        StatusCode::UNAUTHORIZED,
        "a valid bearer token is required (Authorization: Bearer <token>)",
    );
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    reply.into_response()
}
