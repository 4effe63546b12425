//! License-engine benchmark: login-refresh operations per second, in-process on the engine
//! and over real TCP on loopback (persistent connections) with 1 and 64 concurrent clients;
//! then seat changes (a login that takes a seat, a logout that frees it) per second with a
//! state database (`StateDb=`, in a temporary folder; refreshes with it too: they must write
//! nothing, usage history included), with 1 and 64 clients: every one is
//! answered only once committed, so this measures group commit.
//! Run with `bash bench/license.sh` (release build). `--seconds N` sets each phase's length.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use license_client::{ClientConfig, RemoteApi};
use license_core::engine::{ClientInfo, SessionSecret};
use license_core::{Engine, SlotRef};
use license_server::LicenseServer;
use license_server::config::{DongleSection, ServerConfig};
use tokio_util::sync::CancellationToken;

const SLOT: u16 = 1;

fn config() -> ServerConfig {
    ServerConfig {
        dongles: vec![DongleSection {
            number: 1,
            sernr: Some(1_234_567_890),
            limits: [(SLOT, 1000)].into(),
            ..DongleSection::default()
        }],
        ..ServerConfig::default()
    }
}

fn engine_phase(sessions: usize, seconds: f64) -> f64 {
    let config = config();
    let server = LicenseServer::with_parts(
        &config,
        license_core::protocol::ServerIdentity::generate().expect("key"),
        Arc::new(license_server::backends::simulated::SimulatedBackend::new(
            &config.dongles,
        )),
        Arc::new(license_core::clock::SystemClock),
    );
    server.with_engine(|engine: &mut Engine| {
        let now = tokio::time::Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
        let ids: Vec<_> = (0..sessions)
            .map(|_| {
                let id = engine
                    .open_session(ClientInfo::at(addr), SessionSecret::new([7; 64]), 1, now)
                    .expect("session");
                engine
                    .login(id, SlotRef::first_dongle(SLOT), now)
                    .expect("login");
                id
            })
            .collect();
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            for _ in 0..1000 {
                let id = ids[(ops as usize) % ids.len()];
                let now = tokio::time::Instant::now();
                let left = engine
                    .login(id, SlotRef::first_dongle(SLOT), now)
                    .expect("refresh");
                std::hint::black_box(left);
                ops += 1;
            }
        }
        ops as f64 / start.elapsed().as_secs_f64()
    })
}

/// What each client does in a TCP phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Refresh its login (nothing durable changes).
    Refresh,
    /// The same with a state database (and so usage history) in use: refreshes must not
    /// write.
    RefreshWithDb,
    /// Log out and in again (two durable seat changes per round).
    SeatChanges,
}

async fn tcp_phase(clients: usize, seconds: f64, work: Work) -> f64 {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let dir = std::env::temp_dir().join(format!("refresh_bench-{}", std::process::id()));
    let mut config = config();
    let with_db = work != Work::Refresh;
    if with_db {
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let _ = std::fs::remove_file(dir.join("state.db"));
        let _ = std::fs::remove_file(dir.join("state.db-wal"));
        config.state_db = Some(dir.join("state.db"));
    }
    let server = LicenseServer::new(&config).expect("server");
    let serving = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(listener, shutdown).await }
    });
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut cfg = ClientConfig::for_server(addr.ip().to_string(), addr.port());
        cfg.persistent = true;
        let api = RemoteApi::new(cfg);
        api.init().await.expect("init");
        api.login(SlotRef::first_dongle(SLOT)).await.expect("login");
        let (total, stop) = (total.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            let at = SlotRef::first_dongle(SLOT);
            while !stop.load(Ordering::Relaxed) {
                match work {
                    Work::Refresh | Work::RefreshWithDb => {
                        api.refresh(at).await.expect("refresh");
                        n += 1;
                    }
                    Work::SeatChanges => {
                        api.logout(at).await.expect("logout");
                        api.login(at).await.expect("login");
                        n += 2;
                    }
                }
            }
            total.fetch_add(n, Ordering::Relaxed);
            let _ = api.release().await;
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        t.await.expect("client");
    }
    shutdown.cancel();
    serving.await.expect("server task").expect("server");
    if with_db {
        let _ = std::fs::remove_dir_all(&dir);
    }
    total.load(Ordering::Relaxed) as f64 / elapsed
}

fn main() {
    let mut seconds = 3.0;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        seconds = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(seconds);
    }
    println!(
        "license-core refresh benchmark ({seconds}s per phase, {} cpus)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for sessions in [1, 64] {
        let rate = engine_phase(sessions, seconds);
        println!("engine in-process, {sessions:>2} session(s): {rate:>12.0} refreshes/s");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for clients in [1, 64] {
        let rate = runtime.block_on(tcp_phase(clients, seconds, Work::Refresh));
        println!("tcp loopback,      {clients:>2} client(s):  {rate:>12.0} refreshes/s");
    }
    for clients in [1, 64] {
        let rate = runtime.block_on(tcp_phase(clients, seconds, Work::RefreshWithDb));
        println!("tcp + StateDb,     {clients:>2} client(s):  {rate:>12.0} refreshes/s");
    }
    for clients in [1, 64] {
        let rate = runtime.block_on(tcp_phase(clients, seconds, Work::SeatChanges));
        println!("tcp + StateDb,     {clients:>2} client(s):  {rate:>12.0} seat changes/s");
    }
}
