//! Microsoft's listeners on our relay: keep-alive pongs, and a reconnect storm throttled.

use super::*;

/// channel (as the .NET client does); the relay, which also pings quiet channels (here every
/// 100 ms, dropping them after three silent intervals), keeps it registered.
#[tokio::test]
async fn hyco_https_keep_alive_pongs_keep_the_listener_registered() {
    let Some(modules) =
        node_modules("hyco_https_keep_alive_pongs_keep_the_listener_registered").await
    else {
        return;
    };
    within(async {
        let relay = Interop::start(modules, |c| {
            c.limits.control_ping_interval = Duration::from_millis(100);
        })
        .await;
        let mut listener = relay.node(
            "hyco-https-keepalive.js",
            &[&relay.uri("listen"), "listen", LISTEN_KEY, "300", "5"],
            None,
        );
        listener.expect("LISTENING").await;
        relay.stats().wait_for_listeners(HC, 1).await;
        // Five pongs = 1.5 s, fifteen of the relay's ping intervals.
        assert_eq!(listener.expect("PONGED").await, "PONGED 5");
        assert_eq!(relay.stats().listener_count(HC), 1);
        listener.stop().await;
    })
    .await;
}

/// What a storming listener script reported so far.
#[derive(Debug, Default, Clone, Copy)]
struct StormCounts {
    unauthorized: u64,
    too_many: u64,
    other: u64,
}

/// A hyco-ws listener with a wrong key reconnects at once, and twice per failure, so its
/// attempts double every round. The relay answers the first ones 401, then 429, then closes
/// that address's connections before TLS (one probe per refill interval); meanwhile a correct
/// hyco-ws listener keeps serving our proxy's connections and a new listener can register.
#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn hyco_ws_reconnect_storm_is_throttled_while_the_relay_keeps_serving() {
    let Some(modules) =
        node_modules("hyco_ws_reconnect_storm_is_throttled_while_the_relay_keeps_serving").await
    else {
        return;
    };
    const BURST: u32 = 5;
    const RATE: f64 = 2.0;
    within(async {
        let relay = Interop::start(modules, |c| {
            c.limits.listen_burst_per_ip = BURST;
            c.limits.listen_rate_per_ip = RATE;
        })
        .await;
        let good = relay.hyco_listener(1).await;
        let proxy_fixture = Proxy::spawn(relay.proxy_config()).await;
        let proxy = proxy_fixture.addr();

        // The storm comes from 127.0.0.2, a host of its own as far as the relay can tell.
        let started = tokio::time::Instant::now();
        let mut storm = relay.node(
            "hyco-listener.js",
            &[&relay.uri("listen"), "listen", WRONG_KEY],
            Some("127.0.0.2"),
        );
        let (counts_tx, mut counts) = watch::channel(StormCounts::default());
        let reader = tokio::spawn(async move {
            while let Some(line) = storm.line().await {
                counts_tx.send_modify(|c| {
                    if line.contains("(401)") {
                        c.unauthorized += 1;
                    } else if line.contains("(429)") {
                        c.too_many += 1;
                    } else if line.starts_with("ERROR") {
                        c.other += 1;
                    }
                });
                assert!(!line.starts_with("LISTENING"), "wrong key accepted: {line}");
            }
        });
        // In full swing: refused for the key, then for the rate, then cut off before TLS.
        counts
            .wait_for(|c| c.unauthorized >= 1 && c.too_many >= 1 && c.other >= 100)
            .await
            .expect("storm reader");
        relay.stats().wait_until(|s| s.throttled_total >= 100).await;

        // The relay still serves: a round trip through the good listener, and a new listener.
        round_trip(proxy, 256 << 10).await;
        let second = relay.hyco_listener(2).await;
        for _ in 0..2 {
            round_trip(proxy, 64 << 10).await;
        }
        // The storm holds no more than a handful of connections (probes in flight): with the
        // storm still running, the count falls below 32 within seconds. A single sample is not
        // the measure: on a loaded machine many probes can be mid-handshake at one instant,
        // while a relay that kept refused or throttled sockets would never get below.
        let settled = tokio::time::timeout(
            Duration::from_secs(10),
            relay.stats().wait_until(|s| s.connections < 32),
        )
        .await;
        let snapshot = relay.stats().snapshot();
        assert!(settled.is_ok(), "{snapshot:?}");

        reader.abort();
        let _ = reader.await;
        let elapsed = started.elapsed().as_secs_f64();
        let seen = *counts.borrow();
        eprintln!("storm: {seen:?} in {elapsed:.2} s; relay: {snapshot:?}");
        // The token check ran at most burst + rate × elapsed times (+1 for rounding).
        let allowed = f64::from(BURST) + RATE * elapsed + 1.0;
        assert!(
            (seen.unauthorized as f64) <= allowed,
            "{seen:?} in {elapsed:.1} s: the rate limit did not hold"
        );
        drop(proxy_fixture);
        second.stop().await;
        good.stop().await;
    })
    .await;
}
