//! Pre-opened 1:1 tunnels (`preopen = N`, `dongle-relay.preopened.v1`) end to end on loopback
//! with the real relay: client → local-proxy (a parked sender WebSocket) → relay →
//! relay-listener (target connected once the PROXY v2 header names the client) → target.
//!
//! Proves that a parked tunnel costs the license server nothing until a client comes, that
//! each call on one carries its own client's address and site, that the proxy refills the
//! shelf and replaces tunnels that outlive `preopen_max_age`, that a listener which cannot
//! reach its target says why (1011, in the proxy's failure line), and that a foreign listener
//! gets no parked tunnels unless `preopen_foreign` asks for them; in `auto` mode, tunnels are
//! pre-opened only while the listener does not multiplex.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use local_proxy::{ProxyConfig, TunnelMode};
use relay_listener::IdentityMode;
use test_support::client::{exchange_from, round_trip};
use test_support::foreign::{REPLY_PARTS, half_closing_listener};
use test_support::{LIMIT, Listener, Proxy, Relay, targets};
use tokio::time::timeout;

/// A 1:1 proxy of site `branch-a` keeping `n` tunnels pre-opened.
fn preopening(relay: &Relay, n: usize) -> ProxyConfig {
    let mut config = relay.proxy_config_at("branch-a");
    config.preopen = n;
    config
}

#[tokio::test]
async fn each_call_on_a_preopened_tunnel_names_its_own_client_and_site() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let mut recording = targets::recording().await;
        let mut config = relay.listener_config(recording.addr());
        config.identity.mode = IdentityMode::ProxyV2;
        let listener = Listener::connected(config).await;
        let proxy = Proxy::spawn(preopening(&relay, 2)).await;
        proxy.status().wait_for(|s| s.preopened_ready == 2).await;
        // Both are bridged by the relay and wait at the listener, with no target connection.
        let l = listener
            .status()
            .wait_for(|s| s.preopened_waiting == 2)
            .await;
        assert_eq!((l.accepted, l.active_streams, l.rejected), (0, 0, 0));
        assert_eq!(relay.stats().snapshot().bridged, 2);

        let clients = [
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
        ];
        for (i, ip) in clients.into_iter().enumerate() {
            let payload = format!("call {i}");
            let call = exchange_from(ip, proxy.addr(), payload.as_bytes()).await;
            assert_eq!(call.reply, payload.as_bytes());
            let recorded = recording.next().await;
            let header = recorded.proxy_header();
            assert_eq!(header.source, Some(call.local));
            assert_eq!(header.site().as_deref(), Some("branch-a"));
            assert_eq!(recorded.payload, payload.as_bytes());
            // The shelf is refilled after each call.
            let n = i as u64 + 1;
            let p = proxy
                .status()
                .wait_for(|s| s.preopened == n && s.preopened_ready == 2)
                .await;
            assert_eq!((p.completed, p.failed, p.refused), (n, 0, 0));
        }
        let l = listener.status().wait_for(|s| s.accepted == 2).await;
        let listed: Vec<_> = l.recent_streams.iter().map(|s| s.client.ip()).collect();
        assert!(
            listed.contains(&clients[0]) && listed.contains(&clients[1]),
            "{listed:?}"
        );
        assert_eq!(relay.stats().snapshot().bridged_total, 4);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn tunnels_that_outlive_their_age_are_replaced_and_calls_still_go_through() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let listener = Listener::echo(&relay).await;
        let mut config = preopening(&relay, 2);
        config.preopen_max_age = Duration::from_secs(1);
        let proxy = Proxy::spawn(config).await;
        // Two, then each retired at most a second later and replaced: four bridged, two more
        // parked, and none of them ever reached the target.
        relay.stats().wait_until(|s| s.bridged_total >= 4).await;
        proxy.status().wait_for(|s| s.preopened_ready == 2).await;
        assert_eq!(listener.status().snapshot().accepted, 0);
        assert_eq!(
            round_trip(proxy.addr(), b"still served").await,
            b"still served"
        );
        let p = proxy.status().wait_for(|s| s.completed == 1).await;
        assert_eq!((p.preopened, p.failed), (1, 0));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_listener_that_cannot_reach_its_target_closes_the_tunnel_with_the_reason() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let dead = targets::dead_port().await;
        let listener = Listener::connected(relay.listener_config(dead)).await;
        let proxy = Proxy::spawn(preopening(&relay, 1)).await;
        proxy.status().wait_for(|s| s.preopened_ready == 1).await;
        assert!(round_trip(proxy.addr(), b"anyone there?").await.is_empty());
        let p = proxy.status().wait_for(|s| s.failed == 1).await;
        let line = p.last_failure.expect("failure line");
        assert!(line.contains("1011"), "{line}");
        assert!(line.contains(&dead.to_string()), "{line}");
        let l = listener.status().wait_for(|s| s.rejected == 1).await;
        assert_eq!(l.accepted, 0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_foreign_listener_gets_parked_tunnels_only_when_asked() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let _foreign = half_closing_listener(&relay).await;
        let expected = [&REPLY_PARTS.concat()[..], b"request"].concat();

        // Not asked: the proxy's probes are closed at once, nothing stays parked, and calls
        // dial their own connection.
        let proxy = Proxy::spawn(preopening(&relay, 2)).await;
        let stats = relay.stats();
        stats
            .wait_until(|s| s.bridged_total >= 1 && s.bridged == 0)
            .await;
        assert_eq!(round_trip(proxy.addr(), b"request").await, expected);
        let p = proxy.status().wait_for(|s| s.completed == 1).await;
        assert_eq!((p.preopened, p.preopened_ready, p.failed), (0, 0, 0));
        drop(proxy);

        // Asked: parked, and used without a header (the foreign listener would pass it on).
        let mut config = preopening(&relay, 2);
        config.preopen_foreign = true;
        let proxy = Proxy::spawn(config).await;
        proxy.status().wait_for(|s| s.preopened_ready == 2).await;
        assert_eq!(round_trip(proxy.addr(), b"request").await, expected);
        let p = proxy.status().wait_for(|s| s.completed == 1).await;
        assert_eq!((p.preopened, p.failed), (1, 0));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn auto_mode_preopens_only_while_the_listener_does_not_multiplex() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let mut config = relay.listener_config(targets::echo().await);
        config.mux = false;
        let _listener = Listener::connected(config).await;
        let mut config = relay.proxy_config_mode(TunnelMode::Auto, Some("branch-a"));
        config.preopen = 2;
        let proxy = Proxy::spawn(config).await;
        proxy
            .status()
            .wait_for(|s| s.mux_fallback && s.preopened_ready == 2)
            .await;
        assert_eq!(round_trip(proxy.addr(), b"one to one").await, b"one to one");
        let p = proxy.status().wait_for(|s| s.completed == 1).await;
        assert_eq!((p.preopened, p.multiplexed, p.failed), (1, 0, 0));
        drop(proxy);

        // A listener that multiplexes: calls ride the pool, nothing is pre-opened.
        let relay = Relay::start_tls().await;
        let _listener = Listener::echo(&relay).await;
        let mut config = relay.proxy_config_mode(TunnelMode::Auto, Some("branch-a"));
        config.preopen = 2;
        let proxy = Proxy::spawn(config).await;
        proxy.status().wait_for(|s| s.pooled == 2).await;
        assert_eq!(
            round_trip(proxy.addr(), b"multiplexed").await,
            b"multiplexed"
        );
        let p = proxy.status().wait_for(|s| s.completed == 1).await;
        assert_eq!((p.preopened, p.preopened_ready, p.multiplexed), (0, 0, 1));
        assert_eq!(relay.stats().snapshot().bridged_total, 2);
    })
    .await
    .expect("timed out");
}
