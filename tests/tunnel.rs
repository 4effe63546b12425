//! End to end on loopback with the real self-hosted relay (TLS, self-signed certificate pinned
//! by fingerprint): client → local-proxy → relay → relay-listener → TCP target.
//!
//! Proves integrity (4 MiB each way), concurrency (200 tunnels), half-close across the whole
//! path, the refusals operators will meet (wrong key, expired token, Send-only key used to
//! listen, unknown hybrid connection, no listener, target down), reconnection after a relay
//! restart on the same port, and token renewal over several token lifetimes.

use std::net::SocketAddr;
use std::time::Duration;

use hc_client::access::AccessConfig;
use hc_client::trust::{Fingerprint, TrustConfig};
use hc_protocol::Secret;
use hc_protocol::connection_string::ConnectionString;
use hc_protocol::sas::{SasToken, audience_uri};
use local_proxy::{LocalProxy, ProxyConfig, ProxyStatus};
use rand::RngCore as _;
use relay_listener::{ListenerConfig, ListenerStatus, RelayListener};
use relay_server::config::{HybridConnectionConfig, Right, SasRule};
use relay_server::{RelayConfig, RelayStats, SelfSigned};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const HC: &str = "license";
const LISTEN_KEY: &str = "listen-key-0123456789";
const SEND_KEY: &str = "send-key-0123456789";
const LIMIT: Duration = Duration::from_secs(60);

struct Relay {
    port: u16,
    stats: RelayStats,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), relay_server::RelayError>>,
}

fn certificate() -> SelfSigned {
    hc_client::install_crypto_provider();
    relay_server::tls::self_signed(&["localhost", "127.0.0.1"]).expect("certificate")
}

async fn start_relay(cert: &SelfSigned, listener: TcpListener) -> Relay {
    let mut config = RelayConfig::new(
        cert.tls_config(),
        vec![HybridConnectionConfig::new(
            HC,
            vec![
                SasRule::new("listen", LISTEN_KEY, &[Right::Listen]),
                SasRule::new("send", SEND_KEY, &[Right::Send]),
            ],
        )],
    );
    config.limits.shutdown_grace = Duration::from_millis(200);
    let stats = config.stats();
    let port = listener.local_addr().expect("addr").port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay_server::run(config, listener, shutdown.clone()));
    stats.wait_serving().await;
    Relay {
        port,
        stats,
        shutdown,
        task,
    }
}

fn connection(port: u16, rule: &str, key: &str, hc: &str) -> ConnectionString {
    format!("Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName={rule};SharedAccessKey={key};EntityPath={hc}")
        .parse()
        .expect("connection string")
}

fn access(cs: ConnectionString, cert: &SelfSigned) -> AccessConfig {
    let mut access = AccessConfig::new(cs);
    access.trust = TrustConfig {
        pins: vec![
            cert.sha256_fingerprint
                .parse::<Fingerprint>()
                .expect("fingerprint"),
        ],
        ..TrustConfig::default()
    };
    access
}

fn listener_config(cs: ConnectionString, cert: &SelfSigned, target: SocketAddr) -> ListenerConfig {
    let mut config = ListenerConfig::new(cs);
    config.access = access(config.access.connection.clone(), cert);
    config.target = target.to_string();
    config.target_timeout = Duration::from_secs(2);
    config.reconnect_max = Duration::from_secs(1);
    config
}

fn spawn_listener(config: ListenerConfig) -> (ListenerStatus, CancellationToken) {
    let listener = RelayListener::new(config).expect("listener");
    let status = listener.status();
    let shutdown = CancellationToken::new();
    tokio::spawn(listener.run(shutdown.clone()));
    (status, shutdown)
}

async fn spawn_proxy(config: ProxyConfig) -> (SocketAddr, ProxyStatus, CancellationToken) {
    let proxy = LocalProxy::new(config).expect("proxy");
    let status = proxy.status();
    let socket = local_proxy::bind("127.0.0.1:0".parse().expect("addr"), 512).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(proxy.run(socket, shutdown.clone()));
    (addr, status, shutdown)
}

fn proxy_config(port: u16, cert: &SelfSigned, key: &str, hc: &str) -> ProxyConfig {
    let mut config = ProxyConfig::new(connection(port, "send", key, hc));
    config.access = access(config.access.connection.clone(), cert);
    config.site = Some("branch-a".into());
    config
}

/// A TCP echo target that honours half-close: echoes until EOF, then shuts down its side.
async fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    addr
}

/// A target that answers only after the request ended: reads to EOF, then writes a summary.
async fn answer_after_eof_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).await.is_ok() {
                    let answer = format!("got {} bytes after EOF", request.len());
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    addr
}

/// A port nothing listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// Sends `data` through the proxy and returns what came back until EOF.
async fn round_trip(proxy: SocketAddr, data: &[u8]) -> Vec<u8> {
    let stream = TcpStream::connect(proxy).await.expect("connect proxy");
    let (mut rd, mut wr) = stream.into_split();
    let writer = async {
        wr.write_all(data).await.expect("write");
        wr.shutdown().await.expect("shutdown");
    };
    let reader = async {
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.expect("read");
        got
    };
    tokio::join!(writer, reader).1
}

/// What a refused client sees: the connection closes without data.
async fn refused_client(proxy: SocketAddr) {
    let mut stream = TcpStream::connect(proxy).await.expect("connect proxy");
    let _ = stream.write_all(b"hello?").await;
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    assert!(got.is_empty(), "refused client got {got:?}");
}

#[tokio::test]
async fn four_mebibytes_each_way_and_half_close_end_to_end() {
    timeout(LIMIT, async {
        let cert = certificate();
        let relay = start_relay(&cert, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        let echo = echo_target().await;
        let (lstatus, _lstop) = spawn_listener(listener_config(
            connection(relay.port, "listen", LISTEN_KEY, HC),
            &cert,
            echo,
        ));
        lstatus.wait_for(|s| s.connected).await;
        let (proxy, pstatus, _pstop) =
            spawn_proxy(proxy_config(relay.port, &cert, SEND_KEY, HC)).await;

        let data = random(4 * 1024 * 1024);
        let echoed = round_trip(proxy, &data).await;
        assert!(
            echoed == data,
            "4 MiB echo differs ({} bytes back)",
            echoed.len()
        );
        let p = pstatus.wait_for(|s| s.completed == 1).await;
        assert_eq!((p.accepted, p.refused, p.failed), (1, 0, 0));
        assert_eq!(pstatus.bytes().to_relay(), data.len() as u64);
        assert_eq!(pstatus.bytes().from_relay(), data.len() as u64);
        let l = lstatus.wait_for(|s| s.active_streams == 0).await;
        assert_eq!((l.accepted, l.rejected), (1, 0));

        // Half-close: the target answers only after it saw EOF, so the answer can only arrive
        // if EOF crossed the tunnel while the way back stayed open.
        let patient = answer_after_eof_target().await;
        let (l2, _l2stop) = spawn_listener(listener_config(
            connection(relay.port, "listen", LISTEN_KEY, "license"),
            &cert,
            patient,
        ));
        l2.wait_for(|s| s.connected).await;
        // Two listeners now share the hybrid connection; send until the patient one answers.
        let mut answered = false;
        for _ in 0..40 {
            let reply = round_trip(proxy, b"twelve bytes").await;
            if reply == b"got 12 bytes after EOF" {
                answered = true;
                break;
            }
            assert_eq!(reply, b"twelve bytes", "echo listener answered wrongly");
        }
        assert!(answered, "half-close never reached the patient target");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn two_hundred_concurrent_tunnels_complete() {
    timeout(LIMIT, async {
        let cert = certificate();
        let relay = start_relay(&cert, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        let echo = echo_target().await;
        let (lstatus, _lstop) = spawn_listener(listener_config(
            connection(relay.port, "listen", LISTEN_KEY, HC),
            &cert,
            echo,
        ));
        lstatus.wait_for(|s| s.connected).await;
        let (proxy, pstatus, _pstop) =
            spawn_proxy(proxy_config(relay.port, &cert, SEND_KEY, HC)).await;
        // All 200 tunnels are open at the same time (a barrier holds them); their opening is
        // paced to 32 at once because the relay queues at most 64 accepts per listener.
        let opening = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
        let all_open = std::sync::Arc::new(tokio::sync::Barrier::new(200));
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..200usize {
            let (opening, all_open, pstatus) = (opening.clone(), all_open.clone(), pstatus.clone());
            clients.spawn(async move {
                let first = random(8 * 1024 + i);
                let second = random(4 * 1024 + i);
                let permit = opening.acquire().await.expect("semaphore");
                let stream = TcpStream::connect(proxy).await.expect("connect");
                let (mut rd, mut wr) = stream.into_split();
                wr.write_all(&first).await.expect("write");
                let mut echo = vec![0u8; first.len()];
                let opened = rd.read_exact(&mut echo).await.is_ok() && echo == first;
                drop(permit);
                if all_open.wait().await.is_leader() {
                    assert_eq!(
                        pstatus.snapshot().active,
                        200,
                        "not all tunnels open at once"
                    );
                }
                if !opened {
                    return false;
                }
                let writer = async {
                    wr.write_all(&second).await?;
                    wr.shutdown().await
                };
                let mut rest = Vec::new();
                let (w, r) = tokio::join!(writer, rd.read_to_end(&mut rest));
                w.is_ok() && r.is_ok() && rest == second
            });
        }
        let mut ok = 0;
        while let Some(r) = clients.join_next().await {
            if r.expect("client task") {
                ok += 1;
            }
        }
        assert_eq!(
            ok,
            200,
            "{:?} {:?}",
            pstatus.snapshot(),
            relay.stats.snapshot()
        );
        let p = pstatus.wait_for(|s| s.completed == 200).await;
        assert_eq!((p.refused, p.failed, p.active), (0, 0, 0));
        let l = lstatus.wait_for(|s| s.active_streams == 0).await;
        assert_eq!(l.accepted, 200);
        relay.stats.wait_until(|s| s.bridged == 0).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn refusals_are_reported_with_status_and_reason() {
    timeout(LIMIT, async {
        let cert = certificate();
        let relay = start_relay(&cert, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;

        // No listener connected yet: 404.
        let (proxy, pstatus, _p) = spawn_proxy(proxy_config(relay.port, &cert, SEND_KEY, HC)).await;
        refused_client(proxy).await;
        let s = pstatus.wait_for(|s| s.refused == 1).await;
        let line = s.last_refusal.expect("refusal line");
        assert!(
            line.starts_with("127.0.0.1:") && line.contains(": 404 "),
            "{line}"
        );

        // Wrong key on the sender: 401.
        let (bad_proxy, bad_status, _b) =
            spawn_proxy(proxy_config(relay.port, &cert, "not-the-key", HC)).await;
        refused_client(bad_proxy).await;
        let line = bad_status
            .wait_for(|s| s.refused == 1)
            .await
            .last_refusal
            .expect("line");
        assert!(line.contains(": 401 "), "{line}");

        // Unknown hybrid connection: 404.
        let (ghost, ghost_status, _g) =
            spawn_proxy(proxy_config(relay.port, &cert, SEND_KEY, "no-such-hc")).await;
        refused_client(ghost).await;
        let line = ghost_status
            .wait_for(|s| s.refused == 1)
            .await
            .last_refusal
            .expect("line");
        assert!(line.contains(": 404 "), "{line}");

        // Listener with the wrong key: 401, one clear line in its status.
        let target = echo_target().await;
        let (wrong, w) = spawn_listener(listener_config(
            connection(relay.port, "listen", "wrong", HC),
            &cert,
            target,
        ));
        let err = wrong
            .wait_for(|s| s.last_error.is_some())
            .await
            .last_error
            .expect("error");
        assert!(err.starts_with("relay refused listener: 401 "), "{err}");
        w.cancel();

        // Send-only key used to listen: 403.
        let (send_only, so) = spawn_listener(listener_config(
            connection(relay.port, "send", SEND_KEY, HC),
            &cert,
            target,
        ));
        let err = send_only
            .wait_for(|s| s.last_error.is_some())
            .await
            .last_error
            .expect("error");
        assert!(err.starts_with("relay refused listener: 403 "), "{err}");
        so.cancel();

        // Expired fixed token: 401, with the hint that it cannot be renewed.
        let audience = audience_uri("127.0.0.1", HC);
        let expired =
            SasToken::sign(&audience, "listen", &Secret::new(LISTEN_KEY), 1_000).expect("sign");
        let cs: ConnectionString = format!(
            "Endpoint=sb://127.0.0.1:{}/;SharedAccessSignature={};EntityPath={HC}",
            relay.port,
            expired.expose()
        )
        .parse()
        .expect("cs");
        let (old, o) = spawn_listener(listener_config(cs, &cert, target));
        let err = old
            .wait_for(|s| s.last_error.is_some())
            .await
            .last_error
            .expect("error");
        assert!(
            err.contains("401") && err.contains("cannot be renewed"),
            "{err}"
        );
        o.cancel();

        // Target down: the listener rejects with 502 and the sender sees it.
        let down = dead_port().await;
        let (lstatus, _l) = spawn_listener(listener_config(
            connection(relay.port, "listen", LISTEN_KEY, HC),
            &cert,
            down,
        ));
        lstatus.wait_for(|s| s.connected).await;
        refused_client(proxy).await;
        let s = pstatus.wait_for(|s| s.refused == 2).await;
        let line = s.last_refusal.expect("line");
        assert!(
            line.contains(": 502 ") && line.contains("unreachable"),
            "{line}"
        );
        assert_eq!(lstatus.wait_for(|s| s.rejected == 1).await.accepted, 0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn listener_reconnects_after_a_relay_restart_on_the_same_port() {
    timeout(LIMIT, async {
        let cert = certificate();
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let relay = start_relay(&cert, first).await;
        let port = relay.port;
        let echo = echo_target().await;
        let (lstatus, _l) = spawn_listener(listener_config(
            connection(port, "listen", LISTEN_KEY, HC),
            &cert,
            echo,
        ));
        lstatus.wait_for(|s| s.connected).await;

        relay.shutdown.cancel();
        let _ = relay.task.await;
        lstatus.wait_for(|s| !s.connected).await;
        let again = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind same port");
        let relay = start_relay(&cert, again).await;
        let s = lstatus.wait_for(|s| s.connected && s.reconnects >= 1).await;
        assert!(s.connections >= 2);
        relay.stats.wait_for_listeners(HC, 1).await;

        let (proxy, _p, _ps) = spawn_proxy(proxy_config(port, &cert, SEND_KEY, HC)).await;
        assert_eq!(round_trip(proxy, b"after restart").await, b"after restart");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn control_channel_token_is_renewed_across_its_lifetime() {
    timeout(LIMIT, async {
        let cert = certificate();
        let relay = start_relay(&cert, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        let echo = echo_target().await;
        let mut config = listener_config(
            connection(relay.port, "listen", LISTEN_KEY, HC),
            &cert,
            echo,
        );
        // 3 s tokens are renewed every 1.5 s; after three renewals the first token has expired.
        config.access.token_ttl = Duration::from_secs(3);
        let (lstatus, _l) = spawn_listener(config);
        lstatus.wait_for(|s| s.connected).await;
        let s = lstatus.wait_for(|s| s.token_renewals >= 3).await;
        assert!(s.connected);
        assert_eq!(
            s.connections, 1,
            "the channel was re-opened instead of renewed"
        );
        let (proxy, _p, _ps) = spawn_proxy(proxy_config(relay.port, &cert, SEND_KEY, HC)).await;
        assert_eq!(round_trip(proxy, b"still here").await, b"still here");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn local_policy_denies_limits_and_serves_tls_clients() {
    timeout(LIMIT, async {
        let cert = certificate();
        let relay = start_relay(&cert, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        let echo = echo_target().await;
        let (lstatus, _l) = spawn_listener(listener_config(
            connection(relay.port, "listen", LISTEN_KEY, HC),
            &cert,
            echo,
        ));
        lstatus.wait_for(|s| s.connected).await;

        // Deny list.
        let mut denied = proxy_config(relay.port, &cert, SEND_KEY, HC);
        denied.access_list.deny =
            vec![local_proxy::access_list::parse_net("127.0.0.0/8").expect("net")];
        let (addr, status, _d) = spawn_proxy(denied).await;
        refused_client(addr).await;
        assert_eq!(status.wait_for(|s| s.denied == 1).await.accepted, 0);

        // Connection limit: the second client is closed while the first tunnel is open.
        let mut limited = proxy_config(relay.port, &cert, SEND_KEY, HC);
        limited.max_connections = 1;
        let (addr, status, _m) = spawn_proxy(limited).await;
        let mut first = TcpStream::connect(addr).await.expect("first");
        first.write_all(b"ping").await.expect("write");
        let mut echo_buf = [0u8; 4];
        first.read_exact(&mut echo_buf).await.expect("echo");
        refused_client(addr).await;
        assert_eq!(status.wait_for(|s| s.over_limit == 1).await.active, 1);
        drop(first);

        // TLS towards local clients.
        let local_cert = relay_server::tls::self_signed(&["localhost"]).expect("cert");
        let dir = tempfile::tempdir().expect("dir");
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, &local_cert.cert_pem).expect("cert");
        std::fs::write(&key_path, local_cert.key_pem.expose()).expect("key");
        let mut tls = proxy_config(relay.port, &cert, SEND_KEY, HC);
        tls.local_tls = Some(local_proxy::local_tls::LocalTls {
            cert: cert_path,
            key: key_path,
        });
        let (addr, _s, _t) = spawn_proxy(tls).await;
        let trust = TrustConfig {
            pins: vec![
                local_cert
                    .sha256_fingerprint
                    .parse::<Fingerprint>()
                    .expect("fp"),
            ],
            ..TrustConfig::default()
        };
        let connector =
            tokio_rustls::TlsConnector::from(trust.client_config().expect("client config"));
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut stream = connector.connect(name, tcp).await.expect("tls");
        stream.write_all(b"over tls").await.expect("write");
        stream.shutdown().await.expect("close_notify");
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got).await;
        assert_eq!(got, b"over tls");
    })
    .await
    .expect("timed out");
}
