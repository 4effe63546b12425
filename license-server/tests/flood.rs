//! Floods from one client address over real TCP, with the default limits: 10,000 `Init`
//! frames, or 2,000 idle sockets, from 127.0.0.2; meanwhile a good client at 127.0.0.1 still
//! takes and returns a seat within 1 s. 127.0.0.2 stands for a host on the branch LAN: the
//! servers here trust PROXY headers from 127.0.0.1 only (by default all of 127.0.0.0/8 is
//! trusted, where the relay-listener runs, and no LAN host can connect from there). Also: a connection that never sends is closed at the
//! idle deadline (paused time), and a full connection table makes room from the largest holder.
//!
//! Not compiled for Windows: these are load figures measured on Linux, and Windows CI runs under
//! Wine, whose socket emulation slows down with thousands of sockets (docs/windows.md).
#![cfg(not(windows))]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use common::{LIMIT, Running, SLOT, at, config, start};
use license_core::protocol::frame::Frame;
use license_server::server::DEFAULT_CONNECTION_IDLE_TIMEOUT;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// The attacker's address (loopback too, so the test needs no network).
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Each flood test is bounded by this (a debug build signs every Init answer).
const FLOOD_LIMIT: Duration = Duration::from_secs(240);
/// How quickly the good client must get through.
const GOOD_LIMIT: Duration = Duration::from_secs(1);

/// The default configuration with three seats, trusting only 127.0.0.1's PROXY headers.
fn lan_config() -> license_server::ServerConfig {
    let mut cfg = config(3);
    cfg.trusted_proxies =
        license_server::config::TrustedProxies::parse_list("127.0.0.1").expect("trusted");
    cfg
}

async fn connect_from(local: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(local, 0)).expect("bind");
    tokio::time::timeout(LIMIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// The good client: init, login, logout, release, each answered correctly, within 1 s.
async fn good_client_takes_and_returns_a_seat(run: &Running) {
    let mut cfg = run.client_config();
    cfg.local_addr = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let api = license_client::RemoteApi::new(cfg);
    let started = std::time::Instant::now();
    let calls = async {
        api.init().await.expect("init");
        let left = api.login(at(SLOT)).await.expect("a seat");
        assert_eq!(api.logout(at(SLOT)).await, Ok(left + 1), "the seat is back");
        api.release().await.expect("release");
    };
    tokio::time::timeout(GOOD_LIMIT, calls)
        .await
        .expect("the good client is served within 1 s");
    eprintln!(
        "good client: init, login, logout, release in {:?}",
        started.elapsed()
    );
}

/// One Init frame's bytes (an attacker need not vary them).
fn init_frame(timestamp: u64) -> Vec<u8> {
    common::init_frame("flood", timestamp).1.to_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_inits_from_one_address_lock_nobody_out() {
    const FRAMES: usize = 10_000;
    let run = start(lan_config()).await;
    let test = async {
        let mut stream = connect_from(ATTACKER, run.addr).await;
        let flood_started = std::time::Instant::now();
        let frame = init_frame(run.clock.unix_millis());
        let (mut read, mut write) = stream.split();
        let send = async {
            for _ in 0..FRAMES {
                write.write_all(&frame).await.expect("send");
            }
        };
        // Read every answer; halfway through, the good client goes.
        let (half_tx, half_rx) = tokio::sync::oneshot::channel();
        let receive = async {
            let (mut buf, mut answers, mut ok) = (BytesMut::new(), 0, 0);
            let mut half = Some(half_tx);
            while answers < FRAMES {
                while let Some((answer, used)) = Frame::decode(&buf).expect("decodes") {
                    let _ = buf.split_to(used);
                    answers += 1;
                    ok += usize::from(common::value_of(&answer) == 0);
                }
                if answers >= FRAMES / 2
                    && let Some(tx) = half.take()
                {
                    let _ = tx.send(());
                }
                if answers < FRAMES {
                    let n = read.read_buf(&mut buf).await.expect("read");
                    assert!(n > 0, "the server closed the flood after {answers} answers");
                }
            }
            ok
        };
        let good = async {
            if half_rx.await.is_ok() {
                good_client_takes_and_returns_a_seat(&run).await;
            }
        };
        let ((), ok, ()) = tokio::join!(send, receive, good);
        assert_eq!(
            ok, FRAMES,
            "each Init is answered (by evicting the address's own)"
        );
        eprintln!(
            "{FRAMES} Init frames answered in {:?}",
            flood_started.elapsed()
        );
        let from_attacker = run
            .server
            .snapshot()
            .sessions
            .iter()
            .filter(|s| s.client_addr.ip() == ATTACKER)
            .count();
        assert_eq!(
            from_attacker,
            license_core::engine::DEFAULT_MAX_SESSIONS_PER_ADDRESS,
            "the address keeps its quota, no more"
        );
        good_client_takes_and_returns_a_seat(&run).await;
    };
    tokio::time::timeout(FLOOD_LIMIT, test)
        .await
        .expect("flood test in time");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_sockets_from_one_address_lock_nobody_out() {
    let run = start(lan_config()).await;
    let test = async {
        let mut idle = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            idle.push(connect_from(ATTACKER, run.addr).await);
        }
        // Only the flood is connected now: the table holds at most its address's share.
        assert!(
            run.server.open_connections()
                <= license_server::server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            "{} connections open",
            run.server.open_connections()
        );
        good_client_takes_and_returns_a_seat(&run).await;
        drop(idle);
    };
    tokio::time::timeout(FLOOD_LIMIT, test)
        .await
        .expect("idle test in time");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_table_makes_room_for_another_address() {
    let mut cfg = lan_config();
    cfg.max_connections = 64;
    cfg.max_connections_per_address = 64;
    let run = start(cfg).await;
    let test = async {
        let mut idle = Vec::new();
        for _ in 0..64 {
            idle.push(connect_from(ATTACKER, run.addr).await);
        }
        // The 64th is in the table once it was served: an answered call proves the order.
        let mut probe = common::Raw {
            stream: idle.pop().expect("one"),
            buf: BytesMut::new(),
        };
        probe.init(run.clock.unix_millis()).await;
        // Each of its calls (a connection each) takes the place of an idle socket.
        good_client_takes_and_returns_a_seat(&run).await;
        assert!(run.server.open_connections() <= 64);
        drop(idle);
    };
    tokio::time::timeout(FLOOD_LIMIT, test)
        .await
        .expect("table test in time");
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_is_closed_at_the_idle_deadline() {
    let run = start(config(3)).await;
    let mut silent = TcpStream::connect(run.addr).await.expect("connect");
    let opened = tokio::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(LIMIT * 10, silent.read(&mut byte))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = opened.elapsed();
    assert!(
        waited >= DEFAULT_CONNECTION_IDLE_TIMEOUT
            && waited < DEFAULT_CONNECTION_IDLE_TIMEOUT + Duration::from_secs(2),
        "closed after {waited:?}"
    );
    // A connection that stops sending after a call gets the same deadline from its answer.
    let mut raw = common::Raw::connect(run.addr).await;
    raw.init(run.clock.unix_millis()).await;
    let answered = tokio::time::Instant::now();
    let read = tokio::time::timeout(LIMIT * 10, raw.stream.read(&mut byte))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(answered.elapsed() >= DEFAULT_CONNECTION_IDLE_TIMEOUT);
    run.stop().await;
}
