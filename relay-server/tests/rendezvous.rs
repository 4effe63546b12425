//! End-to-end rendezvous through an in-process relay: a listener registers, a sender
//! connects, the listener gets the accept message and dials it, and the relay bridges them.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use hc_protocol::uri::reject_url;
use rand::RngCore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// Sends `data` in 64 KiB binary messages, then an empty one (end of stream).
async fn send_all(tx: &mut futures_util::stream::SplitSink<Ws, Message>, data: &[u8]) {
    for chunk in data.chunks(64 << 10) {
        tx.send(Message::binary(chunk.to_vec()))
            .await
            .expect("send");
    }
    tx.send(Message::binary(Vec::new()))
        .await
        .expect("send eos");
}

/// Receives binary messages until an empty one.
async fn recv_all(rx: &mut futures_util::stream::SplitStream<Ws>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match rx.next().await.expect("open").expect("ok") {
            Message::Binary(b) if b.is_empty() => return out,
            Message::Binary(b) => out.extend_from_slice(&b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn tls_rendezvous_forwards_headers_query_endpoint_and_bytes() {
    within(async {
        let relay = TestRelay::start(true, |_| {}).await;
        let mut control = relay.listen().await;
        let token = relay.token("send", 3600);
        let sender = relay.sender(
            "/$hc/license?site=Branch%20A&sb-hc-action=connect&sb-hc-id=conn-42",
            vec![
                ("ServiceBusAuthorization".into(), token),
                ("X-Dongle-Site".into(), "branch-a".into()),
                (
                    "Sec-WebSocket-Protocol".into(),
                    "dongle.v2, dongle.v1".into(),
                ),
            ],
        );
        let accept = next_accept(&mut control).await;
        assert_eq!(accept.id, "conn-42");
        let prefix = format!(
            "wss://localhost:{}/$hc/license?site=Branch%20A&sb-hc-action=accept&sb-hc-id=conn-42&",
            relay.addr.port()
        );
        assert!(accept.address.starts_with(&prefix), "{}", accept.address);
        assert_eq!(accept.header("x-dongle-site"), Some("branch-a"));
        assert_eq!(
            accept.header("sec-websocket-protocol"),
            Some("dongle.v2, dongle.v1")
        );
        assert!(
            accept
                .header("Sec-WebSocket-Key")
                .is_some_and(|k| k.len() == 24)
        );
        assert_eq!(accept.header("ServiceBusAuthorization"), None);
        let remote = accept.remote_endpoint.clone().expect("remote endpoint");
        assert_eq!(remote.address, "127.0.0.1");
        assert_ne!(remote.port, 0);

        // The listener picks a protocol; both 101s carry it.
        let (listener_ws, response) = relay
            .ws(&accept.address, &[("Sec-WebSocket-Protocol", "dongle.v1")])
            .await
            .expect("accept dial");
        assert_eq!(response.headers()["sec-websocket-protocol"], "dongle.v1");
        let (sender_ws, response) = sender.await.expect("task").expect("sender upgrade");
        assert_eq!(response.headers()["sec-websocket-protocol"], "dongle.v1");
        relay.stats.wait_until(|s| s.bridged == 1).await;

        // A few MiB both ways at once, intact, each ended by an empty message.
        let up = random(3 << 20);
        let down = random(2 << 20);
        let (mut s_tx, mut s_rx) = sender_ws.split();
        let (mut l_tx, mut l_rx) = listener_ws.split();
        let (_, _, got_up, got_down) = tokio::join!(
            send_all(&mut s_tx, &up),
            send_all(&mut l_tx, &down),
            recv_all(&mut l_rx),
            recv_all(&mut s_rx),
        );
        assert!(got_up == up, "sender->listener data differs");
        assert!(got_down == down, "listener->sender data differs");

        // Close propagates with code and reason.
        s_tx.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "done".into(),
        })))
        .await
        .expect("close");
        let mut listener_ws = l_tx.reunite(l_rx).expect("reunite");
        match next_message(&mut listener_ws).await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(
                    (frame.code, frame.reason.as_str()),
                    (CloseCode::Library(4001), "done")
                );
            }
            other => panic!("expected close, got {other:?}"),
        }
        drop(listener_ws);
        relay.stats.wait_until(|s| s.bridged == 0).await;
        assert_eq!(relay.stats.snapshot().bridged_total, 1);
        drop((control, s_tx, s_rx));
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn plain_rendezvous_with_path_suffix_text_and_listener_close() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = relay.listen().await;
        let token = urlencode(&relay.token("send", 3600));
        let sender = relay.sender(
            &format!("/$hc/license/extra/Path?x=1&sb-hc-action=connect&sb-hc-token={token}"),
            vec![],
        );
        let accept = next_accept(&mut control).await;
        let prefix = format!(
            "ws://localhost:{}/$hc/license/extra/Path?x=1&sb-hc-action=accept&sb-hc-id=",
            relay.addr.port()
        );
        assert!(accept.address.starts_with(&prefix), "{}", accept.address);
        assert!(
            !accept.address.contains("sb-hc-token"),
            "{}",
            accept.address
        );
        assert!(
            uuid::Uuid::parse_str(&accept.id).is_ok(),
            "generated id {}",
            accept.id
        );
        let (mut listener_ws, _) = relay.ws(&accept.address, &[]).await.expect("accept dial");
        let (mut sender_ws, response) = sender.await.expect("task").expect("sender upgrade");
        assert!(response.headers().get("sec-websocket-protocol").is_none());
        sender_ws.send(Message::text("ping?")).await.expect("send");
        assert_eq!(
            next_message(&mut listener_ws).await,
            Some(Message::text("ping?"))
        );
        listener_ws
            .send(Message::binary(Vec::new()))
            .await
            .expect("send");
        assert_eq!(
            next_message(&mut sender_ws).await,
            Some(Message::binary(Vec::new()))
        );
        listener_ws.close(None).await.expect("close");
        assert!(matches!(
            next_message(&mut sender_ws).await,
            Some(Message::Close(_))
        ));
        drop((control, sender_ws, listener_ws));
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn listener_reject_reaches_sender_and_listener_sees_410() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = relay.listen().await;
        let sender = relay.sender_with_token("", vec![]);
        let accept = next_accept(&mut control).await;
        let reject = reject_url(&accept.address, 503, "license server down").expect("reject url");
        let (status, _) = refused(relay.ws(reject.as_str(), &[]).await);
        assert_eq!(status, 410);
        let (status, body) = refused(sender.await.expect("task"));
        assert_eq!(status, 503);
        assert!(
            body.starts_with("license server down. TrackingId:"),
            "{body}"
        );
        drop(control);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn subprotocol_the_sender_did_not_offer_fails_both_with_502() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = relay.listen().await;
        let sender =
            relay.sender_with_token("", vec![("Sec-WebSocket-Protocol".into(), "a".into())]);
        let accept = next_accept(&mut control).await;
        let (status, _) = refused(
            relay
                .ws(&accept.address, &[("Sec-WebSocket-Protocol", "b")])
                .await,
        );
        assert_eq!(status, 502);
        let (status, body) = refused(sender.await.expect("task"));
        assert_eq!(status, 502);
        assert!(body.contains("subprotocol 'b'"), "{body}");
        drop(control);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hyco_ws_numbered_protocol_header_is_understood() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = relay.listen().await;
        let sender =
            relay.sender_with_token("", vec![("Sec-WebSocket-Protocol".into(), "a, b".into())]);
        let accept = next_accept(&mut control).await;
        // A choice in a numbered header, as hyco-ws sends its extra headers (see
        // handshake.rs); the listener's 101 must not name a protocol it did not request.
        let (listener_ws, response) = relay
            .ws(&accept.address, &[("0", "Sec-WebSocket-Protocol: b")])
            .await
            .expect("accept dial");
        assert!(response.headers().get("sec-websocket-protocol").is_none());
        let (sender_ws, response) = sender.await.expect("task").expect("sender upgrade");
        assert_eq!(response.headers()["sec-websocket-protocol"], "b");
        drop((control, listener_ws, sender_ws));
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_listeners_share_senders() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut first = relay.listen().await;
        let mut second = relay.listen().await;
        let a = relay.sender_with_token("n=1&", vec![]);
        let b = relay.sender_with_token("n=2&", vec![]);
        let (accept_1, accept_2) = tokio::join!(next_accept(&mut first), next_accept(&mut second));
        for (accept, sender) in [(accept_1, a), (accept_2, b)] {
            let (mut l, _) = relay.ws(&accept.address, &[]).await.expect("dial");
            let (mut s, _) = sender.await.expect("task").expect("upgrade");
            s.send(Message::binary(accept.id.clone().into_bytes()))
                .await
                .expect("send");
            assert_eq!(
                next_message(&mut l).await,
                Some(Message::binary(accept.id.into_bytes()))
            );
        }
        drop((first, second));
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn rendezvous_address_is_single_use() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = relay.listen().await;
        let sender = relay.sender_with_token("", vec![]);
        let accept = next_accept(&mut control).await;
        let (l, _) = relay.ws(&accept.address, &[]).await.expect("dial");
        let (s, _) = sender.await.expect("task").expect("upgrade");
        let (status, _) = refused(relay.ws(&accept.address, &[]).await);
        assert_eq!(status, 403);
        let forged = relay.url("/$hc/license?sb-hc-action=accept&sb-hc-id=x&sb-hc-rendezvous=0000");
        let (status, _) = refused(relay.ws(&forged, &[]).await);
        assert_eq!(status, 403);
        drop((control, l, s));
        relay.stop().await;
    })
    .await;
}
