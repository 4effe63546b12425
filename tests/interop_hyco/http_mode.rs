//! HTTP request mode: a `hyco-https` relayed server answering plain HTTP through our relay.

use super::*;

/// Sends one HTTP request to the relay (HTTP request mode) with a plain hyper client.
async fn http(
    relay: &Interop,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    https_request(
        relay.relay.addr(),
        relay.relay.cert(),
        method,
        path,
        headers,
        body,
    )
    .await
}

/// A hyco-https `createRelayedServer` serves plain HTTP through our relay: a GET with a query
/// and the token in `ServiceBusAuthorization` (inline on the control channel), a 1 MiB POST
/// with the token in `sb-hc-token` (request over the rendezvous), a small request with a
/// 1 MiB answer (response over the rendezvous); the application's own `Authorization`
/// reaches the listener; no token is `401`, and the answers carry what the listener sent.
#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn hyco_https_serves_plain_http_through_our_relay() {
    let Some(modules) = node_modules("hyco_https_serves_plain_http_through_our_relay").await else {
        return;
    };
    within(async {
        let relay = Interop::start(modules, |_| {}).await;
        let token = SasToken::sign(
            &relay.resource(),
            "send",
            &Secret::new(SEND_KEY),
            unix_now() + 3600,
        )
        .expect("sign")
        .expose()
        .to_owned();
        // No listener yet: 502 with a tracking id.
        let none = http(
            &relay,
            "GET",
            &format!("/{HC}/x"),
            &[("ServiceBusAuthorization", &token)],
            vec![],
        )
        .await;
        assert_eq!(none.status, 502, "{none:?}");
        assert!(
            String::from_utf8_lossy(&none.body).contains("TrackingId:"),
            "{none:?}"
        );

        let mut server = relay.node(
            "hyco-https-server.js",
            &[&relay.uri("listen"), "listen", LISTEN_KEY],
            None,
        );
        server.expect("LISTENING").await;
        relay.stats().wait_for_listeners(HC, 1).await;

        // Small GET, token in the header, application headers through.
        let small = http(
            &relay,
            "GET",
            &format!("/{HC}/status/page?verbose=1"),
            &[
                ("ServiceBusAuthorization", &token),
                ("x-app", "hello"),
                ("authorization", "Bearer app-secret"),
            ],
            vec![],
        )
        .await;
        assert_eq!(small.status, 200, "{small:?}");
        assert_eq!(small.header("x-method"), "GET");
        assert_eq!(
            small.header("x-url"),
            format!("/{HC}/status/page?verbose=1")
        );
        assert_eq!(small.header("x-app"), "hello");
        assert_eq!(small.header("x-auth"), "yes");
        assert!(small.body.is_empty());
        assert_eq!(
            server.expect("REQUEST").await,
            format!("REQUEST GET /{HC}/status/page?verbose=1 0")
        );

        // Small POST inline, and 1 MiB POST via the rendezvous; token in the query.
        let encoded = urlencoding::encode(&token);
        for len in [1000usize, 1 << 20] {
            let payload = random(len);
            let reply = http(
                &relay,
                "POST",
                &format!("/{HC}/upload?sb-hc-token={encoded}&n={len}"),
                &[("content-type", "application/octet-stream")],
                payload.clone(),
            )
            .await;
            assert_eq!(reply.status, 200, "{len}: {:?}", reply.status);
            assert_eq!(reply.header("x-received"), len.to_string());
            assert_eq!(reply.header("x-url"), format!("/{HC}/upload?n={len}"));
            assert_eq!(reply.header("x-auth"), "no");
            assert!(reply.body == xor(&payload), "{len}: the answer differs");
            server.expect("REQUEST POST").await;
        }

        // A small request with a 1 MiB answer: the response comes over the rendezvous.
        let large = http(
            &relay,
            "GET",
            &format!("/{HC}/big"),
            &[
                ("ServiceBusAuthorization", &token),
                ("x-answer-bytes", "1048576"),
            ],
            vec![],
        )
        .await;
        assert_eq!(large.status, 200);
        assert_eq!(large.body.len(), 1 << 20);
        assert!(large.body.iter().all(|b| *b == 7));

        // No token: 401, and the listener never sees the request.
        let refused = http(&relay, "GET", &format!("/{HC}/x"), &[], vec![]).await;
        assert_eq!(refused.status, 401, "{refused:?}");
        server.stop().await;
    })
    .await;
}
