//! The pump over an in-process WebSocket pair (`tokio::io::duplex` + tokio-tungstenite
//! handshakes): integrity, half-close under `dongle-relay.v1`, close propagation in raw mode,
//! text frames, backpressure, idle and keep-alive timeouts, abort.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hc_client::pump::{ByteMeter, PumpConfig, PumpEnd, PumpReport, pump};
use hc_client::subprotocol::Framing;
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream, duplex};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<DuplexStream>;

/// A connected client/server WebSocket pair over an in-memory pipe of `capacity` bytes.
async fn ws_pair(capacity: usize) -> (Ws, Ws) {
    let (a, b) = duplex(capacity);
    let client = async {
        tokio_tungstenite::client_async("ws://localhost/$hc/test", a)
            .await
            .expect("client handshake")
            .0
    };
    let server = async {
        tokio_tungstenite::accept_async(b)
            .await
            .expect("server handshake")
    };
    tokio::join!(client, server)
}

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// Runs the pump between `local` and `ws` in a task of its own, counting into `meter`, until it
/// ends or `abort` is cancelled.
fn spawn_pump(
    local: DuplexStream,
    ws: Ws,
    framing: Framing,
    config: PumpConfig,
    meter: Arc<ByteMeter>,
    abort: CancellationToken,
) -> JoinHandle<PumpReport> {
    tokio::spawn(async move { pump(local, ws, framing, &config, &meter, &abort).await })
}

/// app A ⇄ pump A ⇄ WebSocket ⇄ pump B ⇄ app B; returns the two app ends and the pump tasks.
async fn tunnel(
    framing: Framing,
    config: PumpConfig,
) -> (
    DuplexStream,
    DuplexStream,
    JoinHandle<PumpReport>,
    JoinHandle<PumpReport>,
) {
    let (ws_a, ws_b) = ws_pair(256 * 1024).await;
    let (app_a, local_a) = duplex(128 * 1024);
    let (app_b, local_b) = duplex(128 * 1024);
    let never = CancellationToken::new();
    let pump_a = spawn_pump(
        local_a,
        ws_a,
        framing,
        config.clone(),
        Arc::default(),
        never.clone(),
    );
    let pump_b = spawn_pump(local_b, ws_b, framing, config, Arc::default(), never);
    (app_a, app_b, pump_a, pump_b)
}

/// Waits for both pumps of a [`tunnel`], checks that both ended normally and returns their
/// reports (A's first).
async fn ended_normally(
    pump_a: JoinHandle<PumpReport>,
    pump_b: JoinHandle<PumpReport>,
) -> (PumpReport, PumpReport) {
    let (a, b) = (pump_a.await.expect("pump a"), pump_b.await.expect("pump b"));
    assert!(a.end.is_normal(), "{:?}", a.end);
    assert!(b.end.is_normal(), "{:?}", b.end);
    (a, b)
}

/// One pump between a local pipe and a WebSocket whose other end the test plays. Tests keep
/// `app` and `peer` until they mean to close them: dropping either ends the pump's input.
struct Solo {
    /// The local application's end of the pipe.
    app: DuplexStream,
    /// The WebSocket peer.
    peer: Ws,
    task: JoinHandle<PumpReport>,
    meter: Arc<ByteMeter>,
    abort: CancellationToken,
}

/// Starts a [`Solo`] pump with `framing` and `config` over 64 KiB pipes.
async fn solo(framing: Framing, config: PumpConfig) -> Solo {
    let (ws, peer) = ws_pair(64 * 1024).await;
    let (app, local) = duplex(64 * 1024);
    let meter = Arc::new(ByteMeter::default());
    let abort = CancellationToken::new();
    let task = spawn_pump(local, ws, framing, config, meter.clone(), abort.clone());
    Solo {
        app,
        peer,
        task,
        meter,
        abort,
    }
}

#[tokio::test]
async fn moves_mebibytes_both_ways_intact() {
    timeout(LIMIT, async {
        let (app_a, app_b, pump_a, pump_b) =
            tunnel(Framing::HalfClose, PumpConfig::default()).await;
        let a_data = random(3 * 1024 * 1024 + 17);
        let b_data = random(2 * 1024 * 1024 + 5);
        let side = |app: DuplexStream, out: Vec<u8>| async move {
            let (mut rd, mut wr) = tokio::io::split(app);
            let writer = async {
                wr.write_all(&out).await.expect("write");
                wr.shutdown().await.expect("shutdown");
            };
            let reader = async {
                let mut got = Vec::new();
                rd.read_to_end(&mut got).await.expect("read");
                got
            };
            tokio::join!(writer, reader).1
        };
        let (got_at_a, got_at_b) =
            tokio::join!(side(app_a, a_data.clone()), side(app_b, b_data.clone()));
        assert!(got_at_b == a_data, "A→B bytes differ");
        assert!(got_at_a == b_data, "B→A bytes differ");
        let (report_a, report_b) = ended_normally(pump_a, pump_b).await;
        assert_eq!(report_a.sent, a_data.len() as u64);
        assert_eq!(report_a.received, b_data.len() as u64);
        assert_eq!(report_b.sent, b_data.len() as u64);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn half_close_lets_the_other_direction_continue() {
    timeout(LIMIT, async {
        let (app_a, app_b, pump_a, pump_b) =
            tunnel(Framing::HalfClose, PumpConfig::default()).await;
        let (mut a_rd, mut a_wr) = tokio::io::split(app_a);
        let (mut b_rd, mut b_wr) = tokio::io::split(app_b);
        // A sends its request and finishes writing.
        a_wr.write_all(b"request").await.expect("write");
        a_wr.shutdown().await.expect("shutdown");
        // B sees the request and then EOF, while its own direction is still open.
        let mut request = Vec::new();
        b_rd.read_to_end(&mut request).await.expect("read to eof");
        assert_eq!(request, b"request");
        // B answers after seeing EOF: the half-closed tunnel still carries it to A.
        let response = random(1024 * 1024);
        // A has not seen EOF yet: B's direction is still open.
        let mut first = vec![0u8; response.len()];
        let (written, read) = tokio::join!(b_wr.write_all(&response), a_rd.read_exact(&mut first));
        written.expect("respond");
        read.expect("response");
        assert!(first == response);
        b_wr.shutdown().await.expect("b shutdown");
        let mut rest = Vec::new();
        a_rd.read_to_end(&mut rest).await.expect("eof at a");
        assert!(rest.is_empty());
        ended_normally(pump_a, pump_b).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn raw_framing_turns_local_eof_into_close() {
    timeout(LIMIT, async {
        let (app_a, app_b, pump_a, pump_b) = tunnel(Framing::Raw, PumpConfig::default()).await;
        let (_a_rd, mut a_wr) = tokio::io::split(app_a);
        a_wr.write_all(b"last words").await.expect("write");
        a_wr.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        let mut b = app_b;
        b.read_to_end(&mut got).await.expect("eof at b");
        assert_eq!(got, b"last words");
        ended_normally(pump_a, pump_b).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn raw_peer_close_and_text_frames_reach_the_local_side() {
    timeout(LIMIT, async {
        let mut s = solo(Framing::Raw, PumpConfig::default()).await;
        s.peer.send(Message::text("hello ")).await.expect("text");
        s.peer
            .send(Message::binary(&b"world"[..]))
            .await
            .expect("binary");
        s.peer.close(None).await.expect("close");
        let mut got = Vec::new();
        s.app.read_to_end(&mut got).await.expect("eof");
        assert_eq!(got, b"hello world");
        let report = s.task.await.expect("pump");
        assert!(report.end.is_normal(), "{:?}", report.end);
        assert_eq!(report.received, 11);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn abnormal_close_is_reported_with_its_code() {
    timeout(LIMIT, async {
        let mut s = solo(Framing::HalfClose, PumpConfig::default()).await;
        s.peer
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Policy,
                reason: "token expired".into(),
            }))
            .await
            .expect("close");
        match s.task.await.expect("pump").end {
            PumpEnd::PeerClosed { code, reason } => {
                assert_eq!(code, Some(1008));
                assert_eq!(reason, "token expired");
            }
            other => panic!("unexpected {other:?}"),
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test(start_paused = true)]
async fn backpressure_bounds_what_is_read_from_the_local_side() {
    // The peer never reads: the pump must stop reading locally once its buffers are full
    // instead of queueing everything the local client writes.
    let s = solo(Framing::HalfClose, PumpConfig::default()).await;
    let (_rd, mut wr) = tokio::io::split(s.app);
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0usize;
    for _ in 0..1024 {
        match timeout(Duration::from_secs(5), wr.write_all(&chunk)).await {
            Ok(r) => {
                r.expect("write");
                written += chunk.len();
            }
            Err(_) => break,
        }
    }
    // 64 MiB offered; accepted = local pipe + one read buffer + bounded WebSocket buffers +
    // the WebSocket pipe, far below that.
    assert!(
        written < 1024 * 1024,
        "local side wrote {written} bytes without backpressure"
    );
    assert!(
        s.meter.to_relay() < 1024 * 1024,
        "pump sent {}",
        s.meter.to_relay()
    );
    assert!(s.meter.to_relay() > 0, "pump moved nothing");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_with_a_reason() {
    let config = PumpConfig {
        idle_timeout: Some(Duration::from_secs(30)),
        ..PumpConfig::default()
    };
    let mut s = solo(Framing::HalfClose, config).await;
    let start = tokio::time::Instant::now();
    let frame = match s.peer.next().await {
        Some(Ok(Message::Close(frame))) => frame.expect("close frame"),
        other => panic!("expected close, got {other:?}"),
    };
    assert_eq!(frame.reason.as_str(), "idle timeout");
    assert!(start.elapsed() >= Duration::from_secs(30));
    drop(s.peer);
    assert!(matches!(
        s.task.await.expect("pump").end,
        PumpEnd::IdleTimeout
    ));
}

#[tokio::test(start_paused = true)]
async fn pings_flow_and_a_silent_peer_is_declared_dead() {
    let config = PumpConfig {
        ping_interval: Some(Duration::from_secs(10)),
        close_timeout: Duration::from_secs(1),
        ..PumpConfig::default()
    };
    let s = solo(Framing::HalfClose, config).await;
    // The peer is never polled, so it answers no ping.
    let report = s.task.await.expect("pump");
    assert!(
        matches!(report.end, PumpEnd::KeepAliveTimeout),
        "{:?}",
        report.end
    );
    drop(s.peer);
}

#[tokio::test(start_paused = true)]
async fn answered_pings_keep_the_tunnel_up() {
    let config = PumpConfig {
        ping_interval: Some(Duration::from_secs(10)),
        ..PumpConfig::default()
    };
    let mut s = solo(Framing::HalfClose, config).await;
    // Reading answers pings; ten pings (100 s, beyond three intervals) keep it alive.
    for _ in 0..10 {
        match s.peer.next().await {
            Some(Ok(Message::Ping(_))) => {}
            other => panic!("expected ping, got {other:?}"),
        }
    }
    s.abort.cancel();
    match s.peer.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    drop(s.peer);
    assert!(matches!(s.task.await.expect("pump").end, PumpEnd::Aborted));
}
