//! An ops endpoint on the wire: the token is required on everything but public assets (401
//! with `WWW-Authenticate: Bearer` when missing or wrong), loopback `Host` without a token,
//! no cross-origin actions, 404/405, body limit, hardened headers, metrics, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use ops_http::client::{Answer, call};
use ops_http::{Asset, BearerToken, Router, json_reply};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "test-token-0123456789abcdef";

struct Running {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ops_http::OpsError>>,
    actions: Arc<AtomicU64>,
}

async fn start(token: Option<&str>) -> Running {
    let actions = Arc::new(AtomicU64::new(0));
    let counter = Counter::<u64>::default();
    counter.inc_by(3);
    let mut registry = Registry::with_prefix("demo");
    registry.register("widgets", "Widgets made.", counter);
    let hits = actions.clone();
    let router = Router::new()
        .asset("/", Asset::html("<!doctype html><title>t</title>"))
        .get("/api/status", |_| async {
            json_reply(StatusCode::OK, &serde_json::json!({"ok": true}))
        })
        .post("/api/things/{id}/poke", move |req| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                json_reply(
                    StatusCode::OK,
                    &serde_json::json!({"poked": req.param("id"), "bytes": req.body.len()}),
                )
            }
        })
        .metrics("/metrics", Arc::new(registry));
    let auth = token.map(|t| BearerToken::new(t).expect("token"));
    let listener = ops_http::bind("127.0.0.1:0".parse().expect("addr"), auth.as_ref())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(ops_http::serve(listener, router, auth, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
        actions,
    }
}

async fn req(r: &Running, method: Method, path: &str, token: Option<&str>) -> Answer {
    call(r.addr, method, path, token, None, LIMIT)
        .await
        .expect("answer")
}

/// A raw request, for headers the client helper does not send.
async fn raw(r: &Running, text: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(r.addr)
        .await
        .expect("connect");
    tcp.write_all(text.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
// Long: one checklist of cases on one fixture; split, each would set the fixture up again.
async fn token_guards_everything_but_assets() {
    let r = start(Some(TOKEN)).await;
    let page = req(&r, Method::GET, "/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("script-src 'self'")
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");

    for (method, path) in [
        (Method::GET, "/api/status"),
        (Method::POST, "/api/things/7/poke"),
        (Method::GET, "/metrics"),
    ] {
        let none = req(&r, method.clone(), path, None).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            none.headers["www-authenticate"], "Bearer realm=\"dongle-relay\"",
            "{path}"
        );
        let wrong = req(
            &r,
            method.clone(),
            path,
            Some("test-token-0123456789abcdeX"),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            wrong.headers["www-authenticate"]
                .to_str()
                .expect("ascii")
                .contains("invalid_token")
        );
    }
    assert_eq!(
        r.actions.load(Ordering::SeqCst),
        0,
        "refused before the handler"
    );

    let ok = req(&r, Method::GET, "/api/status", Some(TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json().expect("json")["ok"], true);
    let poke = req(&r, Method::POST, "/api/things/7/poke", Some(TOKEN)).await;
    assert_eq!(poke.json().expect("json")["poked"], "7");
    assert_eq!(r.actions.load(Ordering::SeqCst), 1);

    let metrics = req(&r, Method::GET, "/metrics", Some(TOKEN)).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    assert!(
        metrics.text().lines().any(|l| l == "demo_widgets_total 3"),
        "{}",
        metrics.text()
    );

    assert_eq!(
        req(&r, Method::GET, "/nope", Some(TOKEN)).await.status,
        StatusCode::NOT_FOUND
    );
    let wrong_method = req(&r, Method::GET, "/api/things/7/poke", Some(TOKEN)).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "POST");
    assert_eq!(
        wrong_method.json().expect("json")["error"],
        "method not allowed",
        "405 and 404 are the endpoint's JSON errors, hardened like the rest"
    );
    assert_eq!(wrong_method.headers["x-content-type-options"], "nosniff");
    // HEAD is answered wherever GET is, without a body.
    let head = req(&r, Method::HEAD, "/api/status", Some(TOKEN)).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text().is_empty());

    // A page on another origin cannot post actions, even with the token.
    let cross = raw(
        &r,
        &format!(
            "POST /api/things/7/poke HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Origin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            r.addr
        ),
    )
    .await;
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    // A body above the limit is refused.
    let big = format!(
        "POST /api/things/7/poke HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        r.addr,
        ops_http::MAX_BODY + 1,
        "x".repeat(ops_http::MAX_BODY + 1)
    );
    assert!(raw(&r, &big).await.starts_with("HTTP/1.1 413"));
    assert_eq!(r.actions.load(Ordering::SeqCst), 1);

    r.shutdown.cancel();
    tokio::time::timeout(LIMIT, r.task)
        .await
        .expect("stops in time")
        .expect("joined")
        .expect("clean stop");
}

#[tokio::test]
async fn without_a_token_only_loopback_hosts_are_served() {
    let r = start(None).await;
    assert_eq!(
        req(&r, Method::GET, "/api/status", None).await.status,
        StatusCode::OK
    );
    // DNS rebinding: a browser that resolved evil.example to 127.0.0.1 sends its name.
    let rebound = raw(
        &r,
        "GET /api/status HTTP/1.1\r\nHost: evil.example:12380\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let local = raw(
        &r,
        "GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    r.shutdown.cancel();
}

#[tokio::test]
async fn non_loopback_without_a_token_is_refused() {
    let err = ops_http::bind("0.0.0.0:0".parse().expect("addr"), None)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("without a bearer token"), "{err}");
    // Nothing was bound: the check comes first (and `serve` repeats it on the listener's own
    // address, see `check_bind`'s tests).
    let token = BearerToken::new(TOKEN).expect("token");
    assert!(ops_http::check_bind("0.0.0.0:12380".parse().expect("addr"), Some(&token)).is_ok());
}
