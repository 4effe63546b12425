//! The hub: the hosted hybrid connections, the listeners registered on each (spread
//! round-robin, capped per hybrid connection), and the pending rendezvous that pair a waiting
//! sender with the listener that dials back.
//!
//! A rendezvous is keyed by an unguessable single-use id (a v4 UUID from the OS random
//! source) carried in the accept address; the sender's request owns it through a
//! [`PendingGuard`], so it disappears when the sender times out or goes away.
//!
//! Bursts: each listener has a short queue of accept messages in front of its control
//! channel. When every listener's queue is full, a sender waits for room
//! ([`HcEntry::dispatch`]) instead of being refused; the wait counts against its rendezvous
//! timeout. Waiting senders are bounded by the relay's connection limit (each holds a
//! connection slot), so memory stays bounded without a second limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures_util::future::select_ok;
use http::StatusCode;
use hyper::upgrade::OnUpgrade;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::admission::ConnectionSlot;
use crate::config::HybridConnectionConfig;
use crate::http_exchange::Exchanges;
use crate::refusal::Refusal;
use crate::stats::RelayStats;

/// Accept messages queued per listener ahead of its control channel. Senders beyond it wait
/// for room (backpressure), so this only bounds buffering, not how many senders may wait.
const ACCEPT_QUEUE: usize = 64;

/// A hosted hybrid connection.
#[derive(Debug)]
pub(crate) struct HcEntry {
    pub config: HybridConnectionConfig,
    /// The name without surrounding slashes, as configured.
    pub name: String,
    segments: Vec<String>,
    listeners: Mutex<ListenerSet>,
    cursor: AtomicUsize,
    /// Signalled when a listener registers, so senders waiting for queue room consider it.
    registered: Notify,
    stats: RelayStats,
}

/// No listener could take an accept message: none is registered (or all are going away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoListener;

#[derive(Debug, Default)]
struct ListenerSet {
    /// Reserved slots, including registered listeners.
    reserved: usize,
    active: Vec<ListenerHandle>,
}

/// One message for a listener's control channel: JSON text and, for an HTTP request with an
/// inline body, the binary message that must follow it directly (queued as one item so no
/// other message can come between them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub text: String,
    pub body: Option<Bytes>,
}

impl From<String> for Outbound {
    fn from(text: String) -> Self {
        Self { text, body: None }
    }
}

impl From<&str> for Outbound {
    fn from(text: &str) -> Self {
        text.to_owned().into()
    }
}

/// How the hub reaches a registered listener.
#[derive(Debug, Clone)]
pub(crate) struct ListenerHandle {
    pub id: u64,
    /// Accept and request messages for the control channel. Boxed because the channel
    /// allocates its first block of 32 slots when it is created, i.e. for every connected
    /// listener, idle or not: 32 pointers instead of 32 messages is 1.5 KiB less per listener.
    pub accepts: mpsc::Sender<Box<Outbound>>,
    /// `ws(s)://{host the listener used}`: the base of the accept addresses it gets.
    pub base_url: String,
    /// Declared when the listener is known to be dead (frozen or vanished), so that the
    /// senders whose accept it took stop waiting for its dial-back.
    pub lost: Arc<ListenerLoss>,
}

/// A listener found dead by its control channel: no answer to pings, or its connection
/// dropped without a Close. A listener that closes its control channel cleanly is not lost:
/// it may still dial back the accepts it already took.
#[derive(Debug, Default)]
pub(crate) struct ListenerLoss {
    reason: std::sync::OnceLock<String>,
    token: CancellationToken,
}

impl ListenerLoss {
    /// Records why the listener is dead and wakes everyone waiting on it (first reason wins).
    pub fn declare(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.token.cancel();
    }

    /// Resolves with the reason once the listener is declared dead.
    pub async fn wait(&self) -> &str {
        self.token.cancelled().await;
        self.reason.get().map_or("", String::as_str)
    }
}

impl HcEntry {
    fn lock(&self) -> MutexGuard<'_, ListenerSet> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether any listener is registered and not going away.
    pub fn has_listeners(&self) -> bool {
        self.lock().active.iter().any(|l| !l.accepts.is_closed())
    }

    /// Registered listeners, starting at the next one in round-robin order.
    pub fn listeners_round_robin(&self) -> Vec<ListenerHandle> {
        let set = self.lock();
        let n = set.active.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| set.active[(start + i) % n].clone())
            .collect()
    }

    /// Hands an accept (or request) message to a listener: the first in round-robin order with room in
    /// its queue, or — when every queue is full — whichever listener frees room first. The
    /// caller bounds the wait (the rendezvous timeout). `message` builds the JSON for the
    /// chosen listener (the accept address uses its host).
    ///
    /// Returns the listener that took the message.
    ///
    /// # Errors
    /// [`NoListener`] when no open listener is registered.
    pub async fn dispatch<M: Into<Outbound>>(
        &self,
        message: impl Fn(&ListenerHandle) -> M,
    ) -> Result<ListenerHandle, NoListener> {
        loop {
            // Armed before the snapshot, so a registration in between is not missed.
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            let listeners: Vec<ListenerHandle> = self
                .listeners_round_robin()
                .into_iter()
                .filter(|l| !l.accepts.is_closed())
                .collect();
            if listeners.is_empty() {
                return Err(NoListener);
            }
            for listener in &listeners {
                if let Ok(permit) = listener.accepts.try_reserve() {
                    permit.send(Box::new(message(listener).into()));
                    return Ok(listener.clone());
                }
            }
            let room = select_ok(listeners.iter().map(|listener| {
                Box::pin(async move { listener.accepts.reserve().await.map(|p| (p, listener)) })
            }));
            tokio::select! {
                room = room => {
                    if let Ok(((permit, listener), _)) = room {
                        permit.send(Box::new(message(listener).into()));
                        return Ok(listener.clone());
                    }
                    // Every listener went away meanwhile: the next snapshot decides.
                }
                () = registered => {}
            }
        }
    }

    fn publish_count(&self, active: usize) {
        let name = self.name.clone();
        self.stats.update(|s| {
            s.listeners.insert(name, active);
        });
    }
}

/// A reserved listener place on a hybrid connection; registered once the control channel's
/// WebSocket is up, released on drop.
#[derive(Debug)]
pub(crate) struct ListenerSlot {
    hc: Arc<HcEntry>,
    registered: Option<u64>,
}

impl ListenerSlot {
    /// Makes the listener eligible for senders; returns the receiver of its accept messages
    /// and where its control channel declares it dead.
    pub fn register(
        &mut self,
        id: u64,
        base_url: String,
    ) -> (mpsc::Receiver<Box<Outbound>>, Arc<ListenerLoss>) {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let lost = Arc::new(ListenerLoss::default());
        let mut set = self.hc.lock();
        set.active.push(ListenerHandle {
            id,
            accepts: tx,
            base_url,
            lost: lost.clone(),
        });
        let active = set.active.len();
        drop(set);
        self.registered = Some(id);
        self.hc.publish_count(active);
        self.hc.registered.notify_waiters();
        (rx, lost)
    }
}

impl Drop for ListenerSlot {
    fn drop(&mut self) {
        let mut set = self.hc.lock();
        set.reserved = set.reserved.saturating_sub(1);
        if let Some(id) = self.registered {
            set.active.retain(|l| l.id != id);
            let active = set.active.len();
            drop(set);
            self.hc.publish_count(active);
        }
    }
}

/// What the listener's dial-back did with a pending rendezvous.
pub(crate) enum Arrival {
    /// The listener accepted: its upgrade completes once the relay has answered it `101`.
    Accepted {
        protocol: Option<String>,
        upgrade: OnUpgrade,
        /// The listener's connection slot, kept for the bridge's lifetime.
        slot: Arc<ConnectionSlot>,
    },
    /// The listener rejected (or its dial-back was refused): answer the sender with this.
    Rejected(Refusal),
}

/// A sender waiting for its listener.
pub(crate) struct Pending {
    pub hc: Arc<HcEntry>,
    pub offered_protocols: Vec<String>,
    pub arrival: oneshot::Sender<Arrival>,
}

/// Removes a pending rendezvous when the waiting sender is done, whatever the outcome.
pub(crate) struct PendingGuard {
    hub: Arc<Hub>,
    key: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.hub.take_rendezvous(&self.key);
    }
}

/// The hosted hybrid connections and the rendezvous in flight.
#[derive(Debug)]
pub(crate) struct Hub {
    hcs: Vec<Arc<HcEntry>>,
    pending: Mutex<HashMap<String, PendingEntry>>,
    max_listeners: usize,
    next_listener: AtomicU64,
    stats: RelayStats,
    /// HTTP requests waiting for their listener's response.
    pub exchanges: Arc<Exchanges>,
}

struct PendingEntry(Pending);

impl std::fmt::Debug for PendingEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Hub {
    pub fn new(
        configs: &[HybridConnectionConfig],
        max_listeners: usize,
        stats: RelayStats,
    ) -> Self {
        let hcs: Vec<Arc<HcEntry>> = configs
            .iter()
            .map(|config| {
                let name = config.name.trim_matches('/').to_owned();
                Arc::new(HcEntry {
                    segments: name.split('/').map(str::to_lowercase).collect(),
                    name,
                    config: config.clone(),
                    listeners: Mutex::new(ListenerSet::default()),
                    cursor: AtomicUsize::new(0),
                    registered: Notify::new(),
                    stats: stats.clone(),
                })
            })
            .collect();
        stats.update(|s| {
            for hc in &hcs {
                s.listeners.insert(hc.name.clone(), 0);
            }
        });
        Self {
            hcs,
            pending: Mutex::new(HashMap::new()),
            max_listeners,
            next_listener: AtomicU64::new(1),
            stats,
            exchanges: Arc::default(),
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, PendingEntry>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hybrid connection whose name is the longest segment-wise prefix of `path` (the
    /// part after `/$hc/`), and the rest of the path (a sender's suffix), case kept.
    pub fn find(&self, path: &str) -> Option<(Arc<HcEntry>, String)> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let hc = self
            .hcs
            .iter()
            .filter(|hc| {
                hc.segments.len() <= segments.len()
                    && hc
                        .segments
                        .iter()
                        .zip(&segments)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
            })
            .max_by_key(|hc| hc.segments.len())?;
        Some((hc.clone(), segments[hc.segments.len()..].join("/")))
    }

    /// Reserves a listener place on `hc`; `429` when it already has the maximum.
    pub fn reserve_listener(&self, hc: &Arc<HcEntry>) -> Result<ListenerSlot, Refusal> {
        let mut set = hc.lock();
        if set.reserved >= self.max_listeners {
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "QuotaExceeded: hybrid connection '{}' already has the maximum of {} listeners",
                    hc.name, self.max_listeners
                ),
            )
            .retry_after(5));
        }
        set.reserved += 1;
        Ok(ListenerSlot {
            hc: hc.clone(),
            registered: None,
        })
    }

    /// A fresh listener id.
    pub fn next_listener_id(&self) -> u64 {
        self.next_listener.fetch_add(1, Ordering::Relaxed)
    }

    /// Opens a rendezvous for a sender on `hc`; returns its key, the receiver of the
    /// listener's arrival and the guard that removes it.
    pub fn open_rendezvous(
        self: &Arc<Self>,
        hc: &Arc<HcEntry>,
        offered_protocols: Vec<String>,
    ) -> (String, oneshot::Receiver<Arrival>, PendingGuard) {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            hc: hc.clone(),
            offered_protocols,
            arrival: tx,
        };
        let count = {
            let mut map = self.pending();
            map.insert(key.clone(), PendingEntry(pending));
            map.len()
        };
        self.stats.update(|s| s.pending_rendezvous = count);
        let guard = PendingGuard {
            hub: self.clone(),
            key: key.clone(),
        };
        (key, rx, guard)
    }

    /// Removes and returns the pending rendezvous `key` (single use).
    pub fn take_rendezvous(&self, key: &str) -> Option<Pending> {
        let (taken, count) = {
            let mut map = self.pending();
            let taken = map.remove(key);
            (taken, map.len())
        };
        if taken.is_some() {
            self.stats.update(|s| s.pending_rendezvous = count);
        }
        taken.map(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Right, SasRule};

    fn hub(max: usize) -> Arc<Hub> {
        let rule = || vec![SasRule::new("l", "k", &[Right::Listen])];
        let configs = vec![
            HybridConnectionConfig::new("a", rule()),
            HybridConnectionConfig::new("a/b", rule()),
            HybridConnectionConfig::new("license", rule()),
        ];
        Arc::new(Hub::new(&configs, max, RelayStats::new()))
    }

    #[test]
    fn longest_prefix_wins_and_suffix_is_kept() {
        let hub = hub(25);
        let (hc, suffix) = hub.find("A/b/Extra/x").expect("found");
        assert_eq!((hc.name.as_str(), suffix.as_str()), ("a/b", "Extra/x"));
        let (hc, suffix) = hub.find("a/c").expect("found");
        assert_eq!((hc.name.as_str(), suffix.as_str()), ("a", "c"));
        assert!(hub.find("licensed").is_none());
        assert!(hub.find("").is_none());
    }

    #[test]
    fn listener_cap_and_round_robin() {
        let hub = hub(2);
        let (hc, _) = hub.find("license").expect("hc");
        let mut one = hub.reserve_listener(&hc).expect("first");
        let mut two = hub.reserve_listener(&hc).expect("second");
        let refused = hub.reserve_listener(&hc).expect_err("third");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let _rx1 = one.register(1, "wss://h".into()).0;
        let _rx2 = two.register(2, "wss://h".into()).0;
        assert_eq!(hub.stats.listener_count("license"), 2);
        let firsts: Vec<u64> = (0..4).map(|_| hc.listeners_round_robin()[0].id).collect();
        assert_eq!(firsts, [1, 2, 1, 2]);
        drop(one);
        assert_eq!(hub.stats.listener_count("license"), 1);
        assert!(hub.reserve_listener(&hc).is_ok());
    }

    #[tokio::test]
    async fn dispatch_waits_for_room_instead_of_refusing() {
        let hub = hub(25);
        let (hc, _) = hub.find("license").expect("hc");
        assert_eq!(hc.dispatch(|_| "x").await.err(), Some(NoListener));
        let mut one = hub.reserve_listener(&hc).expect("slot");
        let (mut rx1, _) = one.register(1, "wss://one".into());
        for _ in 0..ACCEPT_QUEUE {
            hc.dispatch(|l| l.base_url.clone()).await.expect("room");
        }
        // Full: the next sender waits, and gets in once the listener takes a message.
        let waiting = tokio::spawn({
            let hc = hc.clone();
            async move {
                hc.dispatch(|l| format!("late {}", l.base_url))
                    .await
                    .map(|l| l.id)
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(
            rx1.recv().await.map(|o| o.text).as_deref(),
            Some("wss://one")
        );
        assert_eq!(waiting.await.expect("task"), Ok(1));
        // Full again: a listener registering meanwhile takes the waiting sender.
        let waiting = tokio::spawn({
            let hc = hc.clone();
            async move {
                hc.dispatch(|l| format!("late {}", l.base_url))
                    .await
                    .map(|l| l.id)
            }
        });
        tokio::task::yield_now().await;
        let mut two = hub.reserve_listener(&hc).expect("slot");
        let (mut rx2, _) = two.register(2, "wss://two".into());
        assert_eq!(waiting.await.expect("task"), Ok(2));
        assert_eq!(
            rx2.recv().await.map(|o| o.text).as_deref(),
            Some("late wss://two")
        );
        // Listeners going away end the wait with NoListener.
        let waiting = tokio::spawn({
            let hc = hc.clone();
            async move {
                loop {
                    if let Err(err) = hc.dispatch(|_| "fill").await {
                        return err;
                    }
                }
            }
        });
        drop((rx1, rx2));
        assert_eq!(waiting.await.expect("task"), NoListener);
        drop((one, two));
    }

    #[test]
    fn rendezvous_is_single_use_and_guarded() {
        let hub = hub(25);
        let (hc, _) = hub.find("license").expect("hc");
        let (key, _rx, guard) = hub.open_rendezvous(&hc, vec![]);
        assert_eq!(hub.stats.snapshot().pending_rendezvous, 1);
        assert!(hub.take_rendezvous(&key).is_some());
        assert!(hub.take_rendezvous(&key).is_none());
        drop(guard);
        let (key, _rx, guard) = hub.open_rendezvous(&hc, vec![]);
        drop(guard);
        assert!(hub.take_rendezvous(&key).is_none());
        assert_eq!(hub.stats.snapshot().pending_rendezvous, 0);
    }
}
