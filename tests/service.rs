//! The built binary under a service manager: each test binds a Unix datagram socket, runs
//! `dongle-relay` with `NOTIFY_SOCKET` pointing at it and `WATCHDOG_USEC` set (what systemd
//! does for `Type=notify` and `WatchdogSec=`), and reads what it sends: `READY=1` once the
//! component serves (checked by using it), `WATCHDOG=1` pings at half the interval, and
//! `STOPPING=1` at SIGTERM, after which it exits 0 (server, relay, and `demo --keep-running`). That the pings stop when the component is
//! not live is unit-tested in `src/service.rs` (paused time, a fake notifier).

#![cfg(unix)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use license_core::client::{ClientConfig, RemoteApi};
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};

const LIMIT: Duration = Duration::from_secs(30);
/// 400 ms: the binary pings every 200 ms.
const WATCHDOG_USEC: &str = "400000";

struct Supervised {
    socket: UnixDatagram,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Supervised {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let child = Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
            .args(["--log", "warn"])
            .args(args)
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env_remove("WATCHDOG_PID")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn");
        Self {
            socket,
            child,
            _dir: dir,
        }
    }

    /// The next datagram.
    async fn next(&self) -> String {
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(LIMIT, self.socket.recv(&mut buf))
            .await
            .expect("a notification in time")
            .expect("recv");
        String::from_utf8(buf[..n].to_vec()).expect("utf-8")
    }

    /// `READY=1` must come first; returns its `STATUS=`.
    async fn ready(&self) -> String {
        let first = self.next().await;
        let mut lines = first.lines();
        assert_eq!(lines.next(), Some("READY=1"), "{first:?}");
        lines
            .next()
            .and_then(|l| l.strip_prefix("STATUS="))
            .unwrap_or_else(|| panic!("no STATUS= in {first:?}"))
            .to_owned()
    }

    async fn expect_pings(&self, n: usize) {
        for _ in 0..n {
            assert_eq!(self.next().await, "WATCHDOG=1\n");
        }
    }

    /// SIGTERM: `STOPPING=1` arrives (pings sent meanwhile are skipped), the process exits 0.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let mut stopping = None;
        for _ in 0..100 {
            let notice = self.next().await;
            if notice.starts_with("STOPPING=1\n") {
                stopping = Some(notice);
                break;
            }
            assert_eq!(notice, "WATCHDOG=1\n");
        }
        let stopping = stopping.expect("STOPPING=1");
        assert!(stopping.contains("\nSTATUS="), "{stopping:?}");
        let status = tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        assert!(status.success(), "{status}");
    }
}

/// The address at the end of a `STATUS=… listening on ADDR` line.
fn address(status: &str) -> SocketAddr {
    status
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {status:?}"))
}

async fn refused(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn server_is_ready_when_it_serves_pings_the_watchdog_and_stops_on_sigterm() {
    let server = Supervised::start(&["server", "--port", "0", "--ephemeral-key"]);
    let status = server.ready().await;
    assert!(
        status.starts_with("license server listening on "),
        "{status}"
    );
    let addr = address(&status);
    // READY means serving: a client session works at once.
    let api = RemoteApi::new(ClientConfig::for_server(addr.ip().to_string(), addr.port()));
    tokio::time::timeout(LIMIT, api.init())
        .await
        .expect("init in time")
        .expect("init");
    server.expect_pings(3).await;
    server.terminate().await;
    assert!(refused(addr).await, "nothing listens after the stop");
}

/// A port that was free a moment ago.
async fn free_port() -> u16 {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    socket.local_addr().expect("addr").port()
}

async fn get(addr: SocketAddr, path: &str) -> ops_http::client::Answer {
    ops_http::client::call(addr, http::Method::GET, path, None, None, LIMIT)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[tokio::test]
async fn relay_is_ready_when_it_accepts_pings_the_watchdog_and_stops_on_sigterm() {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    let metrics_arg = metrics.to_string();
    let relay = Supervised::start(&[
        "relay",
        "--bind",
        "127.0.0.1:0",
        "--insecure-plain-ws",
        "--metrics",
        &metrics_arg,
    ]);
    let status = relay.ready().await;
    assert!(status.starts_with("relay listening on "), "{status}");
    let addr = address(&status);
    assert!(!refused(addr).await, "READY means accepting");
    // The metrics endpoint (loopback, no token) runs beside it.
    let health = get(metrics, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text());
    let scrape = get(metrics, "/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.text().lines().any(|l| l == "relay_serving 1"),
        "{}",
        scrape.text()
    );
    relay.expect_pings(3).await;
    relay.terminate().await;
    assert!(refused(addr).await);
    assert!(refused(metrics).await, "the metrics endpoint stopped too");
}

#[tokio::test]
async fn demo_keep_running_is_ready_after_its_walkthrough_and_stops_on_sigterm() {
    let demo = Supervised::start(&["demo", "--port", "0", "--keep-running"]);
    let status = demo.ready().await;
    assert!(
        status.starts_with("demo running; license clients: "),
        "{status}"
    );
    let addr = address(&status);
    // Through proxy, relay and listener to the license server.
    let api = RemoteApi::new(ClientConfig::for_server(addr.ip().to_string(), addr.port()));
    tokio::time::timeout(LIMIT, api.init())
        .await
        .expect("init in time")
        .expect("init through the tunnel");
    demo.expect_pings(2).await;
    demo.terminate().await;
    assert!(refused(addr).await);
}
