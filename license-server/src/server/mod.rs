//! The license server (tokio): accepts TCP connections, learns the real client from a PROXY v2
//! header sent by a trusted relay-listener ([`proxy_header`]), serves the engine over the wire
//! protocol (one request per connection, as section 6.4's legacy clients do, or many on a
//! persistent connection), sweeps timeouts periodically (and beats the engine's heartbeat), polls the dongle backend, restores and persists seats ([`persist`],
//! `StateDb=`), counts what it answers for the metrics, and shuts down gracefully (stops
//! accepting, lets calls in flight finish, writes what is queued; persisted seats stay).
//! Connections are admitted fairly per client address and closed when idle ([`admission`]); a
//! call that changed state is answered once its change is on disk.

pub mod admission;
mod connection;
mod dispatch;
mod history;
mod persist;
mod poller;
pub mod proxy_header;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ops_http::accept::accept_until;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

pub use admission::{
    DEFAULT_CONNECTION_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    bind_listener, listen_backlog,
};
pub use connection::Peer;
pub use proxy_header::{PP2_TYPE_SITE, ProxyHeaderStats};

use crate::backends::none::NoDongles;
use crate::backends::simulated::SimulatedBackend;
use crate::backends::usb::UsbBackend;
use crate::config::{BackendChoice, DongleSection, ServerConfig, TrustedProxies};
use crate::metrics::{AdminAction, Counters};
use crate::store::{PersistedLogin, StateStore, StoreError, StoreStatus};
use license_core::clock::{Instant, SharedWallClock, SystemClock};
use license_core::dongle::{DongleBackend, describe};
use license_core::engine::{Engine, SeatObserver, SessionId, StatusSnapshot};
use license_core::error::ErrorCode;
use license_core::protocol::ServerPublicKey;
use license_core::protocol::crypto::{IdentityError, ServerIdentity};

/// How often timed-out sessions and logins are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for connections to finish their call.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A heartbeat older than this means the engine stalled ([`LicenseServer::is_live`]'s usual
/// limit: ten sweeps missed), as for every component.
pub use ops_http::heartbeat::LIVENESS_MAX_AGE;
/// How long shutdown waits for queued state changes to be written.
const STORE_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The identity key file cannot be used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// State shared by the server's tasks.
pub(crate) struct Shared {
    pub(crate) engine: Mutex<Engine>,
    pub(crate) identity: ServerIdentity,
    pub(crate) wall: SharedWallClock,
    /// `Some(interval)` when `CheckCmdIssueTime=1`.
    pub(crate) time_window: Option<Duration>,
    /// `ConnectionIdleTimeOut`: a connection without a complete request for this long closes.
    pub(crate) idle_timeout: Duration,
    /// The open connections, per client address.
    pub(crate) connections: admission::ConnectionTable,
    pub(crate) backend: Arc<dyn DongleBackend>,
    pub(crate) sections: Vec<DongleSection>,
    /// Peers whose PROXY headers are believed.
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) proxy_counters: proxy_header::Counters,
    /// Answers, errors, connections and admin actions, for the metrics.
    pub(crate) counters: Counters,
    /// Beaten by the periodic sweep after it took the engine's lock and removed what timed
    /// out, so a stalled accept loop or a stuck engine lock both stop the beats and a service
    /// manager's watchdog restarts the server (MxNet2's failure-protection service, manual
    /// section 5).
    pub(crate) heartbeat: ops_http::Heartbeat,
    /// The state database, when `StateDb=` is set and usable.
    pub(crate) store: Option<StateStore>,
    /// Why `StateDb=` is set but not in use.
    pub(crate) store_error: Option<StoreError>,
    /// Persisted logins waiting for their dongle's first scan (USB).
    pub(crate) pending_logins: Mutex<Option<Vec<PersistedLogin>>>,
    /// The address `serve` listens on.
    pub(crate) listening: OnceLock<SocketAddr>,
    /// When the server was created (Unix ms).
    pub(crate) started_ms: u64,
}

/// A license server and the handle to its state (cheap to clone).
#[derive(Clone)]
pub struct LicenseServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LicenseServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseServer")
            .field("identity", &self.shared.identity)
            .finish_non_exhaustive()
    }
}

impl LicenseServer {
    /// A server for `config`: its identity comes from `KeyFile` (created if absent) or is
    /// generated, its dongles from the configured backend, time-stamps are checked against the
    /// system clock. With `StateDb=`, persisted sessions and logins are restored (see
    /// [`crate::store`]); a database that cannot be used is reported, not fatal.
    ///
    /// # Errors
    /// The key file cannot be read or created.
    pub fn new(config: &ServerConfig) -> Result<Self, ServerError> {
        let identity = match &config.key_file {
            Some(path) => ServerIdentity::load_or_create(path)?,
            None => ServerIdentity::generate()?,
        };
        let backend: Arc<dyn DongleBackend> = match config.backend {
            BackendChoice::Simulated => Arc::new(SimulatedBackend::new(&config.dongles)),
            BackendChoice::Usb => Arc::new(UsbBackend::new()),
            BackendChoice::None => Arc::new(NoDongles),
        };
        Ok(Self::with_parts(
            config,
            identity,
            backend,
            Arc::new(SystemClock),
        ))
    }

    /// A server from explicit parts (tests inject a wall clock, a backend, an identity).
    pub fn with_parts(
        config: &ServerConfig,
        identity: ServerIdentity,
        backend: Arc<dyn DongleBackend>,
        wall: SharedWallClock,
    ) -> Self {
        let mut engine = Engine::new(config.engine_settings());
        // Backends without hotplug are read once here; the others are polled by `serve`.
        let dynamic = backend.capabilities().hotplug;
        if !dynamic && let Ok(found) = backend.scan() {
            for change in engine.update_dongles(describe(&found, &config.dongles)) {
                tracing::info!("dongle: {change:?}");
            }
        }
        let started_ms = wall.unix_millis();
        let restored = config.state_db.as_deref().map(|path| {
            let retention = config.retention();
            persist::attach(path, retention, &mut engine, started_ms, dynamic)
        });
        let (store, store_error, pending) = match restored {
            None => (None, None, None),
            Some(Ok((store, pending))) => (Some(store), None, pending),
            Some(Err(e)) => {
                tracing::error!("{e}");
                (None, Some(e), None)
            }
        };
        if let Some(store) = &store {
            engine.set_observer(Box::new(history::Recorder {
                store: store.clone(),
                wall: wall.clone(),
                next: None,
            }));
        }
        let shared = Shared {
            engine: Mutex::new(engine),
            identity,
            wall,
            time_window: config
                .check_cmd_issue_time
                .then_some(config.cmd_issue_time_interval),
            idle_timeout: config.connection_idle_timeout,
            connections: admission::ConnectionTable::new(
                config.max_connections,
                config.max_connections_per_address,
            ),
            backend,
            sections: config.dongles.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            proxy_counters: proxy_header::Counters::default(),
            counters: Counters::default(),
            heartbeat: ops_http::Heartbeat::default(),
            store,
            store_error,
            pending_logins: Mutex::new(pending),
            listening: OnceLock::new(),
            started_ms,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The server's public key (what clients pin).
    pub fn public_key(&self) -> ServerPublicKey {
        self.shared.identity.public_key()
    }

    /// The status snapshot.
    pub fn snapshot(&self) -> StatusSnapshot {
        let wall = self.shared.wall.unix_millis();
        self.shared.engine().snapshot(Instant::now(), wall)
    }

    /// How many PROXY headers were accepted and refused since the server started.
    pub fn proxy_header_stats(&self) -> ProxyHeaderStats {
        self.shared.proxy_counters.stats()
    }

    /// The peers whose PROXY headers this server believes (`TrustedProxy=`).
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.shared.trusted_proxies
    }

    /// Administrator action: ends a session and its logins, at once (the seats are free for
    /// the next login; the session's next call answers -105).
    ///
    /// # Errors
    /// -105 for an unknown session.
    pub fn disconnect_session(&self, id: SessionId) -> Result<(), ErrorCode> {
        self.shared.engine().disconnect_session(id)?;
        self.shared.counters.admin(AdminAction::Disconnect);
        Ok(())
    }

    /// Administrator action: removes one login, at once (its seat is freed if it was the
    /// identity's last record).
    ///
    /// # Errors
    /// -11 when there is no such login.
    pub fn logout_login(
        &self,
        id: SessionId,
        dongle_key: &str,
        slot: u16,
    ) -> Result<(), ErrorCode> {
        self.shared.engine().logout_login(id, dongle_key, slot)?;
        self.shared.counters.admin(AdminAction::Logout);
        Ok(())
    }

    /// How long ago the engine's periodic sweep last ran; `None` before `serve` started.
    pub fn heartbeat_age(&self) -> Option<Duration> {
        self.shared.heartbeat.age()
    }

    /// The engine's liveness, for a service manager's watchdog: `serve` is running and its
    /// periodic sweep (every [`SWEEP_INTERVAL`], under the engine's lock) ran within `max_age`
    /// ([`LIVENESS_MAX_AGE`] is a good value). False before `serve` starts, and when the
    /// accept loop or the engine's lock is stuck.
    pub fn is_live(&self, max_age: Duration) -> bool {
        self.heartbeat_age().is_some_and(|age| age <= max_age)
    }

    /// The state database's status; `None` when `StateDb=` is not set or not usable.
    pub fn store_status(&self) -> Option<StoreStatus> {
        self.shared.store.as_ref().map(StateStore::status)
    }

    /// Why `StateDb=` is set but not in use.
    pub fn store_error(&self) -> Option<&StoreError> {
        self.shared.store_error.as_ref()
    }

    /// Waits until queued state changes are written (at most `limit`); true when there is no
    /// database.
    pub fn flush_store(&self, limit: Duration) -> bool {
        self.shared.store.as_ref().is_none_or(|s| s.flush(limit))
    }

    /// The address `serve` listens on, once it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.listening.get().copied()
    }

    /// When the server was created (Unix ms).
    pub fn started_ms(&self) -> u64 {
        self.shared.started_ms
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Reports seat changes to `observer` (as well as to the usage history, when there is a
    /// state database).
    pub fn set_observer(&self, observer: Box<dyn SeatObserver>) {
        let observer = match &self.shared.store {
            Some(store) => Box::new(history::Recorder {
                store: store.clone(),
                wall: self.shared.wall.clone(),
                next: Some(observer),
            }),
            None => observer,
        };
        self.shared.engine().set_observer(observer);
    }

    /// The state database, when `StateDb=` is set and usable (usage reports read it).
    pub fn store(&self) -> Option<&StateStore> {
        self.shared.store.as_ref()
    }

    /// The server's wall clock now (Unix ms).
    pub fn wall_millis(&self) -> u64 {
        self.shared.wall.unix_millis()
    }

    /// Runs `f` with the engine locked (for embedding and tests).
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        f(&mut self.shared.engine())
    }

    /// Serves one connection until the peer closes it, it idles out, a fatal framing error
    /// occurs, or `shutdown` is cancelled (a call in progress is finished first). `peer` is the
    /// client's address and site: the TCP peer, or what a PROXY header in front reported.
    pub async fn serve_connection<S>(&self, stream: S, peer: Peer, shutdown: CancellationToken)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        connection::serve(&self.shared, stream, peer, shutdown).await;
    }

    /// Serves one accepted TCP connection: a PROXY v2 header in front of it (peeked, so a
    /// client that sends none loses nothing) names the client and site when the peer is in
    /// `TrustedProxy=`; a header from any other peer, or a malformed one, closes the
    /// connection with one warning and nothing served. The connection takes a place in the
    /// connection table under its client's address (for a trusted proxy: the address its
    /// header names), or is closed at once when that address has no room.
    pub async fn serve_tcp(&self, mut stream: TcpStream, shutdown: CancellationToken) {
        let Ok(tcp_peer) = stream.peer_addr() else {
            return;
        };
        let shared = &self.shared;
        // A peer that may announce another client is counted under the client it announces.
        let early = if shared.trusted_proxies.contains(tcp_peer.ip()) {
            None
        } else {
            let Some(admitted) = self.admit(tcp_peer.ip(), &shutdown) else {
                return;
            };
            Some(admitted)
        };
        let token = early.as_ref().map_or(&shutdown, |a| &a.token).clone();
        let identified = proxy_header::identify(
            &mut stream,
            tcp_peer,
            &shared.trusted_proxies,
            &shared.proxy_counters,
            shared.idle_timeout,
            &token,
        )
        .await;
        let peer = match identified {
            Ok(Some(peer)) => peer,
            Ok(None) => return,
            Err(refusal) => {
                tracing::warn!("{refusal}; connection closed");
                return;
            }
        };
        let admitted = match early {
            Some(admitted) => admitted,
            None => match self.admit(peer.addr.ip(), &shutdown) {
                Some(admitted) => admitted,
                None => return,
            },
        };
        let token = admitted.token.clone();
        if peer.addr == tcp_peer && peer.site.is_none() {
            self.serve_connection(stream, peer, token).await;
        } else {
            let site = peer.site.as_deref().unwrap_or("-");
            tracing::debug!(client = %peer.addr, site, via = %tcp_peer, "PROXY header accepted");
            let span = tracing::debug_span!("client", addr = %peer.addr, site);
            self.serve_connection(stream, peer, token)
                .instrument(span)
                .await;
        }
        drop(admitted);
    }

    /// A place in the connection table for a client at `ip`, or `None` (logged at debug
    /// level: a flood would otherwise flood the log too).
    fn admit(&self, ip: IpAddr, shutdown: &CancellationToken) -> Option<admission::Admitted<'_>> {
        match self.shared.connections.admit(ip, shutdown) {
            Ok(admitted) => Some(admitted),
            Err(why) => {
                self.shared.counters.connection_refused();
                tracing::debug!(client = %ip, "connection closed at once: {why}");
                None
            }
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.open()
    }

    /// Accepts connections on `listener` until `shutdown` is cancelled, then waits up to
    /// [`SHUTDOWN_GRACE`] for open connections to finish their call.
    ///
    /// # Errors
    /// None today; the signature leaves room for fatal listener errors.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        if let Ok(addr) = listener.local_addr() {
            let _ = self.shared.listening.set(addr);
        }
        let local = listener
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string());
        tracing::info!(addr = %local, key = %self.public_key(),
            backend = %self.shared.backend.kind(),
            trusted_proxies = %self.shared.trusted_proxies, "license server listening");
        let tracker = TaskTracker::new();
        if self.shared.backend.capabilities().hotplug {
            tracker.spawn(poller::run(self.shared.clone(), shutdown.clone()));
        }
        // Live from the start: the loop's first tick sweeps (and beats) before it accepts.
        // Accepting never waits for a free place: the connection table decides per address
        // (a full backlog would lock everyone out, the flood's sockets and the good ones alike).
        let sweep = || self.sweep();
        let serve = |stream: tokio::net::TcpStream, addr| {
            self.shared.counters.connection();
            // Calls are small request/answer exchanges: do not let Nagle delay them.
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let token = shutdown.clone();
            let span = tracing::debug_span!("conn", peer = %addr);
            tracker.spawn(async move { server.serve_tcp(stream, token).await }.instrument(span));
        };
        accept_until(
            &listener,
            "license server",
            &shutdown,
            SWEEP_INTERVAL,
            sweep,
            serve,
        )
        .await;
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: connections still open after {SHUTDOWN_GRACE:?}");
        }
        // Seats stay persisted; only what is still queued needs writing.
        if let Some(store) = self.shared.store.clone() {
            let flushed = tokio::task::spawn_blocking(move || store.flush(STORE_FLUSH_LIMIT)).await;
            if !matches!(flushed, Ok(true)) {
                tracing::warn!("shutdown: state changes still queued after {STORE_FLUSH_LIMIT:?}");
            }
        }
        tracing::info!("license server stopped");
        Ok(())
    }

    /// The periodic sweep, then the heartbeat: the beat proves the loop runs and the engine's
    /// lock can be taken.
    fn sweep(&self) {
        self.shared.engine().sweep(Instant::now());
        self.shared.heartbeat.beat();
    }
}

impl Shared {
    /// The engine, locked. A panic while holding the lock cannot leave seats half-updated
    /// in a way later calls would mis-count, so a poisoned lock is taken over.
    pub(crate) fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs the license server for `config` on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// The key file cannot be read or created.
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    for warning in &config.warnings {
        tracing::warn!("configuration: {warning}");
    }
    LicenseServer::new(&config)?.serve(listener, shutdown).await
}

/// The address a server binds for `config`.
pub fn bind_addr(config: &ServerConfig) -> SocketAddr {
    SocketAddr::new(config.bind, config.port)
}
