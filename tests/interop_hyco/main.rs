//! Interoperability with Microsoft's own Hybrid Connections clients (issue 3): the npm
//! packages `hyco-ws` 1.0.5 and `hyco-https` 1.4.5, driven by the Node scripts in
//! `tests/interop/`, against our relay over TLS (self-signed certificate, trusted by Node via
//! `NODE_EXTRA_CA_CERTS`) with real SAS tokens.
//!
//! - a `hyco-ws` listener serves connections made through our local-proxy;
//! - a `hyco-ws` sender reaches our relay-listener through our relay;
//! - a `hyco-ws` sender and listener meet through our relay (it stands in for Azure);
//! - `createRelayToken` tokens are accepted by our relay, ours verify in Node and are equal to
//!   theirs, and wrong keys are refused (401) either way;
//! - a `hyco-https` listener's keep-alive pongs keep it registered;
//! - a `hyco-ws` listener with a wrong key (which reconnects at once, doubling its attempts
//!   each round) is throttled while the relay keeps serving correct clients;
//! - a `hyco-https` `createRelayedServer` serves plain HTTP requests (hyper) through our relay
//!   in HTTP request mode: small requests inline, 1 MiB requests and responses over the
//!   request rendezvous.
//!
//! The relay, proxy and listener come from `test-support`; the XOR target and the
//! keep-the-write-half-open round trip are local because the scripts transform bytes and a
//! hyco-ws listener ends a tunnel on the client's EOF.
//!
//! `scripts/setup-node-interop.sh` installs the packages and `scripts/test.sh` passes their
//! location in `DONGLE_RELAY_NODE_MODULES`. Without it the tests print why and pass, unless
//! `DONGLE_RELAY_REQUIRE_INTEROP=1` (CI), which makes that a failure. `docs/interop.md` has
//! the details.

// Unix only: the peers are Node programs installed for Linux, which a Windows test executable
// (run under Wine) cannot start.
#![cfg(unix)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hc_client::{AccessError, DialError, RelayAccess};
use hc_protocol::sas::SasError;
use hc_protocol::{SasToken, Secret};
use relay_server::RelayConfig;
use test_support::client::random;
use test_support::http::{HttpReply, https_request};
use test_support::{HC, LISTEN_KEY, Listener, Proxy, Relay, SEND_KEY};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

const WRONG_KEY: &str = "not-the-key-0123456789";
/// Every test body runs under this (Node start-up, TLS in debug builds and MiBs of data).
const LIMIT: Duration = Duration::from_secs(90);
/// The scripts transform every byte this way (see `tests/interop/common.js`).
const XOR: u8 = 0x5a;

// ---------------------------------------------------------------------------------------
// Whether the Node clients are available.

/// The `node_modules` holding `hyco-ws` and `hyco-https`, or `None` (with a message on
/// stderr) when the test is to be skipped. Panics if `DONGLE_RELAY_REQUIRE_INTEROP=1`.
async fn node_modules(test: &str) -> Option<PathBuf> {
    let required = std::env::var("DONGLE_RELAY_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let problem = match std::env::var_os("DONGLE_RELAY_NODE_MODULES").map(PathBuf::from) {
        None => "DONGLE_RELAY_NODE_MODULES is not set".to_owned(),
        Some(dir) if !(dir.join("hyco-ws").is_dir() && dir.join("hyco-https").is_dir()) => {
            format!("{} holds no hyco-ws and hyco-https", dir.display())
        }
        Some(dir) => match Command::new("node").arg("--version").output().await {
            Ok(out) if out.status.success() => return Some(dir),
            _ => "`node` cannot be run".to_owned(),
        },
    };
    assert!(
        !required,
        "DONGLE_RELAY_REQUIRE_INTEROP=1 but {problem}: run `bash scripts/setup-node-interop.sh` \
         and set DONGLE_RELAY_NODE_MODULES (scripts/test.sh does both)"
    );
    // Straight to stderr, past the test harness' capture, so a skip is always visible.
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED {test}: {problem} (run `bash scripts/test.sh`, which installs Microsoft's Node \
         clients with scripts/setup-node-interop.sh)"
    );
    None
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out")
}

// ---------------------------------------------------------------------------------------
// Node scripts as child processes that report on stdout.

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// A running Node script; killed when dropped.
struct Node {
    name: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Node {
    /// The next stdout line, or `None` once the script exited.
    async fn line(&mut self) -> Option<String> {
        self.lines.next_line().await.expect("read node stdout")
    }

    /// Skips lines until one starts with `prefix`. Failure lines (`ERROR`, `MISMATCH`,
    /// `CONNECTION_ERROR`, `CHANNEL_CLOSED`) that were not asked for fail the test.
    async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let Some(line) = self.line().await else {
                panic!("{}: exited before printing {prefix}", self.name);
            };
            if line.starts_with(prefix) {
                return line;
            }
            let failure = ["ERROR", "MISMATCH", "CONNECTION_ERROR", "CHANNEL_CLOSED"]
                .iter()
                .any(|f| line.starts_with(f));
            assert!(!failure, "{}: {line} (waiting for {prefix})", self.name);
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

// ---------------------------------------------------------------------------------------
// The relay under test and our components around it.

/// The relay under test (test-support's TLS relay) plus what Node needs to reach it.
struct Interop {
    relay: Relay,
    modules: PathBuf,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl Interop {
    /// test-support's TLS relay (`license`, rules `listen` and `send`), adjusted by `tweak`,
    /// its certificate written where Node will trust it.
    async fn start(
        modules: PathBuf,
        tweak: impl Fn(&mut RelayConfig) + Send + Sync + 'static,
    ) -> Self {
        let relay = Relay::start_tls_with(tweak).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("relay-ca.pem");
        std::fs::write(&ca_file, &relay.cert().cert_pem).expect("write CA file");
        Self {
            relay,
            modules,
            dir,
            ca_file,
        }
    }

    fn port(&self) -> u16 {
        self.relay.port()
    }

    fn stats(&self) -> &relay_server::RelayStats {
        self.relay.stats()
    }

    fn proxy_config(&self) -> local_proxy::ProxyConfig {
        self.relay.proxy_config()
    }

    fn listener_config(&self, target: SocketAddr) -> relay_listener::ListenerConfig {
        self.relay.listener_config(target)
    }

    /// A hand-built relay URI: hyco-ws' `createRelay*Uri` helpers hard-code `wss://…:443`.
    fn uri(&self, action: &str) -> String {
        format!(
            "wss://127.0.0.1:{}/$hc/{HC}?sb-hc-action={action}",
            self.port()
        )
    }

    /// The token resource Node clients sign for this relay (the port stays in `sr`).
    fn resource(&self) -> String {
        format!("http://127.0.0.1:{}/{HC}", self.port())
    }

    /// Starts `tests/interop/{name}`; with `from`, its connections leave from that loopback
    /// address (so the relay sees another client IP).
    fn node(&self, name: &str, args: &[&str], from: Option<&str>) -> Node {
        let mut command = Command::new("node");
        command
            // ws 1.1.5 uses the deprecated `new Buffer()`: keep stderr for real problems.
            .arg("--no-deprecation")
            .arg(script(name))
            .args(args)
            .env("DONGLE_RELAY_NODE_MODULES", &self.modules)
            .env("NODE_EXTRA_CA_CERTS", &self.ca_file)
            .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(address) = from {
            command.env("INTEROP_LOCAL_ADDRESS", address);
        }
        let mut child = command.spawn().expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let label = name.to_owned();
        // Node's stderr goes to the test's captured output, shown when a test fails.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{label} stderr] {line}");
            }
        });
        Node {
            name: name.to_owned(),
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Relay access with a fixed token (`SharedAccessSignature=`), the certificate pinned.
    fn token_access(&self, token: &str) -> RelayAccess {
        let connection = format!(
            "Endpoint=sb://127.0.0.1:{}/;SharedAccessSignature={token};EntityPath={HC}",
            self.port()
        )
        .parse()
        .expect("connection string");
        RelayAccess::new(self.relay.access(connection)).expect("access")
    }

    /// Starts the hyco-ws listener script (correct key) and waits until the relay has
    /// registered it as listener number `nth`.
    async fn hyco_listener(&self, nth: usize) -> Node {
        let mut node = self.node(
            "hyco-listener.js",
            &[&self.uri("listen"), "listen", LISTEN_KEY],
            None,
        );
        node.expect("LISTENING").await;
        self.stats().wait_for_listeners(HC, nth).await;
        node
    }

    /// Starts the hyco-ws sender script (correct key) sending `payload`, which it reads from
    /// a file in the test's directory.
    fn hyco_sender(&self, payload: &[u8]) -> Node {
        let payload_file = self.dir.path().join("payload.bin");
        std::fs::write(&payload_file, payload).expect("payload file");
        self.node(
            "hyco-sender.js",
            &[
                &self.uri("connect"),
                "send",
                SEND_KEY,
                payload_file.to_str().expect("utf-8 path"),
            ],
            None,
        )
    }
}

// ---------------------------------------------------------------------------------------
// Data and TCP peers.

fn xor(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ XOR).collect()
}

/// A TCP target that answers every byte XOR 0x5a and reports, per connection, everything it
/// received once the connection ended.
async fn xor_target() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let mut received = Vec::new();
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = rd.read(&mut buf).await {
                    received.extend_from_slice(&buf[..n]);
                    if wr.write_all(&xor(&buf[..n])).await.is_err() {
                        break;
                    }
                }
                let _ = wr.shutdown().await;
                let _ = tx.send(received);
            });
        }
    });
    (addr, rx)
}

/// Sends `len` random bytes through `proxy` and checks that exactly their XOR comes back,
/// reading while writing. Unlike test-support's `client::round_trip` it keeps its write half
/// open until the answer is in: a hyco-ws listener gets raw framing, where EOF ends the
/// tunnel.
async fn round_trip(proxy: SocketAddr, len: usize) {
    let data = random(len);
    let stream = TcpStream::connect(proxy).await.expect("connect proxy");
    let (mut rd, mut wr) = stream.into_split();
    let write = async {
        wr.write_all(&data).await.expect("write");
        // Keep the write half open: the tunnel ends on EOF, perhaps before the answer.
        wr
    };
    let read = async {
        let mut got = vec![0u8; len];
        rd.read_exact(&mut got).await.expect("read answer");
        got
    };
    let (_wr, got) = tokio::join!(write, read);
    assert!(got == xor(&data), "the answer differs from the data sent");
}

/// The HTTP status of a refused dial.
fn refusal<T>(result: Result<T, AccessError>) -> u16 {
    match result {
        Err(AccessError::Dial(DialError::Refused { status, .. })) => status,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

// The tests, by what they exercise.
mod http_mode;
mod listeners;
mod tokens;
mod tunnels;
