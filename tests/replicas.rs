//! Several relays for one hybrid connection (issue 16, item 5): two relay replicas sharing no
//! state, one listener with a control channel to each, a proxy whose pool is spread over both.
//! Clients make license calls in a loop (one TCP connection per call, as MxNet2 does); one
//! replica stops: every call started a second or more later succeeds, on the other replica;
//! the replica comes back, the listener and the proxy's pool return to it without a restart,
//! it carries traffic again, and the seat count is exact at the end.
//!
//! One name for several replicas (a Kubernetes headless Service): the listener and the
//! proxies are given `localhost` and an injected resolver ([`hc_client::resolve::Table`])
//! that maps it to loopback relays on different ports. A replica added to the answer gets a
//! control channel and traffic from both proxies (the pool moves a slot there, 1:1 senders
//! reach it in round robin); one removed loses its control channel and its pooled connection.

use std::time::Duration;

use hc_client::Fingerprint;
use hc_client::access::AccessConfig;
use hc_client::resolve::{Resolver, Table};
use hc_protocol::RelayEndpoint;
use local_proxy::TunnelMode;
use test_support::license::{License, seat};
use test_support::{HC, LIMIT, Listener, Proxy, Relay, client, targets};
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
        let loops = (0..CLIENTS).map(|i| async move {
            let name = format!("station-{i}");
            let failed = license_ref.call_loop(addr, &name, until).await;
            failed.into_iter().map(|f| f.started).collect::<Vec<_>>()
        });
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

/// Waits until `relays` carry `counts` bridged connections each (at the same moment).
async fn bridged(relays: &[&Relay], counts: &[usize]) {
    loop {
        let now: Vec<usize> = relays
            .iter()
            .map(|r| r.stats().snapshot().bridged)
            .collect();
        if now == counts {
            return;
        }
        let changes = relays
            .iter()
            .zip(now)
            .map(|(r, n)| Box::pin(r.stats().wait_until(move |s| s.bridged != n)));
        futures_util::future::select_all(changes).await;
    }
}

/// `access` reaches the relays through the name `localhost` (port of `first`), resolved by
/// `table`, trusting every relay of `all`.
fn by_name(access: &mut AccessConfig, first: &Relay, all: &[&Relay], table: &Table) {
    access.connection.endpoint =
        RelayEndpoint::parse(&format!("sb://localhost:{}/", first.port())).expect("endpoint");
    access.trust.pins = all.iter().map(|r| pin(r)).collect();
    access.resolver = Resolver::new(table.clone());
    access.resolve_interval = Duration::from_millis(200);
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn replicas_behind_one_name_are_followed_as_the_name_changes() {
    tokio::time::timeout(LIMIT, async {
        let (a, b, c) = (
            Relay::start_tls().await,
            Relay::start_tls().await,
            Relay::start_tls().await,
        );
        let all = [&a, &b, &c];
        let table = Table::default();
        table.set("localhost", &[a.addr(), b.addr()]);

        let mut listener_config = a.listener_config(targets::echo().await);
        by_name(&mut listener_config.access, &a, &all, &table);
        let listener = Listener::spawn(listener_config);
        listener
            .status()
            .wait_for(|s| s.control_channels == 2)
            .await;
        a.stats().wait_for_listeners(HC, 1).await;
        b.stats().wait_for_listeners(HC, 1).await;

        let mut pooled_config = a.proxy_config_mode(TunnelMode::Mux, None);
        pooled_config.pool_size = 3;
        pooled_config.pool_rehome = Duration::from_millis(300);
        by_name(&mut pooled_config.access, &a, &all, &table);
        let pooled = Proxy::spawn(pooled_config).await;
        pooled.status().wait_for(|s| s.pooled == 3).await;
        // Spread: slots 0 and 2 on the lower address, slot 1 on the other.
        let (low, high) = if a.addr() < b.addr() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        bridged(&[low, high], &[2, 1]).await;
        let mut single_config = a.proxy_config();
        by_name(&mut single_config.access, &a, &all, &table);
        let single = Proxy::spawn(single_config).await;
        assert_eq!(
            client::round_trip(pooled.addr(), b"via the pool").await,
            b"via the pool"
        );

        // A replica is added: the listener opens a control channel there, one pool slot moves
        // there (one per replica now), and 1:1 senders reach it in their round robin.
        table.set("localhost", &[a.addr(), b.addr(), c.addr()]);
        c.stats().wait_for_listeners(HC, 1).await;
        listener
            .status()
            .wait_for(|s| s.control_channels == 3)
            .await;
        bridged(&all, &[1, 1, 1]).await;
        // The 1:1 proxy learns the new address from its own re-resolution (every 200 ms here),
        // which a loaded machine can run late: call until a sender lands on the new replica,
        // each call answered, at most 30 calls (three replicas in round robin take 3 once the
        // proxy has re-resolved).
        let before = c.stats().snapshot().bridged_total;
        let mut reached = false;
        for n in 0..30 {
            let data = format!("1:1 call {n}");
            assert_eq!(
                client::round_trip(single.addr(), data.as_bytes()).await,
                data.as_bytes()
            );
            if c.stats().snapshot().bridged_total > before {
                reached = true;
                break;
            }
        }
        assert!(
            reached,
            "no 1:1 sender reached the added replica in 30 calls"
        );

        // A replica is removed: its control channel and pooled connection go.
        table.set("localhost", &[a.addr(), c.addr()]);
        b.stats()
            .wait_until(|s| s.listeners.get(HC).copied().unwrap_or(0) == 0 && s.bridged == 0)
            .await;
        listener
            .status()
            .wait_for(|s| s.control_channels == 2)
            .await;
        pooled.status().wait_for(|s| s.pooled == 3).await;
        for proxy in [&pooled, &single] {
            assert_eq!(client::round_trip(proxy.addr(), b"after").await, b"after");
        }
    })
    .await
    .expect("within the limit");
}
