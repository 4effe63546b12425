//! Tunnels between Microsoft's `hyco-ws` peers and ours, in each direction and through our
//! relay alone.

use super::*;

/// hyco-ws listener ← our relay ← our local-proxy ← TCP clients: 1 MiB each way per client,
/// three clients at once.
#[tokio::test]
async fn hyco_ws_listener_serves_our_local_proxy() {
    let Some(modules) = node_modules("hyco_ws_listener_serves_our_local_proxy").await else {
        return;
    };
    within(async {
        let relay = Interop::start(modules, |_| {}).await;
        let mut listener = relay.hyco_listener(1).await;
        let proxy_fixture = Proxy::spawn(relay.proxy_config()).await;
        let proxy = proxy_fixture.addr();
        const CLIENTS: usize = 3;
        const LEN: usize = 1 << 20;
        let mut clients = JoinSet::new();
        for _ in 0..CLIENTS {
            clients.spawn(round_trip(proxy, LEN));
        }
        while let Some(done) = clients.join_next().await {
            done.expect("client");
        }
        // hyco-ws picks the first protocol our proxy offers (dongle-relay.raw: EOF closes),
        // and saw every byte.
        let (mut connections, mut closed) = (0, 0);
        while closed < CLIENTS {
            let line = listener.expect("C").await;
            if line.starts_with("CONNECTION ") {
                assert_eq!(line, "CONNECTION dongle-relay.raw");
                connections += 1;
            } else if line.starts_with("CLOSED ") {
                assert!(line.starts_with(&format!("CLOSED {LEN} ")), "{line}");
                closed += 1;
            } else {
                panic!("hyco-listener.js: {line}");
            }
        }
        assert_eq!(connections, CLIENTS);
        assert_eq!(relay.stats().snapshot().bridged_total, CLIENTS as u64);
        drop(proxy_fixture);
        listener.stop().await;
    })
    .await;
}

/// hyco-ws sender → our relay → our relay-listener → TCP target: 1 MiB each way, checked by
/// the sender (the answer) and by the target (what arrived).
#[tokio::test]
async fn hyco_ws_sender_reaches_our_relay_listener() {
    let Some(modules) = node_modules("hyco_ws_sender_reaches_our_relay_listener").await else {
        return;
    };
    within(async {
        let relay = Interop::start(modules, |_| {}).await;
        let (target, mut received) = xor_target().await;
        let listener = Listener::connected(relay.listener_config(target)).await;
        relay.stats().wait_for_listeners(HC, 1).await;
        let payload = random(1 << 20);
        let mut sender = relay.hyco_sender(&payload);
        sender.expect("OPEN").await;
        assert_eq!(sender.expect("OK").await, format!("OK {}", payload.len()));
        assert_eq!(sender.expect("CLOSED").await, "CLOSED 1000");
        let got = received.recv().await.expect("target saw the connection");
        assert!(got == payload, "the target received other bytes than sent");
        let snapshot = listener.status().snapshot();
        assert_eq!((snapshot.accepted, snapshot.failed), (1, 0));
        sender.stop().await;
    })
    .await;
}

/// hyco-ws on both ends, our relay in the middle (Azure's place): the sender offers
/// permessage-deflate, which the listener answers in a header named `0` on its dial-back;
/// the relay negotiates no extension, so both run uncompressed and the bytes arrive intact.
#[tokio::test]
async fn hyco_ws_sender_and_listener_meet_through_our_relay() {
    let Some(modules) = node_modules("hyco_ws_sender_and_listener_meet_through_our_relay").await
    else {
        return;
    };
    within(async {
        let relay = Interop::start(modules, |_| {}).await;
        let mut listener = relay.hyco_listener(1).await;
        let payload = random(256 << 10);
        let mut sender = relay.hyco_sender(&payload);
        assert_eq!(sender.expect("OK").await, format!("OK {}", payload.len()));
        assert_eq!(listener.expect("CONNECTION").await, "CONNECTION -");
        assert_eq!(
            listener.expect("CLOSED").await,
            format!("CLOSED {} 1000", payload.len())
        );
        sender.stop().await;
        listener.stop().await;
    })
    .await;
}
