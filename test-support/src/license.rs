//! A license server on `127.0.0.1:0` with one simulated dongle whose AppSlot [`SLOT`] has a
//! given number of seats, and legacy-style clients of it ([`License::client`]: one TCP
//! connection per call, as MxNet2 does), for tests that count seats through the tunnel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use license_client::{ClientConfig, RemoteApi};
use license_core::SlotRef;
use license_core::clock::SharedWallClock;
use license_core::engine::StatusSnapshot;
use license_core::protocol::ServerIdentity;
use license_server::backends::simulated::SimulatedBackend;
use license_server::config::DongleSection;
use license_server::{LicenseServer, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::LIMIT;

/// The AppSlot whose seats the fixture counts.
pub const SLOT: u16 = 1;

/// The seat of [`SLOT`] on the first dongle.
pub fn seat() -> SlotRef {
    SlotRef::first_dongle(SLOT)
}

/// A server for `config`, not yet serving: a fresh key, the simulated dongles of its
/// `[dongleN]` sections (whatever its backend says) and `clock` as its wall clock.
pub fn simulated_server(config: &ServerConfig, clock: SharedWallClock) -> LicenseServer {
    LicenseServer::with_parts(
        config,
        ServerIdentity::generate().expect("key"),
        Arc::new(SimulatedBackend::new(&config.dongles)),
        clock,
    )
}

/// A running license server; stopped when dropped.
pub struct License {
    server: LicenseServer,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl License {
    /// A server whose AppSlot [`SLOT`] has `seats` seats, with the default settings otherwise.
    pub async fn start(seats: u32) -> Self {
        Self::start_with(ServerConfig {
            dongles: vec![DongleSection {
                number: 1,
                sernr: Some(1_234_567_890),
                limits: [(SLOT, seats)].into(),
                ..DongleSection::default()
            }],
            key_file: None,
            ..ServerConfig::default()
        })
        .await
    }

    /// A server for `config` (its bind address and port are ignored: it listens on
    /// `127.0.0.1:0`), started the way `dongle-relay server` starts it.
    pub async fn start_with(config: ServerConfig) -> Self {
        Self::serve(LicenseServer::new(&config).expect("server")).await
    }

    /// A server for `config` on `127.0.0.1:0` with a fresh key, the simulated dongles of its
    /// `[dongleN]` sections (whatever its backend says) and `clock` as its wall clock, so
    /// that clients sharing the clock, or paused test time, agree with it on time-stamps.
    pub async fn start_simulated(config: &ServerConfig, clock: SharedWallClock) -> Self {
        Self::serve(simulated_server(config, clock)).await
    }

    /// Serves `server` on `127.0.0.1:0` until stopped.
    async fn serve(server: LicenseServer) -> Self {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let server = server.clone();
            let shutdown = shutdown.clone();
            async move { server.serve(socket, shutdown).await.expect("serve") }
        });
        Self {
            server,
            addr,
            shutdown,
            task: Some(task),
        }
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server (snapshot, public key, PROXY header counters, admin actions).
    pub fn server(&self) -> &LicenseServer {
        &self.server
    }

    /// The server's state now.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.server.snapshot()
    }

    /// Seats of [`SLOT`] taken now.
    pub fn taken(&self) -> u32 {
        self.snapshot().slot(SLOT).map_or(u32::MAX, |s| s.taken)
    }

    /// Waits (at most 20 s) until the server's state satisfies `done`. Timeouts run on the
    /// server's real clock, and it signals nothing, so this polls its snapshot.
    pub async fn wait_until(&self, what: &str, mut done: impl FnMut(&StatusSnapshot) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if done(&self.snapshot()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client process called `name` talking to `addr` (the server or a proxy) from `local`
    /// when given, pinning this server's key.
    pub fn client(
        &self,
        addr: SocketAddr,
        name: &str,
        local: Option<std::net::IpAddr>,
    ) -> RemoteApi {
        let mut c = ClientConfig::for_server(addr.ip().to_string(), addr.port());
        c.client_name = name.to_owned();
        c.pinned_key = Some(self.server.public_key());
        c.io_timeout = Duration::from_secs(15);
        c.local_addr = local;
        RemoteApi::new(c)
    }

    /// How long after `since` a call through `proxy` first succeeds (an init then a release;
    /// polled every 20 ms, at most 20 s): the recovery time after an outage.
    pub async fn first_success_after(
        &self,
        proxy: SocketAddr,
        since: tokio::time::Instant,
    ) -> Duration {
        let api = self.client(proxy, "recovering", None);
        let deadline = since + Duration::from_secs(20);
        loop {
            if api.init().await.is_ok() {
                let took = since.elapsed();
                assert!(api.release().await.is_ok());
                return took;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no call succeeded within 20 s"
            );
            api.reset().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A license program `name` calling through `proxy` in a loop until `until`: init once,
    /// then login and logout, one connection per call (as MxNet2 does). A call that fails is
    /// recorded and the program carries on with the same session, as MxNet2 programs do
    /// (rReset instead would forget the session without telling the server, so a seat taken
    /// by a login whose answer was lost stays taken until the login timeout). Releases the
    /// session at the end; returns the calls that failed.
    pub async fn call_loop(
        &self,
        proxy: SocketAddr,
        name: &str,
        until: tokio::time::Instant,
    ) -> Vec<FailedCall> {
        let client = self.client(proxy, name, None);
        let mut failed = Vec::new();
        while tokio::time::Instant::now() < until {
            let started = tokio::time::Instant::now();
            let ok = (client.session_id().await.is_some() || client.init().await.is_ok())
                && client.login(seat()).await.is_ok()
                && client.logout(seat()).await.is_ok();
            if !ok {
                failed.push(FailedCall {
                    started,
                    took: started.elapsed(),
                });
            }
        }
        let _ = client.release().await;
        failed
    }

    /// Stops the server and waits for it (at most [`LIMIT`]).
    pub async fn stop(self) {
        self.stop_within(LIMIT).await;
    }

    /// Stops the server and waits for it, at most `limit`.
    pub async fn stop_within(mut self, limit: Duration) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(limit, task)
                .await
                .expect("server stops")
                .expect("server task");
        }
    }
}

/// A call of [`License::call_loop`] that failed: when it started and how long it took to fail.
#[derive(Debug, Clone, Copy)]
pub struct FailedCall {
    /// When the call started.
    pub started: tokio::time::Instant,
    /// How long until it failed.
    pub took: Duration,
}

impl Drop for License {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
