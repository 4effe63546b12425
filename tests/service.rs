//! The built binary under a service manager: each test binds a Unix datagram socket, runs
//! `dongle-relay` with `NOTIFY_SOCKET` pointing at it and `WATCHDOG_USEC` set (what systemd
//! does for `Type=notify` and `WatchdogSec=`), and reads what it sends: `READY=1` once the
//! component serves (checked by using it), `WATCHDOG=1` pings at half the interval, and
//! `STOPPING=1` at SIGTERM, after which it exits 0 (server, relay, and `demo --keep-running`). That the pings stop when the component is
//! not live is unit-tested in `src/service/tests.rs` (paused time, a fake notifier).

// Unix only: systemd's notification socket is a Unix datagram socket and the stop is SIGTERM.
#![cfg(unix)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use license_client::{ClientConfig, RemoteApi};
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
        Self::start_with(args, &[])
    }

    /// Starts with extra environment variables (connection strings).
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let child = Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
            .args(["--log", "warn"])
            .args(args)
            .envs(env.iter().copied())
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
        self.stopping().await;
        self.exits_0().await;
    }

    /// Sends SIGTERM and waits for `STOPPING=1` (the drain begins).
    async fn stopping(&mut self) {
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
    }

    /// Waits for the process to exit 0 (within [`LIMIT`], shorter than the drain grace the
    /// tunnel tests give, so it ended because the drain finished).
    async fn exits_0(mut self) {
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

/// A license client's session with the server reached at `addr` opens in time (`how`: the
/// way it goes, for the failure message).
async fn init(addr: SocketAddr, how: &str) {
    let api = RemoteApi::new(ClientConfig::for_server(addr.ip().to_string(), addr.port()));
    tokio::time::timeout(LIMIT, api.init())
        .await
        .expect("init in time")
        .unwrap_or_else(|e| panic!("init{how}: {e:?}"));
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
    init(addr, "").await;
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
    // On one thread (`--threads 1`, the current-thread runtime): every component of the
    // system shares it, so nothing may block it or need a second worker.
    let demo = Supervised::start(&["--threads", "1", "demo", "--port", "0", "--keep-running"]);
    let status = demo.ready().await;
    assert!(
        status.starts_with("demo running; license clients: "),
        "{status}"
    );
    let addr = address(&status);
    // Through proxy, relay and listener to the license server.
    init(addr, " through the tunnel").await;
    demo.expect_pings(2).await;
    demo.terminate().await;
    assert!(refused(addr).await);
}

async fn scrape(addr: SocketAddr) -> String {
    let answer = get(addr, "/metrics").await;
    assert_eq!(answer.status, 200);
    answer.text()
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Writes `n` bytes and reads the echo back.
async fn echo_round(client: &mut tokio::net::TcpStream, n: usize) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let data = test_support::client::random(n);
    client.write_all(&data).await.expect("write");
    let mut back = vec![0; n];
    tokio::time::timeout(LIMIT, client.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(back, data);
}

/// Half-closes and reads to the end: the tunnel finishes normally.
async fn finish(mut client: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    client.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, client.read_to_end(&mut rest))
        .await
        .expect("end in time")
        .expect("read");
    assert!(rest.is_empty());
}

/// Asks `/healthz` until it answers 503 (bounded; each answer is a fresh check of the
/// component's state) and returns the body.
async fn not_live(addr: SocketAddr) -> String {
    for _ in 0..1000 {
        let answer = get(addr, "/healthz").await;
        if answer.status == 503 {
            return answer.text();
        }
        tokio::task::yield_now().await;
    }
    panic!("{addr}/healthz stayed 200");
}

async fn connect(addr: SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn listener_and_proxy_are_ready_export_metrics_and_drain_on_sigterm() {
    use test_support::relay::{HC, Relay};
    let relay = Relay::start_tls().await;
    let echo = test_support::targets::echo().await.to_string();
    let pin = relay.cert().sha256_fingerprint.clone();
    let listen_cs = relay
        .listen_connection()
        .to_secret_string()
        .expose()
        .to_owned();
    let send_cs = relay
        .send_connection()
        .to_secret_string()
        .expose()
        .to_owned();
    let env_name = dongle_relay::commands::access::CONNECTION_STRING_ENV;
    let listener_metrics = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    let proxy_metrics = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    // Graces longer than LIMIT: an exit within LIMIT means the drain finished, not timed out.
    let listener_metrics_arg = listener_metrics.to_string();
    let listener = Supervised::start_with(
        &[
            "listen",
            "--target",
            &echo,
            "--pin-sha256",
            &pin,
            "--shutdown-grace",
            "60s",
            "--metrics",
            &listener_metrics_arg,
        ],
        &[(env_name, &listen_cs)],
    );
    let status = listener.ready().await;
    assert!(
        status.starts_with("relay-listener bridging to "),
        "{status}"
    );
    tokio::time::timeout(LIMIT, relay.stats().wait_for_listeners(HC, 1))
        .await
        .expect("the listener registers");

    let proxy_metrics_arg = proxy_metrics.to_string();
    let proxy_args = [
        "proxy",
        "--bind",
        "127.0.0.1:0",
        "--pin-sha256",
        &pin,
        "--site",
        "branch-a",
        "--shutdown-grace",
        "60s",
        "--metrics",
        &proxy_metrics_arg,
    ];
    let mut proxy = Supervised::start_with(&proxy_args, &[(env_name, &send_cs)]);
    let status = proxy.ready().await;
    assert!(status.starts_with("local-proxy listening on "), "{status}");
    let proxy_addr = address(&status);

    let mut client = connect(proxy_addr).await;
    echo_round(&mut client, 1000).await;
    listener.expect_pings(2).await;
    proxy.expect_pings(2).await;

    let text = scrape(proxy_metrics).await;
    assert_eq!(sample(&text, "proxy_listening"), 1.0);
    assert_eq!(sample(&text, "proxy_connections_total"), 1.0);
    assert_eq!(sample(&text, "proxy_connections_active"), 1.0);
    assert_eq!(
        sample(&text, "proxy_bytes_total{direction=\"to_relay\"}"),
        1000.0
    );
    assert!(
        sample(&text, "proxy_relay_dial_seconds_count") >= 1.0,
        "{text}"
    );
    let text = scrape(listener_metrics).await;
    assert_eq!(sample(&text, "listener_connected"), 1.0);
    assert_eq!(
        sample(&text, "listener_streams_total{result=\"accepted\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "listener_bytes_total{direction=\"from_relay\"}"),
        1000.0
    );
    assert_eq!(
        sample(&text, "listener_bytes_total{direction=\"to_relay\"}"),
        1000.0
    );
    assert_eq!(get(listener_metrics, "/healthz").await.status, 200);
    assert_eq!(get(proxy_metrics, "/healthz").await.status, 200);

    // The proxy drains: it stops accepting at once, the open tunnel keeps working, and it
    // exits 0 as soon as that tunnel is done.
    proxy.stopping().await;
    // The metrics endpoint stays up through the drain: /healthz turns 503 once the proxy
    // stopped accepting, and the open tunnel is still counted.
    let health = not_live(proxy_metrics).await;
    assert!(health.contains("not accepting"), "{health}");
    assert!(refused(proxy_addr).await, "no new local clients");
    assert_eq!(
        sample(&scrape(proxy_metrics).await, "proxy_connections_active"),
        1.0
    );
    echo_round(&mut client, 100).await;
    finish(client).await;
    proxy.exits_0().await;

    // The listener drains: its control channel closes (no new tunnels), an open tunnel keeps
    // working, and it exits 0 once that tunnel is done.
    let proxy = Supervised::start_with(&proxy_args, &[(env_name, &send_cs)]);
    let proxy_addr = address(&proxy.ready().await);
    let mut client = connect(proxy_addr).await;
    echo_round(&mut client, 1000).await;
    let mut listener = listener;
    listener.stopping().await;
    tokio::time::timeout(
        LIMIT,
        relay
            .stats()
            .wait_until(|s| s.listeners.get(HC).copied().unwrap_or(0) == 0),
    )
    .await
    .expect("the control channel closes");
    echo_round(&mut client, 100).await;
    finish(client).await;
    listener.exits_0().await;
    proxy.terminate().await;
}
