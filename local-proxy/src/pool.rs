//! The pool of long-lived, multiplexed relay connections (`auto` and `mux` modes).
//!
//! Each of `pool_size` slots keeps one sender WebSocket open that offers
//! `dongle-relay.raw, dongle-relay.mux.v1`. When the listener picks `dongle-relay.mux.v1`, the
//! slot runs a yamux client on it (WebSocket pings keep it alive and detect a dead peer) and
//! tunnels open streams on the least busy slot. When the connection drops, the slot dials
//! again at once, then at most 1.5 s apart while the relay cannot be reached
//! (`hc_client::Reconnect`), with exponential back-off and full jitter after refusals.
//!
//! With several relay replicas (`hc_client::replicas`) slot `i` lives on replica `i mod n`, so
//! the pool is spread over them; when that replica cannot be reached the slot fails over to
//! the next, and after `pool_rehome` ([`REHOME_AFTER`]) there it stops taking streams, lets its open ones
//! finish and dials its own replica again (falling back again while that is still down), so a
//! replica that comes back takes its share without a restart. The same happens when the set
//! of replicas changes (a relay's name resolves to another set of addresses): a slot whose
//! replica is no longer `i mod n` moves there after `pool_rehome`, so a replica that is
//! added gets its share and one that is removed is left.
//!
//! When the listener answers `raw` or nothing it is a plain Hybrid Connections peer (a foreign
//! listener, or ours with multiplexing turned off): the slot closes that connection, the pool
//! is marked **1:1 only** — in `auto` mode tunnels then use one relay connection each, as
//! IPWorks' AzureRelayProxy does — and the slot probes again later (30 s, doubling up to
//! 10 min), so a listener upgraded in place is picked up without a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hc_client::access::AccessError;
use hc_client::dial::DialError;
use hc_client::mux::{self, MuxHandle, MuxMode};
use hc_client::subprotocol::{MUX_OFFER, is_mux};
use hc_client::ws_io::WsIo;
use hc_client::{Backoff, Reconnect, RelayAccess, RelayStream, Replicas};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ProxyConfig, TunnelMode};
use crate::status::ProxyStatus;

/// First and longest re-probe delay after a listener answered without multiplexing.
const PROBE_FIRST: Duration = Duration::from_secs(30);
const PROBE_MAX: Duration = Duration::from_secs(600);
/// How long a slot serves on another replica than its own before it tries its own again
/// (the default of `ProxyConfig::pool_rehome`).
pub const REHOME_AFTER: Duration = Duration::from_secs(10);

/// One open pooled connection.
#[derive(Debug)]
pub(crate) struct Pooled {
    handle: MuxHandle,
    streams: AtomicUsize,
}

/// Counts a stream on its pooled connection while it lives.
pub(crate) struct StreamGuard(Arc<Pooled>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pooled {
    /// Opens a stream, counted until the guard is dropped.
    pub(crate) async fn open(
        self: &Arc<Self>,
    ) -> Result<(mux::MuxStream, StreamGuard), mux::MuxError> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard(self.clone());
        let stream = self.handle.open().await?;
        Ok((stream, guard))
    }
}

/// The pool's slots and whether the listener multiplexes.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Vec<Mutex<Option<Arc<Pooled>>>>,
    /// How many slots are up; watched by tunnels waiting in `mux` mode.
    up: watch::Sender<usize>,
    /// The listener answered a pooled connection without multiplexing.
    single_only: watch::Sender<bool>,
}

impl Pool {
    /// Starts the slots' tasks on `tasks`; they stop when `stop` is cancelled.
    pub(crate) fn start(
        config: Arc<ProxyConfig>,
        relays: Arc<Replicas>,
        status: ProxyStatus,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let size = config.pool_size.max(1);
        let pool = Arc::new(Self {
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            up: watch::Sender::new(0),
            single_only: watch::Sender::new(false),
        });
        for index in 0..size {
            tasks.spawn(maintain(
                index,
                pool.clone(),
                config.clone(),
                relays.clone(),
                status.clone(),
                stop.clone(),
            ));
        }
        pool
    }

    /// The open pooled connection with the fewest streams.
    pub(crate) fn pick(&self) -> Option<Arc<Pooled>> {
        self.slots
            .iter()
            .filter_map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .filter(|p| !p.handle.is_closed())
            .min_by_key(|p| p.streams.load(Ordering::Relaxed))
    }

    /// Waits up to `limit` for a pooled connection.
    pub(crate) async fn wait_pick(&self, limit: Duration) -> Option<Arc<Pooled>> {
        let deadline = Instant::now() + limit;
        let mut up = self.up.subscribe();
        loop {
            if let Some(p) = self.pick() {
                return Some(p);
            }
            let changed = tokio::time::timeout_at(deadline, up.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return self.pick();
            }
        }
    }

    /// Whether the listener answered without multiplexing (auto mode then goes 1:1).
    pub(crate) fn single_only(&self) -> bool {
        *self.single_only.borrow()
    }

    /// Takes slot `index`'s connection out of use (no new streams) if it is still `conn`.
    fn retire(&self, index: usize, conn: &Arc<Pooled>) {
        let mut slot = self.slots[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
            drop(slot);
            self.up.send_modify(|n| *n = n.saturating_sub(1));
        }
    }

    fn publish(&self, index: usize, conn: Option<Arc<Pooled>>) {
        let up = conn.is_some();
        *self.slots[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = conn;
        self.up.send_modify(|n| {
            if up {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        });
    }
}

/// Keeps slot `index` connected until `stop`.
async fn maintain(
    index: usize,
    pool: Arc<Pool>,
    config: Arc<ProxyConfig>,
    relays: Arc<Replicas>,
    status: ProxyStatus,
    stop: CancellationToken,
) {
    let mut backoff = Reconnect::new(Duration::from_secs(30));
    let mut probe = Backoff::new(PROBE_FIRST, PROBE_MAX);
    let mut failures = 0u32;
    let headers = config.site_headers();
    while !stop.is_cancelled() {
        let id = uuid::Uuid::new_v4().to_string();
        let dial_started = tokio::time::Instant::now();
        let dialled = tokio::select! {
            _ = stop.cancelled() => break,
            r = connect_any(&relays, index, &id, &headers) => r,
        };
        let (access, dialled) = dialled;
        if dialled.is_ok() {
            status
                .relay_dial_latency()
                .observe(dial_started.elapsed().as_secs_f64());
        }
        let delay = match dialled {
            Ok(stream) if is_mux(stream.subprotocol.as_deref()) => {
                failures = 0;
                probe.reset();
                pool.single_only.send_replace(false);
                let started = Instant::now();
                let at = Slot {
                    index,
                    on: access.clone(),
                };
                let end =
                    run_connection(at, &pool, &relays, &config, &status, stream.ws, &stop).await;
                if stop.is_cancelled() {
                    break;
                }
                tracing::warn!("pooled relay connection {index} lost: {end}; re-establishing");
                backoff.after_session(started.elapsed())
            }
            Ok(stream) => {
                crate::relay_dial::close_unused(stream.ws).await;
                not_multiplexing(
                    index,
                    &pool,
                    &config,
                    &status,
                    &mut probe,
                    stream.subprotocol,
                )
            }
            Err(AccessError::Dial(DialError::NoSubprotocol { .. })) => {
                not_multiplexing(index, &pool, &config, &status, &mut probe, None)
            }
            Err(e) => {
                failures += 1;
                dial_failed(index, &access, &e, failures);
                backoff.after_failure(e.relay_unreachable() || e.no_listener())
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Logs the `failures`-th failed dial in a row of slot `index`: one warning per outage,
/// retries at debug.
fn dial_failed(index: usize, access: &RelayAccess, e: &AccessError, failures: u32) {
    let line = format!(
        "pooled relay connection {index} to {}: {e}",
        access.describe()
    );
    if failures == 1 {
        tracing::warn!("cannot open {line}; retrying");
    } else {
        tracing::debug!("cannot open {line}; retrying");
    }
}

/// Dials a pooled connection for slot `index` on its replica, or the next reachable one;
/// returns the replica used (the last one tried when none could be reached).
async fn connect_any(
    relays: &Replicas,
    index: usize,
    id: &str,
    headers: &[(String, String)],
) -> (Arc<RelayAccess>, Result<RelayStream, AccessError>) {
    let mut last = (relays.home(index), Err(AccessError::NoEntityPath));
    for access in relays.order(Some(index)) {
        let dialled = access.connect(id, headers, &MUX_OFFER).await;
        let unreachable = dialled.as_ref().is_err_and(AccessError::relay_unreachable);
        relays.report(&access, !unreachable);
        if !unreachable {
            return (access, dialled);
        }
        last = (access, dialled);
    }
    last
}

/// A pool slot and the replica its connection is on.
struct Slot {
    index: usize,
    on: Arc<RelayAccess>,
}

/// Runs one pooled connection until it ends (or, away from its replica, until it has been
/// retired and its streams have finished); returns why, for the log.
async fn run_connection(
    Slot { index, on }: Slot,
    pool: &Pool,
    relays: &Replicas,
    config: &ProxyConfig,
    status: &ProxyStatus,
    ws: hc_client::tokio_tungstenite::WebSocketStream<hc_client::RelayIo>,
    stop: &CancellationToken,
) -> String {
    let io = WsIo::new(ws, mux::MESSAGE, Some(config.pool_ping));
    let conn = mux::connection(io, MuxMode::Client);
    let (handle, opens) = mux::channel();
    let pooled = Arc::new(Pooled {
        handle,
        streams: AtomicUsize::new(0),
    });
    pool.publish(index, Some(pooled.clone()));
    status.update(|s| {
        s.pooled += 1;
        s.mux_fallback = false;
    });
    tracing::info!("pooled relay connection {index} open (dongle-relay.mux.v1)");
    // The listener never opens streams towards us; dropping one resets it.
    let drive = mux::drive(conn, Some(opens), drop, stop);
    // Away from the slot's replica (it failed over, or the replicas changed so that the
    // slot belongs on another), the connection serves `pool_rehome` longer, then retires.
    let retire = async {
        let mut changes = relays.subscribe();
        let away = || relays.home(index).describe() != on.describe();
        loop {
            if away() {
                tokio::time::sleep(config.pool_rehome).await;
                if away() {
                    break;
                }
            } else if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        pool.retire(index, &pooled);
        // Bounded: the streams' own idle deadline ends them at the latest.
        while pooled.streams.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ended = tokio::select! {
        ended = drive => ended.map_err(|e| e.to_string()),
        () = retire => Err("retired to move to its own relay replica".to_owned()),
    };
    pool.retire(index, &pooled);
    status.update(|s| s.pooled = s.pooled.saturating_sub(1));
    match ended {
        Ok(()) => "closed by the peer".to_owned(),
        Err(e) => e,
    }
}

/// The listener answered a pooled connection without `dongle-relay.mux.v1`.
fn not_multiplexing(
    index: usize,
    pool: &Pool,
    config: &ProxyConfig,
    status: &ProxyStatus,
    probe: &mut Backoff,
    answered: Option<String>,
) -> Duration {
    if probe.attempts() == 0 {
        // Backoff's first delay is zero; a re-probe must wait.
        probe.next_delay();
    }
    let delay = probe.next_delay().max(PROBE_FIRST / 2);
    let answered = answered.unwrap_or_else(|| "no subprotocol".to_owned());
    let was = pool.single_only.send_replace(true);
    status.update(|s| s.mux_fallback = true);
    if !was {
        match config.mode {
            TunnelMode::Mux => tracing::error!(
                "listener does not multiplex (answered {answered}); mode mux needs a dongle-relay listener with multiplexing on; re-probing in {delay:?}"
            ),
            _ => tracing::warn!(
                "listener does not multiplex (answered {answered}); one relay connection per TCP connection, re-probing in {delay:?}"
            ),
        }
    } else {
        tracing::debug!("pooled relay connection {index}: listener still does not multiplex");
    }
    delay
}
