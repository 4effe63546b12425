//! Control-channel lifetime over real sockets (token expiry, `renewToken`) and graceful
//! shutdown. The timing details are unit-tested with paused time in `control_channel.rs`;
//! these use two-second tokens and wait on messages, never on sleeps.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use hc_protocol::{ControlMessage, RenewToken};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn listen_with_ttl(relay: &TestRelay, ttl: i64) -> Ws {
    let token = relay.token("listen", ttl);
    let (ws, _) = relay
        .ws(
            &relay.url("/$hc/license?sb-hc-action=listen"),
            &[("ServiceBusAuthorization", &token)],
        )
        .await
        .expect("listen");
    relay.stats.wait_for_listeners(HC, 1).await;
    ws
}

async fn expect_close(ws: &mut Ws) -> (CloseCode, String) {
    match next_message(ws).await {
        Some(Message::Close(Some(frame))) => (frame.code, frame.reason.to_string()),
        other => panic!("expected close, got {other:?}"),
    }
}

#[tokio::test]
async fn control_channel_closes_1008_at_token_expiry() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let mut control = listen_with_ttl(&relay, 2).await;
        let (code, reason) = expect_close(&mut control).await;
        assert_eq!(code, CloseCode::Policy);
        assert!(reason.starts_with("token expired. TrackingId:"), "{reason}");
        relay.stats.wait_for_listeners(HC, 0).await;
        drop(control);
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn renew_token_keeps_the_channel_past_its_original_expiry() {
    within(async {
        let relay = TestRelay::start(false, |c| {
            c.limits.control_ping_interval = Duration::from_millis(500);
        })
        .await;
        let started = Instant::now();
        let mut control = listen_with_ttl(&relay, 2).await;
        let renew = ControlMessage::RenewToken(RenewToken {
            token: relay.token("listen", 3600),
        });
        control
            .send(Message::text(renew.to_json()))
            .await
            .expect("renew");
        // The relay pings the quiet channel every 500 ms: count pings until the original
        // token (2 s, rounded down to the second at signing) has certainly expired.
        let mut pings = 0;
        while started.elapsed() < Duration::from_secs(3) || pings < 6 {
            match control.next().await.expect("open").expect("ok") {
                Message::Ping(_) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // Still registered and still carrying accepts.
        assert_eq!(relay.stats.listener_count(HC), 1);
        let sender = relay.sender_with_token("", vec![]);
        let accept = next_accept(&mut control).await;
        let (l, _) = relay.ws(&accept.address, &[]).await.expect("dial");
        let (s, _) = sender.await.expect("task").expect("upgrade");

        // A renewal with a bad token closes the channel with 1008.
        let bad = ControlMessage::RenewToken(RenewToken {
            token: relay.token_for(HC, "listen", "wrong", 3600),
        });
        control
            .send(Message::text(bad.to_json()))
            .await
            .expect("renew");
        let (code, reason) = expect_close(&mut control).await;
        assert_eq!(code, CloseCode::Policy);
        assert!(reason.contains("InvalidSignature"), "{reason}");
        drop((control, l, s));
        relay.stop().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_control_channels_and_drains_bridges() {
    within(async {
        let relay = TestRelay::start(true, |c| {
            c.limits.shutdown_grace = Duration::from_secs(1);
        })
        .await;
        let mut control = relay.listen().await;
        let sender = relay.sender_with_token("", vec![]);
        let accept = next_accept(&mut control).await;
        let (mut listener_ws, _) = relay.ws(&accept.address, &[]).await.expect("dial");
        let (mut sender_ws, _) = sender.await.expect("task").expect("upgrade");
        relay.stats.wait_until(|s| s.bridged == 1).await;

        relay.shutdown.cancel();
        let (code, _) = expect_close(&mut control).await;
        assert_eq!(code, CloseCode::Away);
        // Bridged data still flows during the grace period...
        sender_ws
            .send(Message::binary(vec![7]))
            .await
            .expect("send");
        assert_eq!(
            next_message(&mut listener_ws).await,
            Some(Message::binary(vec![7]))
        );
        // ...then both sides are closed with 1001.
        for ws in [&mut sender_ws, &mut listener_ws] {
            let (code, reason) = expect_close(ws).await;
            assert_eq!(code, CloseCode::Away);
            assert!(
                reason.starts_with("relay shutting down. TrackingId:"),
                "{reason}"
            );
        }
        drop((control, sender_ws, listener_ws));
        relay.task.await.expect("task").expect("clean stop");
        assert!(!relay.stats.snapshot().serving);
        assert!(tokio::net::TcpStream::connect(relay.addr).await.is_err());
    })
    .await;
}
