//! HTTP request mode end to end without Node (issue 16, item 1), so it also runs under Wine: a
//! plain hyper client sends HTTP requests to the relay (`https://relay/license/…`), our
//! relay-listener turns the `request` messages into HTTP requests to a local endpoint
//! (`test_support::http::echo_endpoint`) and sends its answers back.
//!
//! - Answered requests: status, headers and bodies both ways; small requests and answers
//!   travel on the control channel, a body over the 64 KiB inline limit on the request's
//!   rendezvous (request, answer, or both); the token in the header or in `sb-hc-token`.
//! - No listener connected: `502` at once, as the protocol guide specifies for HTTP requests
//!   (a WebSocket sender gets `404`), with a tracking id.
//! - A listener that never answers: `504` once `limits.http_response_timeout` (made short
//!   here) has passed, not before.

use std::time::Duration;

use test_support::client::random;
use test_support::http::{HttpReply, echo_endpoint, https_request, silent_listener, xored};
use test_support::{HC, LIMIT, Listener, Relay};
use tokio::time::Instant;

async fn send(
    relay: &Relay,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    https_request(relay.addr(), relay.cert(), method, path, headers, body).await
}

#[tokio::test]
async fn requests_are_answered_by_the_listener_inline_and_over_the_rendezvous() {
    tokio::time::timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let token = relay.send_token();
        let auth = ("ServiceBusAuthorization", token.as_str());

        let none = send(&relay, "GET", &format!("/{HC}/x"), &[auth], vec![]).await;
        assert_eq!(none.status, 502, "{none:?}");
        let text = String::from_utf8_lossy(&none.body);
        assert!(text.contains("EndpointNotFound"), "{text}");
        assert!(text.contains("TrackingId:"), "{text}");

        let mut config = relay.listener_config(test_support::targets::dead_port().await);
        config.http_target = Some(echo_endpoint().await.to_string());
        let _listener = Listener::connected(config).await;

        // Small: inline both ways; the listener's status and headers come back, the
        // application's own Authorization reaches the endpoint, the relay's token does not.
        let small = send(
            &relay,
            "POST",
            &format!("/{HC}/upload/a?n=1"),
            &[
                auth,
                ("x-app", "hello"),
                ("x-status", "201"),
                ("authorization", "Bearer app-secret"),
            ],
            b"small body".to_vec(),
        )
        .await;
        assert_eq!(small.status, 201, "{small:?}");
        assert_eq!(small.header("x-method"), "POST");
        assert_eq!(small.header("x-target"), "/upload/a?n=1");
        assert_eq!(small.header("x-app"), "hello");
        assert_eq!(small.header("x-authorization"), "Bearer app-secret");
        assert_eq!(small.body, xored(b"small body"));

        // Request body, answer body, or both above the 64 KiB a control-channel message may
        // carry: they take the request's rendezvous. Token in the query this time.
        let encoded = urlencoding::encode(&token);
        for len in [64 << 10, (64 << 10) + 1, 300 << 10, 1 << 20] {
            let payload = random(len);
            let reply = send(
                &relay,
                "PUT",
                &format!("/{HC}/blob?sb-hc-token={encoded}&len={len}"),
                &[("content-type", "application/octet-stream")],
                payload.clone(),
            )
            .await;
            assert_eq!(reply.status, 200, "{len}: {reply:?}");
            assert_eq!(reply.header("x-target"), format!("/blob?len={len}"));
            assert_eq!(reply.header("x-received"), len.to_string());
            assert_eq!(reply.header("x-authorization"), "");
            assert_eq!(reply.body.len(), len, "{len}: {:?}", reply.headers);
            assert!(reply.body == xored(&payload), "{len}: the answer differs");
        }
        let large = send(
            &relay,
            "GET",
            &format!("/{HC}/big"),
            &[auth, ("x-answer-bytes", "1048576")],
            vec![],
        )
        .await;
        assert_eq!(large.status, 200, "{large:?}");
        assert_eq!(large.body.len(), 1 << 20);
        assert!(large.body.iter().all(|b| *b == 7));

        // No token: the relay refuses before any listener sees the request.
        let refused = send(&relay, "GET", &format!("/{HC}/x"), &[], vec![]).await;
        assert_eq!(refused.status, 401, "{refused:?}");
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_listener_that_never_answers_gets_504_after_the_response_timeout() {
    const RESPONSE_TIMEOUT: Duration = Duration::from_millis(400);
    tokio::time::timeout(LIMIT, async {
        let relay =
            Relay::start_tls_with(|c| c.limits.http_response_timeout = RESPONSE_TIMEOUT).await;
        let (_silent, mut requests) = silent_listener(&relay).await;
        relay.stats().wait_for_listeners(HC, 1).await;
        let token = relay.send_token();
        let started = Instant::now();
        let reply = send(
            &relay,
            "GET",
            &format!("/{HC}/hang"),
            &[("ServiceBusAuthorization", &token)],
            vec![],
        )
        .await;
        let took = started.elapsed();
        assert_eq!(reply.status, 504, "{reply:?}");
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains("GatewayTimeout"), "{text}");
        assert!(text.contains("TrackingId:"), "{text}");
        assert!(took >= RESPONSE_TIMEOUT, "504 after {took:?}");
        assert!(
            requests.recv().await.is_some(),
            "the listener got the request"
        );
        eprintln!("504 after {took:?} (response timeout {RESPONSE_TIMEOUT:?})");
    })
    .await
    .expect("within the limit");
}
