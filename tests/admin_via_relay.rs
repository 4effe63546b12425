//! The dongle host's admin endpoint through the relay (issue 16, item 2): the relay-listener
//! beside the license server forwards HTTP-mode requests (`https://relay/license/…` with a
//! Send token in `ServiceBusAuthorization`) to the admin endpoint, without the hybrid
//! connection's name. The endpoint's bearer token is still required: with it the JSON status,
//! the page and `/metrics` come back (200), without it the endpoint refuses (401). A request
//! too large for the control channel travels over its rendezvous and is answered there.

mod license_ops;

use dongle_relay::commands::server::ops;
use license_ops::{LIMIT, Ops, TOKEN, dongle_host};
use relay_listener::RelayListener;
use test_support::http::{HttpReply, https_request};
use test_support::{Listener, Relay};

async fn get(relay: &Relay, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    https_request(relay.addr(), relay.cert(), "GET", path, headers, Vec::new()).await
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn the_admin_endpoint_answers_through_the_relay_with_its_token_only() {
    tokio::time::timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let (license_addr, listener_config, relay_name, server_config) = dongle_host(&relay).await;
        // What `dongle-relay server --relay-admin` does: the listener is built first (the
        // admin endpoint shows its state) and forwards to the admin endpoint once it is bound.
        let built = RelayListener::new(listener_config).expect("listener");
        let in_process = ops::in_process_listener(built.status(), relay_name);
        let ops = Ops::start_on(&server_config, license_addr, Some(TOKEN), Some(in_process)).await;
        let listener = Listener::run(built.with_http_target(&ops.admin.to_string()));
        listener.status().wait_for(|s| s.connected).await;

        let token = relay.send_token();
        let relay_auth = ("ServiceBusAuthorization", token.as_str());
        let bearer = format!("Bearer {TOKEN}");
        let app_auth = ("Authorization", bearer.as_str());

        let status = get(&relay, "/license/api/status", &[relay_auth, app_auth]).await;
        assert_eq!(
            status.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&status.body)
        );
        let json: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
        assert_eq!(json["dongles"][0]["name"], "SimDongle");
        assert_eq!(json["server"]["listening"], ops.license.to_string());
        assert!(
            status
                .header("content-type")
                .starts_with("application/json")
        );

        let refused = get(&relay, "/license/api/status", &[relay_auth]).await;
        assert_eq!(refused.status, 401);
        assert_eq!(
            refused.header("www-authenticate"),
            "Bearer realm=\"dongle-relay\""
        );
        let wrong = ("Authorization", "Bearer admin-token-for-tests-012345678X");
        assert_eq!(
            get(&relay, "/license/api/status", &[relay_auth, wrong])
                .await
                .status,
            401
        );
        assert_eq!(
            get(&relay, "/license/metrics", &[relay_auth]).await.status,
            401
        );
        let metrics = get(&relay, "/license/metrics", &[relay_auth, app_auth]).await;
        assert_eq!(metrics.status, 200);
        assert!(String::from_utf8_lossy(&metrics.body).contains("# EOF"));
        let page = get(&relay, "/license/", &[relay_auth]).await;
        assert_eq!(page.status, 200);
        assert!(String::from_utf8_lossy(&page.body).contains("data-testid=\"sessions-table\""));

        // The relay's own token is still needed first.
        assert_eq!(
            get(&relay, "/license/api/status", &[app_auth]).await.status,
            401
        );

        // 100 KiB body: the relay sends only the rendezvous address, the listener fetches
        // the request there and answers on it; the endpoint's token check still decides.
        let big = https_request(
            relay.addr(),
            relay.cert(),
            "POST",
            "/license/api/status",
            &[relay_auth],
            vec![b'x'; 100 << 10],
        )
        .await;
        assert_eq!(big.status, 405, "{:?}", String::from_utf8_lossy(&big.body));
        assert!(big.header("allow").contains("GET"), "{:?}", big.headers);
        eprintln!(
            "page {} bytes, metrics {} bytes",
            page.body.len(),
            metrics.body.len()
        );
        ops.stop().await;
    })
    .await
    .expect("within the limit");
}

/// An endpoint (ops-http, as the admin endpoint) whose `GET /big` answers 200 KiB of JSON
/// naming the path and query it saw; `token` as the admin endpoint's.
async fn big_endpoint(
    token: Option<&str>,
    stop: tokio_util::sync::CancellationToken,
) -> std::net::SocketAddr {
    let router = ops_http::Router::new().get("/big", |req: ops_http::Request| async move {
        let body = serde_json::json!({
            "path": req.path,
            "query": req.query,
            "pad": "x".repeat(200 << 10),
        });
        ops_http::json_reply(http::StatusCode::OK, &body)
    });
    let token = token.map(|t| ops_http::BearerToken::new(t).expect("token"));
    let socket = ops_http::bind("127.0.0.1:0".parse().expect("addr"), token.as_ref())
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(ops_http::serve(socket, router, token, stop));
    addr
}

/// A 200 KiB answer is too large for the control channel: the listener sends it on the
/// request's rendezvous. A listener without an HTTP target answers 404 at once.
#[tokio::test]
async fn large_answers_take_the_rendezvous_and_no_target_is_404() {
    tokio::time::timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let stop = tokio_util::sync::CancellationToken::new();
        let token = relay.send_token();
        let relay_auth = ("ServiceBusAuthorization", token.as_str());
        let bearer = format!("Bearer {TOKEN}");
        let app_auth = ("Authorization", bearer.as_str());
        let unused = test_support::targets::dead_port().await;

        let mut plain = Listener::connected(relay.listener_config(unused)).await;
        let none = get(&relay, "/license/big", &[relay_auth]).await;
        assert_eq!(none.status, 404);
        assert!(String::from_utf8_lossy(&none.body).contains("http_target"));
        plain.stop().await;

        let endpoint = big_endpoint(Some(TOKEN), stop.clone()).await;
        let mut config = relay.listener_config(unused);
        config.http_target = Some(endpoint.to_string());
        let mut forwarding = Listener::connected(config).await;
        let big = get(&relay, "/license/big?x=1", &[relay_auth, app_auth]).await;
        assert_eq!(big.status, 200);
        let json: serde_json::Value = serde_json::from_slice(&big.body).expect("json");
        assert_eq!(
            (json["path"].as_str(), json["query"].as_str()),
            (Some("/big"), Some("x=1"))
        );
        assert_eq!(json["pad"].as_str().map(str::len), Some(200 << 10));
        forwarding.stop().await;

        stop.cancel();
    })
    .await
    .expect("within the limit");
}
