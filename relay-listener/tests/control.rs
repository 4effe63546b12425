//! The control-channel session against an in-process fake relay (WebSocket over
//! `tokio::io::duplex`), with paused time: accepts and HTTP requests (with their inline body)
//! are dispatched, queued responses sent with their body, unknown commands ignored,
//! pings sent, the token renewed at its renewal time, and shutdown closes with 1000.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hc_client::TokenSource;
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hc_protocol::connection_string::Credentials;
use hc_protocol::{ControlMessage, SasToken, Secret};
use relay_listener::ListenerStatus;
use relay_listener::control::{Handlers, SessionEnd, session};
use relay_listener::http_mode::Outgoing;
use tokio::io::DuplexStream;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<DuplexStream>;

/// The listener's end of a control channel and the fake relay's, over an in-memory pipe.
async fn ws_pair() -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::join!(
        async {
            hc_client::tokio_tungstenite::client_async("ws://relay.test/$hc/hyco", a)
                .await
                .expect("client")
                .0
        },
        async {
            hc_client::tokio_tungstenite::accept_async(b)
                .await
                .expect("server")
        }
    )
}

#[tokio::test(start_paused = true)]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn session_dispatches_accepts_pings_and_renews_the_token() {
    let (listener_ws, relay_ws) = ws_pair().await;
    let key = Secret::new("listen-key");
    let tokens = TokenSource::new(
        Credentials::Key {
            key_name: "listen".into(),
            key: key.clone(),
        },
        "relay.test",
        "hyco",
        Duration::from_secs(600),
    );
    let first = tokens.issue().expect("token");
    let status = ListenerStatus::default();
    let shutdown = CancellationToken::new();
    let (accepts_tx, mut accepts) = tokio::sync::mpsc::unbounded_channel();
    let (requests_tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
    let (replies_tx, replies) = tokio::sync::mpsc::channel(4);
    let start = Instant::now();
    let listener = session(
        listener_ws,
        &tokens,
        &first,
        Some(Duration::from_secs(30)),
        &status,
        &shutdown,
        Handlers {
            on_accept: move |a| {
                let _ = accepts_tx.send(a);
            },
            on_request: move |r, body| {
                let _ = requests_tx.send((r, body));
            },
            replies,
        },
    );
    let relay = async {
        let mut relay_ws = relay_ws;
        relay_ws
            .send(Message::text(r#"{"injectFault":{"delay":"1"}}"#))
            .await
            .expect("unknown");
        relay_ws
            .send(Message::text(
                r#"{"accept":{"address":"wss://relay.test/$hc/hyco?sb-hc-action=accept&sb-hc-id=1","id":"1","connectHeaders":{}}}"#,
            ))
            .await
            .expect("accept");
        let accept = accepts.recv().await.expect("accept dispatched");
        assert_eq!(accept.id, "1");
        // An HTTP request with its body in the next binary message, answered inline.
        relay_ws
            .send(Message::text(
                r#"{"request":{"address":"wss://relay.test/$hc/hyco?sb-hc-action=request&sb-hc-id=2","id":"2","requestTarget":"/hyco/x","method":"POST","body":true}}"#,
            ))
            .await
            .expect("request");
        relay_ws
            .send(Message::binary(&b"hello"[..]))
            .await
            .expect("body");
        let (request, body) = requests.recv().await.expect("request dispatched");
        assert_eq!((request.id.as_str(), &body[..]), ("2", &b"hello"[..]));
        let answer = r#"{"response":{"requestId":"2","statusCode":200,"body":true}}"#;
        replies_tx
            .send(Outgoing {
                text: answer.to_owned(),
                body: Some(bytes::Bytes::from_static(b"world")),
            })
            .await
            .expect("queued");
        let mut answered = Vec::new();
        while answered.len() < 2 {
            match relay_ws.next().await {
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(m)) => answered.push(m),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(answered[0], Message::text(answer));
        assert_eq!(answered[1], Message::binary(&b"world"[..]));
        let mut pings = 0;
        let renewed = loop {
            match relay_ws.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Text(t))) => match ControlMessage::parse(&t).expect("json") {
                    ControlMessage::RenewToken(r) => break r.token,
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            }
        };
        // 600 s token: renewed at 300 s (half the TTL, as 5 min exceeds 10 %), pinged every 30 s.
        assert_eq!(start.elapsed().as_secs(), 300);
        assert!(pings >= 9, "{pings} pings");
        let parsed = SasToken::parse(&renewed).expect("token");
        assert!(parsed.audience().covers_path("hyco"));
        assert_eq!(status.snapshot().token_renewals, 1);
        shutdown.cancel();
        loop {
            match relay_ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(frame.code, CloseCode::Normal);
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("expected close, got {other:?}"),
            }
        }
    };
    let (end, ()) = timeout(Duration::from_secs(3600), async {
        tokio::join!(listener, relay)
    })
    .await
    .expect("timed out");
    assert_eq!(end, SessionEnd::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn a_silent_relay_is_detected_by_keepalive() {
    let (listener_ws, relay_ws) = ws_pair().await;
    let tokens = TokenSource::new(
        Credentials::Token(Secret::new("SharedAccessSignature sr=x")),
        "relay.test",
        "hyco",
        Duration::from_secs(600),
    );
    let token = tokens.issue().expect("token");
    let status = ListenerStatus::default();
    let shutdown = CancellationToken::new();
    let end = timeout(
        Duration::from_secs(3600),
        session(
            listener_ws,
            &tokens,
            &token,
            Some(Duration::from_secs(30)),
            &status,
            &shutdown,
            Handlers {
                on_accept: |_| {},
                on_request: |_, _| {},
                replies: tokio::sync::mpsc::channel(1).1,
            },
        ),
    )
    .await
    .expect("timed out");
    assert_eq!(end, SessionEnd::KeepAliveTimeout);
    drop(relay_ws);
}
