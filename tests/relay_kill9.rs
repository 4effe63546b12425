//! kill -9 of a real relay process (issue 15): `dongle-relay relay` is killed with SIGKILL and
//! started again on the same port, three times; each time a call through the proxy (pooled,
//! default settings) and the relay-listener (default reconnect schedule) succeeds within 2 s of
//! the relay accepting again, and the license server's seat count stays exact.
//!
//! kill -9 of one of two relay replicas (issue 16) under 200 license programs calling in a
//! loop through two proxies: the calls in flight on the killed replica fail fast (each within
//! 2 s), every call started a second or more after the kill succeeds on the other replica,
//! and the seat count is exact at the end.
//!
//! Unix only: `Child::kill` is SIGKILL there, which is the point (no shutdown code runs, sockets
//! vanish as in a crash); on Windows it is `TerminateProcess`, a different failure.
#![cfg(unix)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hc_protocol::{ConnectionString, RelayEndpoint};
use local_proxy::{ProxyConfig, TunnelMode};
use relay_listener::{IdentityMode, ListenerConfig};
use test_support::license::{License, seat};
use test_support::relay::{HC, LISTEN_KEY, SEND_KEY};
use test_support::{LIMIT, Listener, Proxy};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

/// A port that was free a moment ago: the relay must come back on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `dongle-relay relay` on `port` (plain ws:// on loopback, fixed keys) and returns once
/// it prints that it is listening.
async fn start_relay(port: u16, dir: &Path) -> Child {
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
        .args([
            "--log",
            "warn",
            "relay",
            "--bind",
            &bind,
            "--insecure-plain-ws",
        ])
        .args([
            "--hc",
            HC,
            "--listen-key",
            LISTEN_KEY,
            "--send-key",
            SEND_KEY,
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn relay");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.expect("read stdout") {
        if line.starts_with("dongle-relay relay listening on") {
            // Drain the rest of the banner so the relay never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return child;
        }
    }
    panic!("relay exited before listening");
}

fn connection(port: u16, rule: &str, key: &str) -> ConnectionString {
    format!("Endpoint=ws://127.0.0.1:{port}/;SharedAccessKeyName={rule};SharedAccessKey={key};EntityPath={HC}")
        .parse()
        .expect("connection string")
}

/// A seat taken and returned through `proxy`, with the server's count checked at each step.
async fn exact_seat(license: &License, proxy: SocketAddr, round: usize) {
    let api = license.client(proxy, "counting", None);
    assert_eq!(api.init().await, Ok(1), "round {round}: init");
    assert!(api.login(seat()).await.is_ok(), "round {round}: login");
    assert_eq!(license.taken(), 1, "round {round}: one seat held");
    assert!(api.logout(seat()).await.is_ok(), "round {round}: logout");
    assert_eq!(license.taken(), 0, "round {round}: seat returned");
    assert!(api.release().await.is_ok(), "round {round}: release");
}

#[tokio::test]
async fn a_call_succeeds_within_two_seconds_of_a_killed_relay_restarting() {
    timeout(LIMIT * 2, async {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let license = License::start(2).await;
        let mut relay = start_relay(port, dir.path()).await;
        let mut listener_config = ListenerConfig::new(connection(port, "listen", LISTEN_KEY));
        listener_config.target = license.addr().to_string();
        listener_config.identity.mode = IdentityMode::ProxyV2;
        let listener = Listener::connected(listener_config).await;
        let mut proxy_config = ProxyConfig::new(connection(port, "send", SEND_KEY));
        proxy_config.mode = TunnelMode::Auto;
        let proxy = Proxy::spawn(proxy_config).await;
        proxy.status().wait_for(|s| s.pooled > 0).await;
        exact_seat(&license, proxy.addr(), 0).await;
        for round in 1..=3 {
            relay.kill().await.expect("SIGKILL");
            listener.status().wait_for(|s| !s.connected).await;
            relay = start_relay(port, dir.path()).await;
            let back = Instant::now();
            let took = license.first_success_after(proxy.addr(), back).await;
            eprintln!("kill -9 {round}: first call {took:?} after the relay was back");
            assert!(took < Duration::from_secs(2), "round {round}: {took:?}");
            exact_seat(&license, proxy.addr(), round).await;
        }
        assert_eq!(license.taken(), 0);
        relay.kill().await.expect("kill");
        license.stop().await;
    })
    .await
    .expect("within the limit");
}

const PROGRAMS: usize = 200;

#[tokio::test]
async fn killing_one_of_two_replicas_fails_only_its_calls_in_flight_and_fast() {
    timeout(LIMIT * 2, async {
        let dir = tempfile::tempdir().expect("dir");
        let (port_a, port_b) = (free_port(), free_port());
        let license = License::start(PROGRAMS as u32).await;
        let mut relay_a = start_relay(port_a, dir.path()).await;
        let mut relay_b = start_relay(port_b, dir.path()).await;
        let replica_b =
            RelayEndpoint::parse(&format!("ws://127.0.0.1:{port_b}/")).expect("endpoint");

        let mut listener_config = ListenerConfig::new(connection(port_a, "listen", LISTEN_KEY));
        listener_config.access.relays = vec![replica_b.clone()];
        listener_config.target = license.addr().to_string();
        listener_config.identity.mode = IdentityMode::ProxyV2;
        let listener = Listener::spawn(listener_config);
        listener
            .status()
            .wait_for(|s| s.control_channels == 2)
            .await;
        let mut proxies = Vec::new();
        for _ in 0..2 {
            let mut config = ProxyConfig::new(connection(port_a, "send", SEND_KEY));
            config.mode = TunnelMode::Mux;
            config.pool_size = 2;
            config.access.relays = vec![replica_b.clone()];
            let proxy = Proxy::spawn(config).await;
            proxy.status().wait_for(|s| s.pooled == 2).await;
            proxies.push(proxy);
        }

        let until = Instant::now() + Duration::from_secs(7);
        let license_ref = &license;
        let programs = (0..PROGRAMS).map(|i| {
            let proxy = proxies[i % 2].addr();
            async move {
                let name = format!("station-{i}");
                license_ref.call_loop(proxy, &name, until).await
            }
        });
        let run = futures_util::future::join_all(programs);
        let kill = async {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            relay_a.kill().await.expect("SIGKILL");
            Instant::now()
        };
        let (failures, killed) = tokio::join!(run, kill);
        let failed: Vec<_> = failures.into_iter().flatten().collect();
        let late: Vec<Duration> = failed
            .iter()
            .filter(|f| f.started >= killed + Duration::from_secs(1))
            .map(|f| f.started - killed)
            .collect();
        assert!(late.is_empty(), "calls started {late:?} after the kill failed");
        // How long each failing call took to fail once the replica was gone (a call that
        // started before the kill counts from the kill: its earlier part was ordinary work).
        let to_fail: Vec<Duration> = failed
            .iter()
            .map(|f| (f.started + f.took).saturating_duration_since(f.started.max(killed)))
            .collect();
        let slowest = to_fail.iter().max().copied().unwrap_or_default();
        eprintln!(
            "{PROGRAMS} programs: {} call(s) failed around the kill, the slowest failed {slowest:?} after it",
            failed.len()
        );
        assert!(
            slowest < Duration::from_secs(2),
            "a failing call took {slowest:?} to fail"
        );
        assert_eq!(license.taken(), 0, "seats exact: every seat was given back");
        relay_b.kill().await.expect("kill");
        license.stop().await;
    })
    .await
    .expect("within the limit");
}
