//! A 1:1 sender whose listener hangs (issue 15, items 5 and 8): the relay answers the sender within a
//! bounded time with the true cause, and the local-proxy logs that cause and closes its client's
//! TCP connection at once, instead of leaving the client hanging until its own timeout with a
//! wrong cause ("cannot reach relay … while handshaking").
//!
//! The listeners are fakes from `test_support::foreign::hung_listener`: one that reads its
//! control channel but ignores accepts, one frozen after its handshake (a stopped process), and
//! one that dials back and then never reads (and, last, vanishes while a sender floods it:
//! the blocked sender is released at once). Real sockets and TLS, so the bounds are generous
//! wall-clock limits; the exact timing logic is tested with paused time in `relay-server`
//! (`bridge::tests`, `hub::tests`).

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hc_client::RelayAccess;
use hc_client::dial::DialTimeouts;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use local_proxy::ProxySnapshot;
use relay_server::Direction;
use relay_server::config::Limits;
use test_support::foreign::{Hang, hung_listener};
use test_support::{LIMIT, Proxy, Relay};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// A client of `proxy` sends a request and waits for the proxy to close its connection;
/// returns how long that took.
async fn client_is_closed(proxy: &Proxy) -> Duration {
    let mut tcp = TcpStream::connect(proxy.addr()).await.expect("connect");
    let started = Instant::now();
    tcp.write_all(b"request").await.expect("write");
    let mut buf = [0u8; 64];
    // A reset counts as closed too.
    let read = tcp.read(&mut buf).await.unwrap_or(0);
    assert_eq!(read, 0, "nothing comes back from a hung listener");
    let took = started.elapsed();
    eprintln!("client closed after {took:?}");
    took
}

/// A 1:1 proxy's client of a `hang`ing listener on `relay`: how long until the proxy closed
/// it, and the proxy's counters once the tunnel has ended.
async fn client_of_hung_listener(relay: &Relay, hang: Hang) -> (Duration, ProxySnapshot) {
    let _listener = hung_listener(relay, hang).await;
    let proxy = Proxy::spawn(relay.proxy_config()).await;
    let took = client_is_closed(&proxy).await;
    proxy.status().wait_for(|s| s.active == 0).await;
    (took, proxy.status().snapshot())
}

#[test]
fn the_relay_answers_before_a_sender_gives_up() {
    // With defaults, our senders hear the relay's 504 (the true cause) before their own
    // handshake deadline would fire with a wrong one.
    assert!(Limits::default().rendezvous_timeout < DialTimeouts::default().handshake);
}

#[tokio::test]
async fn a_listener_that_ignores_accepts_gets_its_sender_a_504_naming_it() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls_with(|c| {
            c.limits.rendezvous_timeout = Duration::from_secs(2);
        })
        .await;
        let (took, status) = client_of_hung_listener(&relay, Hang::IgnoresAccepts).await;
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(6),
            "closed after {took:?}"
        );
        assert_eq!(status.refused_by_status.get("504"), Some(&1), "{status:?}");
        let line = status.last_refusal.expect("refusal line");
        assert!(
            line.contains(
                "504 GatewayTimeout: the listener did not accept the connection within 2 s"
            ),
            "{line}"
        );
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_frozen_listener_is_reported_to_its_sender_within_ten_seconds() {
    timeout(LIMIT, async {
        // Default limits: control-channel pings every 2 s, rendezvous 15 s.
        let relay = Relay::start_tls().await;
        let (took, status) = client_of_hung_listener(&relay, Hang::Frozen).await;
        assert!(took < Duration::from_secs(10), "closed after {took:?}");
        assert_eq!(status.refused_by_status.get("502"), Some(&1), "{status:?}");
        let line = status.last_refusal.expect("refusal line");
        assert!(
            line.contains("502 ListenerLost: the listener stopped responding"),
            "{line}"
        );
        // The relay dropped the frozen listener: the next sender hears there is none.
        relay.stats().wait_for_listeners(test_support::HC, 0).await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_listener_that_accepts_and_then_never_reads_is_reported_to_its_sender() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls_with(|c| {
            c.limits.peer_response_timeout = Duration::from_secs(2);
        })
        .await;
        let (took, status) = client_of_hung_listener(&relay, Hang::StallsAfterAccept).await;
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(8),
            "closed after {took:?}"
        );
        assert_eq!(status.failed, 1, "{status:?}");
        let line = status.last_failure.expect("failure line");
        assert!(
            line.contains("1001 listener stopped responding: nothing from it within 2 s"),
            "{line}"
        );
        relay.stats().wait_until(|s| s.bridged == 0).await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_blocked_flooding_sender_is_released_when_its_listener_vanishes() {
    timeout(LIMIT, async {
        // No peer-response deadline: only the listener vanishing may end this bridge.
        let relay = Relay::start_tls_with(|c| {
            c.limits.peer_response_timeout = Duration::ZERO;
        })
        .await;
        let listener = hung_listener(&relay, Hang::StallsAfterAccept).await;
        let access = RelayAccess::new(relay.access(relay.send_connection())).expect("access");
        let sender = access.connect("flood", &[], &[]).await.expect("sender");
        let (mut sink, mut stream) = sender.ws.split();
        let flood = tokio::spawn(async move {
            let mut sent = 0u64;
            while sink
                .send(Message::binary(vec![7u8; 64 << 10]))
                .await
                .is_ok()
            {
                sent += 1;
            }
            sent
        });
        // Until the listener's buffers are full and the bridge stops taking the flood: no
        // bytes forwarded for half a second (bounded: at most 100 looks).
        let stats = relay.stats();
        let mut last = u64::MAX;
        for _ in 0..100 {
            let now = stats.bytes(Direction::SenderToListener);
            if now == last {
                break;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(last > 0 && last != u64::MAX, "the flood reached the relay");
        assert_eq!(stats.snapshot().bridged, 1);
        assert!(!flood.is_finished(), "the sender is blocked, not released");
        eprintln!("the bridge stalled after {last} bytes");
        // The listener vanishes: its unread data makes its close a reset.
        let gone = Instant::now();
        listener.abort();
        let frame = loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("expected the relay's close, got {other:?}"),
            }
        };
        let released = gone.elapsed();
        eprintln!("flooding sender closed {released:?} after its listener vanished");
        let frame = frame.expect("a close frame");
        assert_eq!(frame.code, CloseCode::Away);
        assert!(
            frame.reason.starts_with("peer connection lost"),
            "{frame:?}"
        );
        assert!(released < Duration::from_secs(3), "{released:?}");
        drop(stream);
        timeout(Duration::from_secs(10), flood)
            .await
            .expect("the flood ends")
            .expect("flood task");
        relay.stats().wait_until(|s| s.bridged == 0).await;
        eprintln!(
            "bridged back to 0 {:?} after the listener vanished",
            gone.elapsed()
        );
    })
    .await
    .expect("in time");
}
