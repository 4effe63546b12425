//! Pre-opened 1:1 tunnels (`preopen = N`): a few sender WebSockets opened before any client
//! comes, so that a legacy call on the 1:1 path skips the relay's TCP and TLS handshakes and
//! the rendezvous — what a multiplexed call already skips.
//!
//! `N` refill tasks each keep one parked, dialling the next as soon as theirs is taken, so a
//! burst of calls is refilled in parallel. Each dials offering `dongle-relay.raw,
//! dongle-relay.preopened.v1` with only the site header (no client has come yet). Our listener
//! answers `preopened.v1`, accepts at once and connects its target only when the first message
//! arrives: the PROXY v2 header (client address and site) that the tunnel which takes the
//! connection sends first. So a parked tunnel costs our listener one idle WebSocket and a
//! waiting task, and costs the license server nothing.
//!
//! A listener that answers otherwise is not ours (or too old): it connected its target on
//! accept, and it would never learn the client. Such a connection is closed and pre-opening
//! pauses for [`FOREIGN_REPROBE`], unless `preopen_foreign` is set: then the connection is
//! parked and used as it is (no header, the listener sees the proxy rather than the client),
//! at the price of one idle target connection per parked tunnel.
//!
//! A parked tunnel is retired after `preopen_max_age` (jittered down by up to a quarter, so
//! they do not all redial at once) and when the relay or the listener closes it; its refill
//! task then opens another, with the pool's back-off while the relay cannot be reached. In
//! `auto` mode tunnels are pre-opened only while the pool found the listener not multiplexing
//! (the 1:1 path is then the one in use).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use hc_client::subprotocol::{Framing, PREOPENED_OFFER, is_preopened};
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::{Reconnect, RelayIo, RelayStream, Replicas};
use rand::Rng as _;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ProxyConfig;
use crate::pool::Pool;
use crate::relay_dial::close_unused;
use crate::status::ProxyStatus;

/// How long pre-opening pauses after a listener answered that is not ours.
pub const FOREIGN_REPROBE: Duration = Duration::from_secs(300);
/// Most bytes a foreign listener's target may send a parked tunnel before a client has come
/// (a server that speaks first); more, and the tunnel is retired.
const EARLY_MAX: usize = 64 * 1024;
/// How often `auto` mode looks whether the 1:1 path is the one in use.
const AUTO_POLL: Duration = Duration::from_secs(1);

/// A parked tunnel, handed to the client's tunnel that takes it.
pub(crate) struct Parked {
    /// The sender WebSocket.
    pub(crate) ws: WebSocketStream<RelayIo>,
    /// Its framing.
    pub(crate) framing: Framing,
    /// Our listener waits for the PROXY v2 header first (`dongle-relay.preopened.v1`).
    pub(crate) wants_header: bool,
    /// What a foreign listener's target sent before the client came, for the client.
    pub(crate) early: Vec<u8>,
}

/// A parked tunnel's task takes this to hand its WebSocket over.
type Claim = oneshot::Sender<Parked>;

/// The parked tunnels, oldest first.
#[derive(Default)]
pub(crate) struct Shelf {
    parked: Mutex<VecDeque<oneshot::Sender<Claim>>>,
    /// The "listener does not take pre-opened tunnels" warning was logged.
    warned: AtomicBool,
}

impl Shelf {
    /// Takes a parked tunnel, if one is still open.
    pub(crate) async fn take(&self) -> Option<Parked> {
        loop {
            let next = self
                .parked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()?;
            let (reply, handed) = oneshot::channel();
            // A tunnel that ended meanwhile has dropped its end: try the next.
            if next.send(reply).is_ok()
                && let Ok(parked) = handed.await
            {
                return Some(parked);
            }
        }
    }

    /// Shelves a new tunnel, dropping the entries of tunnels that have ended unclaimed.
    fn put(&self, claims: oneshot::Sender<Claim>) {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        parked.retain(|p| !p.is_closed());
        parked.push_back(claims);
    }
}

/// What the refill tasks work with.
pub(crate) struct Refill {
    pub(crate) shelf: Arc<Shelf>,
    pub(crate) config: Arc<ProxyConfig>,
    pub(crate) relays: Arc<Replicas>,
    pub(crate) status: ProxyStatus,
    /// The pool, in `auto` mode: tunnels are pre-opened only while it is 1:1 only.
    pub(crate) pool: Option<Arc<Pool>>,
}

impl Refill {
    /// Keeps `preopen` tunnels parked until `stop`, then closes them: one task per tunnel,
    /// so that a burst of calls is refilled in parallel rather than one dial at a time.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let refill = Arc::new(self);
        let mut slots = JoinSet::new();
        for _ in 0..refill.config.preopen {
            slots.spawn(refill.clone().slot(stop.clone()));
        }
        while slots.join_next().await.is_some() {}
    }

    /// One parked tunnel after another until `stop`.
    async fn slot(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Reconnect::new(Duration::from_secs(30));
        let headers = self.config.site_headers();
        while !stop.is_cancelled() {
            let delay = if self.pool.as_ref().is_some_and(|p| !p.single_only()) {
                AUTO_POLL
            } else {
                let offer = &PREOPENED_OFFER;
                let dialled = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = crate::relay_dial::dial(&self.relays, &self.status, &headers, offer, "pre-opened tunnel") => r,
                };
                match dialled {
                    Ok(stream) => {
                        let ours = is_preopened(stream.subprotocol.as_deref());
                        if ours || self.config.preopen_foreign {
                            backoff = Reconnect::new(Duration::from_secs(30));
                            self.park(stream, ours, &stop).await;
                            continue;
                        }
                        close_unused(stream.ws).await;
                        if !self.shelf.warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                "the listener does not take pre-opened tunnels (answered {}); not pre-opening (set preopen_foreign to pre-open towards it anyway), looking again every {FOREIGN_REPROBE:?}",
                                stream.subprotocol.as_deref().unwrap_or("no subprotocol")
                            );
                        }
                        FOREIGN_REPROBE
                    }
                    Err(e) => {
                        tracing::debug!("cannot pre-open a tunnel: {e}");
                        // No listener is a refusal here, unlike for the pool: up to 32 slots
                        // redialling fast would load the relay while clients dial for themselves.
                        backoff.after_failure(e.relay_unreachable())
                    }
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Shelves `stream` and holds it until it is claimed, retired or closed.
    async fn park(&self, stream: RelayStream, ours: bool, stop: &CancellationToken) {
        let (claims, claimed) = oneshot::channel();
        self.shelf.put(claims);
        let tunnel = Parked {
            framing: Framing::from_subprotocol(stream.subprotocol.as_deref()),
            ws: stream.ws,
            wants_header: ours,
            early: Vec::new(),
        };
        let age = jittered(self.config.preopen_max_age);
        park(tunnel, claimed, age, self.status.clone(), stop).await;
    }
}

/// `age` less up to a quarter, at random.
fn jittered(age: Duration) -> Duration {
    age.mul_f64(rand::rng().random_range(0.75..=1.0))
}

/// Counts a tunnel in `preopened_ready` while it is parked.
struct Ready(ProxyStatus);

impl Ready {
    fn new(status: ProxyStatus) -> Self {
        status.update(|s| s.preopened_ready += 1);
        Self(status)
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        self.0
            .update(|s| s.preopened_ready = s.preopened_ready.saturating_sub(1));
    }
}

/// Holds one parked tunnel until a client's tunnel claims it, answering the relay's pings
/// meanwhile; retires it at `age`, on `stop`, or when the other side closes it.
async fn park(
    mut tunnel: Parked,
    mut claimed: oneshot::Receiver<Claim>,
    age: Duration,
    status: ProxyStatus,
    stop: &CancellationToken,
) {
    let ready = Ready::new(status);
    tracing::debug!(framing = ?tunnel.framing, "pre-opened tunnel parked");
    let expiry = tokio::time::sleep(age);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            claim = &mut claimed => {
                if let Ok(reply) = claim {
                    drop(ready);
                    // A client that gave up meanwhile drops the tunnel, which closes it.
                    let _ = reply.send(tunnel);
                }
                return;
            }
            message = tunnel.ws.next() => match message {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Binary(data)))
                    if !tunnel.wants_header && tunnel.early.len() + data.len() <= EARLY_MAX =>
                {
                    tunnel.early.extend_from_slice(&data);
                }
                // Closed, broken, or more than a client-less tunnel should see.
                _ => break,
            },
            () = &mut expiry => break,
            _ = stop.cancelled() => break,
        }
    }
    drop(ready);
    // Off the shelf before the close handshake, so no client waits on a closing tunnel.
    drop(claimed);
    close_unused(tunnel.ws).await;
}
