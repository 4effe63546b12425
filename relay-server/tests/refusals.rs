//! Every refusal the relay documents, with its HTTP status and description.

mod common;

use std::time::Duration;

use common::*;

/// Sends a raw HTTP request and returns the response's status line.
async fn raw_status_line(relay: &TestRelay, request: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut tcp = tokio::net::TcpStream::connect(relay.addr)
        .await
        .expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut line = String::new();
    BufReader::new(tcp)
        .read_line(&mut line)
        .await
        .expect("read");
    line.trim_end().to_owned()
}

async fn listen_with(relay: &TestRelay, token: &str) -> (u16, String) {
    refused(
        relay
            .ws(
                &relay.url("/$hc/license?sb-hc-action=listen"),
                &[("ServiceBusAuthorization", token)],
            )
            .await,
    )
}

#[tokio::test]
async fn token_failures_are_401_and_403() {
    within(async {
        let relay = TestRelay::start(true, |_| {}).await;
        let wrong_key = relay.token_for(HC, "listen", "not-the-key", 3600);
        let (status, body) = listen_with(&relay, &wrong_key).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body.contains("InvalidSignature") && body.contains("TrackingId:"),
            "{body}"
        );

        let expired = relay.token("listen", -10);
        let (status, body) = listen_with(&relay, &expired).await;
        assert_eq!(status, 401);
        assert!(body.contains("ExpiredToken"), "{body}");

        let (status, body) = refused(
            relay
                .ws(&relay.url("/$hc/license?sb-hc-action=listen"), &[])
                .await,
        );
        assert_eq!(status, 401);
        assert!(body.contains("MissingToken"), "{body}");

        let (status, _) = listen_with(&relay, "SharedAccessSignature garbage").await;
        assert_eq!(status, 401);

        let send_only = relay.token("send", 3600);
        let (status, body) = listen_with(&relay, &send_only).await;
        assert_eq!(status, 403);
        assert!(body.contains("'Listen' claim(s) are required"), "{body}");

        let other_path = relay.token_for("other", "listen", LISTEN_KEY, 3600);
        let (status, body) = listen_with(&relay, &other_path).await;
        assert_eq!(status, 403);
        assert!(body.contains("does not cover"), "{body}");

        // A listen-only key cannot connect; the manage key can listen (token in the query).
        let listen_token = urlencode(&relay.token("listen", 3600));
        let (status, _) = refused(
            relay
                .ws(
                    &relay.url(&format!(
                        "/$hc/license?sb-hc-action=connect&sb-hc-token={listen_token}"
                    )),
                    &[],
                )
                .await,
        );
        assert_eq!(status, 403);
        let manage = urlencode(&relay.token("manage", 3600));
        let (control, _) = relay
            .ws(
                &relay.url(&format!(
                    "/$hc/license?sb-hc-action=listen&sb-hc-token={manage}"
                )),
                &[],
            )
            .await
            .expect("manage may listen");
        assert!(relay.stats.snapshot().refused_total >= 7);
        drop(control);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_hc_no_listener_and_bad_requests() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let token = relay.token_for("nope", "manage", MANAGE_KEY, 3600);
        let (status, body) = refused(
            relay
                .ws(
                    &relay.url("/$hc/nope?sb-hc-action=listen"),
                    &[("ServiceBusAuthorization", &token)],
                )
                .await,
        );
        assert_eq!(status, 404);
        assert!(body.contains("EndpointNotFound"), "{body}");

        let send = relay.token("send", 3600);
        let (status, body) = refused(
            relay
                .ws(
                    &relay.url("/$hc/license?sb-hc-action=connect"),
                    &[("ServiceBusAuthorization", &send)],
                )
                .await,
        );
        assert_eq!(status, 404);
        assert!(body.contains("no listener"), "{body}");

        let (status, _) = refused(
            relay
                .ws(&relay.url("/$hc/license?sb-hc-action=dance"), &[])
                .await,
        );
        assert_eq!(status, 400);
        let (status, _) = refused(relay.ws(&relay.url("/license"), &[]).await);
        assert_eq!(status, 404);

        // The description is also the HTTP reason phrase, as in Azure's responses.
        let status_line = raw_status_line(
            &relay,
            "GET /$hc/nope?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
        assert!(
            status_line.starts_with("HTTP/1.1 404 EndpointNotFound: hybrid connection 'nope' does not exist. TrackingId:"),
            "{status_line}"
        );
        let health = raw_status_line(&relay, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(health, "HTTP/1.1 200 OK");
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn listener_that_never_dials_back_gives_504() {
    within(async {
        let relay = TestRelay::start(false, |c| {
            c.limits.rendezvous_timeout = Duration::from_millis(300);
        })
        .await;
        let mut control = relay.listen().await;
        let sender = relay.sender_with_token("", vec![]);
        let accept = next_accept(&mut control).await;
        let (status, body) = refused(sender.await.expect("task"));
        assert_eq!(status, 504);
        assert!(body.contains("GatewayTimeout"), "{body}");
        // The address died with the sender.
        let (status, _) = refused(relay.ws(&accept.address, &[]).await);
        assert_eq!(status, 403);
        drop(control);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn connection_limit_gives_503() {
    within(async {
        let relay = TestRelay::start(false, |c| c.limits.max_connections = 1).await;
        let control = relay.listen().await;
        let (status, body) = refused(
            relay
                .ws(&relay.url("/$hc/license?sb-hc-action=listen"), &[])
                .await,
        );
        assert_eq!(status, 503);
        assert!(body.contains("connection limit"), "{body}");
        drop(control);
        relay.stats.wait_until(|s| s.connections == 0).await;
        let _again = relay.listen().await;
        drop(_again);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn listener_cap_and_listen_rate_give_429_then_throttle() {
    within(async {
        let relay = TestRelay::start(false, |c| c.limits.max_listeners_per_hc = 2).await;
        let a = relay.listen().await;
        let b = relay.listen().await;
        let (status, body) = listen_with(&relay, &relay.token("listen", 3600)).await;
        assert_eq!(status, 429);
        assert!(body.contains("maximum of 2 listeners"), "{body}");
        drop((a, b));
        relay.stop().await;

        let relay = TestRelay::start(false, |c| {
            c.limits.listen_burst_per_ip = 2;
            c.limits.listen_rate_per_ip = 0.01;
        })
        .await;
        let bad = relay.token_for(HC, "listen", "wrong", 3600);
        assert_eq!(listen_with(&relay, &bad).await.0, 401);
        assert_eq!(listen_with(&relay, &bad).await.0, 401);
        // The reconnect storm is cut off before the token is even looked at.
        let (status, body) = listen_with(&relay, &relay.token("listen", 3600)).await;
        assert_eq!(status, 429);
        assert!(body.contains("too many listen attempts"), "{body}");
        // From then on the address is throttled: its connections close before any answer.
        let result = relay.ws(&relay.url("/healthz"), &[]).await;
        assert!(
            !matches!(
                result,
                Err(tokio_tungstenite::tungstenite::Error::Http(_)) | Ok(_)
            ),
            "a throttled client gets no HTTP answer"
        );
        assert_eq!(relay.stats.snapshot().throttled_total, 1);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn denied_clients_are_disconnected_and_anonymous_senders_allowed() {
    within(async {
        let relay = TestRelay::start(false, |c| {
            c.access.deny = vec!["127.0.0.0/8".parse().expect("range")];
        })
        .await;
        let result = relay.ws(&relay.url("/healthz"), &[]).await;
        assert!(
            !matches!(
                result,
                Err(tokio_tungstenite::tungstenite::Error::Http(_)) | Ok(_)
            ),
            "a denied client gets no HTTP answer"
        );
        relay.stop().await;

        let relay = TestRelay::start(false, |c| {
            c.hybrid_connections[0].requires_client_authorization = false;
        })
        .await;
        let mut control = relay.listen().await;
        let sender = relay.sender("/$hc/license?sb-hc-action=connect", vec![]);
        let accept = next_accept(&mut control).await;
        let (l, _) = relay.ws(&accept.address, &[]).await.expect("dial");
        let (s, _) = sender.await.expect("task").expect("anonymous sender");
        drop((control, l, s));
        relay.stop().await;
    })
    .await;
}
