//! Several relays for one hybrid connection (issue 16, item 5): two relay replicas sharing no
//! state, one listener with a control channel to each, a proxy whose pool is spread over both.
//! Clients make license calls in a loop (one TCP connection per call, as MxNet2 does); one
//! replica stops: every call started a second or more later succeeds, on the other replica;
//! the replica comes back, the listener and the proxy's pool return to it without a restart,
//! it carries traffic again, and the seat count is exact at the end.

use std::time::Duration;

use hc_client::Fingerprint;
use hc_protocol::RelayEndpoint;
use local_proxy::TunnelMode;
use test_support::license::{License, seat};
use test_support::{LIMIT, Listener, Proxy, Relay};
use tokio::time::Instant;

const CLIENTS: usize = 8;

fn endpoint(relay: &Relay) -> RelayEndpoint {
    RelayEndpoint::parse(&format!("sb://127.0.0.1:{}/", relay.port())).expect("endpoint")
}

fn pin(relay: &Relay) -> Fingerprint {
    relay
        .cert()
        .sha256_fingerprint
        .parse()
        .expect("fingerprint")
}

/// One client's loop until `until`: init once, then login and logout, one connection per call;
/// returns when each failed call started.
async fn calls(
    license: &License,
    proxy: std::net::SocketAddr,
    name: String,
    until: Instant,
) -> Vec<Instant> {
    let client = license.client(proxy, &name, None);
    let mut failed = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        let ok = (client.session_id().await.is_some() || client.init().await.is_ok())
            && client.login(seat()).await.is_ok()
            && client.logout(seat()).await.is_ok();
        if !ok {
            // The program keeps its session and calls again, as MxNet2 programs do. (Calling
            // rReset instead would forget the session without telling the server, so a seat
            // taken by a login whose answer was lost with the stopped relay would stay taken
            // until the login timeout: section 6.5 semantics, not a failover fault.)
            failed.push(started);
        }
    }
    let _ = client.release().await;
    failed
}

#[tokio::test]
async fn one_replica_stops_and_comes_back_while_clients_call() {
    tokio::time::timeout(LIMIT, async {
        let mut relay_a = Relay::start_tls().await;
        let relay_b = Relay::start_tls().await;
        let license = License::start(CLIENTS as u32).await;

        let mut listener_config = relay_a.listener_config(license.addr());
        listener_config.access.relays = vec![endpoint(&relay_b)];
        listener_config.access.trust.pins.push(pin(&relay_b));
        let listener = Listener::spawn(listener_config);
        listener
            .status()
            .wait_for(|s| s.control_channels == 2)
            .await;

        let mut proxy_config = relay_a.proxy_config_mode(TunnelMode::Mux, None);
        proxy_config.pool_size = 2;
        proxy_config.pool_rehome = Duration::from_millis(500);
        proxy_config.access.relays = vec![endpoint(&relay_b)];
        proxy_config.access.trust.pins.push(pin(&relay_b));
        let proxy = Proxy::spawn(proxy_config).await;
        proxy.status().wait_for(|s| s.pooled == 2).await;
        // The pool is spread: one pooled connection bridged on each replica.
        assert_eq!(relay_a.stats().snapshot().bridged, 1);
        assert_eq!(relay_b.stats().snapshot().bridged, 1);

        let until = Instant::now() + Duration::from_secs(6);
        let addr = proxy.addr();
        let license_ref = &license;
        let loops = (0..CLIENTS).map(|i| calls(license_ref, addr, format!("station-{i}"), until));
        let run = futures_util::future::join_all(loops);
        let chaos = async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            relay_a.stop().await;
            let stopped = Instant::now();
            tokio::time::sleep(Duration::from_millis(2000)).await;
            relay_a.restart().await;
            listener
                .status()
                .wait_for(|s| s.control_channels == 2)
                .await;
            stopped
        };
        let (failures, stopped) = tokio::join!(run, chaos);
        let late: Vec<Duration> = failures
            .iter()
            .flatten()
            .filter(|&&t| t >= stopped + Duration::from_secs(1))
            .map(|&t| t - stopped)
            .collect();
        assert!(late.is_empty(), "calls failed {late:?} after the stop");
        let failed: usize = failures.iter().map(Vec::len).sum();
        eprintln!("{failed} call(s) failed around the stop");

        // The restarted replica carries the pool again (its slot came home) and the listener.
        proxy.status().wait_for(|s| s.pooled == 2).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while relay_a.stats().snapshot().bridged == 0 {
            assert!(
                Instant::now() < deadline,
                "the restarted replica took no traffic"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = license.client(proxy.addr(), "after", None);
        for _ in 0..10 {
            client.init().await.expect("init");
            client.login(seat()).await.expect("login");
            client.logout(seat()).await.expect("logout");
        }
        let _ = client.release().await;
        assert_eq!(license.taken(), 0, "seats exact: every seat was given back");
    })
    .await
    .expect("within the limit");
}
