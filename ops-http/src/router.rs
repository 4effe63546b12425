//! Routes: a method, a path pattern (`/api/sessions/{id}/disconnect`: literal segments and
//! `{name}` captures), whether the bearer token is needed, and an async handler that receives
//! the whole (small) request and returns a [`Reply`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;

use crate::reply::{Asset, Reply, error_reply};

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
    /// The `{name}` captures of the route's pattern, percent-decoding not applied.
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

type BoxReply = Pin<Box<dyn Future<Output = Reply> + Send>>;
type Handler = Arc<dyn Fn(Request) -> BoxReply + Send + Sync>;

#[derive(Clone)]
enum Segment {
    Literal(String),
    Capture(String),
}

#[derive(Clone)]
struct Route {
    method: Method,
    pattern: Vec<Segment>,
    access: Access,
    handler: Handler,
}

/// The routes of an endpoint.
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes.len())
            .finish()
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    segments(pattern)
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Capture(name.to_owned()),
                None => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

/// What routing found for a request.
pub(crate) enum Found<'a> {
    /// A route and its captures.
    Route {
        access: Access,
        handler: &'a Handler,
        params: Vec<(String, String)>,
    },
    /// The path exists with other methods (405).
    WrongMethod(Vec<Method>),
    /// Nothing (404).
    Nothing,
}

impl Router {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route. `pattern` segments in braces capture one path segment each.
    pub fn route<F, Fut>(
        mut self,
        method: Method,
        pattern: &str,
        access: Access,
        handler: F,
    ) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        self.routes.push(Route {
            method,
            pattern: parse_pattern(pattern),
            access,
            handler,
        });
        self
    }

    /// A GET route that needs the token.
    pub fn get<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.route(Method::GET, pattern, Access::Token, handler)
    }

    /// A POST route that needs the token.
    pub fn post<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
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
    pub fn merge(mut self, other: Router) -> Self {
        self.routes.extend(other.routes);
        self
    }

    pub(crate) fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let wanted: Vec<&str> = segments(path).collect();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = matches(&route.pattern, &wanted) else {
                continue;
            };
            let same =
                route.method == method || (method == Method::HEAD && route.method == Method::GET);
            if same {
                return Found::Route {
                    access: route.access,
                    handler: &route.handler,
                    params,
                };
            }
            allowed.push(route.method.clone());
        }
        if allowed.is_empty() {
            Found::Nothing
        } else {
            Found::WrongMethod(allowed)
        }
    }
}

fn matches(pattern: &[Segment], path: &[&str]) -> Option<Vec<(String, String)>> {
    if pattern.len() != path.len() {
        return None;
    }
    let mut params = Vec::new();
    for (segment, part) in pattern.iter().zip(path) {
        match segment {
            Segment::Literal(l) if l == part => {}
            Segment::Literal(_) => return None,
            Segment::Capture(name) => params.push((name.clone(), (*part).to_owned())),
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok(_: Request) -> Reply {
        error_reply(StatusCode::OK, "ok")
    }

    #[test]
    fn patterns_capture_segments_and_methods_are_told_apart() {
        let router = Router::new()
            .get("/api/status", ok)
            .post("/api/sessions/{id}/disconnect", ok)
            .asset("/", Asset::html("<p>hi</p>"));
        match router.find(&Method::POST, "/api/sessions/00ab/disconnect") {
            Found::Route { access, params, .. } => {
                assert_eq!(access, Access::Token);
                assert_eq!(params, [("id".to_owned(), "00ab".to_owned())]);
            }
            _ => panic!("route expected"),
        }
        assert!(matches!(
            router.find(&Method::GET, "/"),
            Found::Route {
                access: Access::Public,
                ..
            }
        ));
        assert!(matches!(
            router.find(&Method::HEAD, "/api/status"),
            Found::Route { .. }
        ));
        match router.find(&Method::GET, "/api/sessions/1/disconnect") {
            Found::WrongMethod(allowed) => assert_eq!(allowed, [Method::POST]),
            _ => panic!("405 expected"),
        }
        assert!(matches!(
            router.find(&Method::GET, "/api/status/extra"),
            Found::Nothing
        ));
    }
}
