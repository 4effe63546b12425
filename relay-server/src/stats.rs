//! Live counters of a running relay and a way to wait for them: tests wait for "listener
//! registered" or "connection bridged" instead of sleeping, and operators can read them. Beside
//! the snapshot ([`Published`], updated on connection events) sit what the hot paths touch
//! without it: bridged bytes per direction (atomics), the rendezvous-latency histogram, and
//! the accept loop's heartbeat ([`RelayStats::heartbeat_age`], the relay's liveness).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use ops_http::heartbeat::{HEARTBEAT_INTERVAL, LIVENESS_MAX_AGE};
use ops_http::{Heartbeat, Published};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// A point-in-time copy of the relay's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the relay accepts connections, once it runs.
    pub local_addr: Option<SocketAddr>,
    /// Whether the relay accepts connections (false before start and after shutdown began).
    pub serving: bool,
    /// Registered listener control channels per hybrid connection (configured name).
    pub listeners: BTreeMap<String, usize>,
    /// Open client TCP connections (handshaking, control channels, senders, rendezvous).
    pub connections: usize,
    /// Senders waiting for their listener to dial the rendezvous address.
    pub pending_rendezvous: usize,
    /// Sender-listener pairs currently bridged.
    pub bridged: usize,
    /// Sender-listener pairs bridged since start.
    pub bridged_total: u64,
    /// Upgrade requests refused with an HTTP error since start.
    pub refused_total: u64,
    /// Connections closed at accept, before TLS, because their IP was throttled for
    /// listening too often (a `hyco-ws` reconnect storm), since start.
    pub throttled_total: u64,
    /// Unauthenticated connections closed to make room for newer ones (per-address cap,
    /// reserve, or every slot held), since start.
    pub evicted_total: u64,
    /// Upgrade requests refused since start, by HTTP status.
    pub refused_by_status: BTreeMap<u16, u64>,
}

/// A direction of a bridged connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sender (local-proxy side) to listener.
    SenderToListener,
    /// Listener to sender.
    ListenerToSender,
}

struct Inner {
    state: Published<Snapshot>,
    /// Payload bytes of bridged messages, by [`Direction`].
    bytes: [AtomicU64; 2],
    /// Seconds from a sender's request to its bridge.
    rendezvous: Histogram,
    /// The accept loop's liveness beat.
    heartbeat: Heartbeat,
}

/// Buckets of the rendezvous histogram: 1 ms to about 16 s (the rendezvous timeout is 30 s).
fn rendezvous_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 15)
}

/// A cloneable handle to the relay's counters.
#[derive(Clone)]
pub struct RelayStats {
    inner: Arc<Inner>,
}

impl Default for RelayStats {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Published::default(),
                bytes: [AtomicU64::new(0), AtomicU64::new(0)],
                rendezvous: Histogram::new(rendezvous_buckets()),
                heartbeat: Heartbeat::default(),
            }),
        }
    }
}

impl std::fmt::Debug for RelayStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl RelayStats {
    /// A fresh handle with all counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.state.snapshot()
    }

    /// Registered listeners on hybrid connection `hc` (configured name).
    pub fn listener_count(&self, hc: &str) -> usize {
        self.inner
            .state
            .read(|s| s.listeners.get(hc).copied().unwrap_or(0))
    }

    /// Waits until `ready` holds for the counters. Pair it with a `tokio::time::timeout`.
    ///
    /// # Cancel safety
    /// Cancel safe: it only observes.
    pub async fn wait_until(&self, ready: impl FnMut(&Snapshot) -> bool) -> Snapshot {
        self.inner.state.wait_for(ready).await
    }

    /// Waits until at least `n` listeners are registered on `hc`.
    pub async fn wait_for_listeners(&self, hc: &str, n: usize) -> Snapshot {
        self.wait_until(|s| s.listeners.get(hc).copied().unwrap_or(0) >= n)
            .await
    }

    /// Waits until the relay accepts connections; returns its address.
    pub async fn wait_serving(&self) -> Option<SocketAddr> {
        self.wait_until(|s| s.serving).await.local_addr
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        self.inner.state.update(change);
    }

    /// Payload bytes bridged in `direction` since start.
    pub fn bytes(&self, direction: Direction) -> u64 {
        self.inner.bytes[direction as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn add_bytes(&self, direction: Direction, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.inner.bytes[direction as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Seconds from each sender's request to its bridge (registered as a metric by
    /// [`crate::metrics::registry`]).
    pub fn rendezvous_latency(&self) -> &Histogram {
        &self.inner.rendezvous
    }

    /// The accept loop beats: it is running and not stuck.
    pub(crate) fn beat(&self) {
        self.inner.heartbeat.beat();
    }

    /// How long ago the accept loop last beat (it beats every [`HEARTBEAT_INTERVAL`] while
    /// it runs); `None` before it started.
    pub fn heartbeat_age(&self) -> Option<Duration> {
        self.inner.heartbeat.age()
    }

    /// The relay's liveness: it accepts connections and its accept loop beat within
    /// `max_age` ([`LIVENESS_MAX_AGE`] is a good value). `Err` says why not.
    ///
    /// # Errors
    /// Not serving, or the accept loop's heartbeat is too old.
    pub fn liveness(&self, max_age: Duration) -> Result<(), String> {
        if !self.snapshot().serving {
            return Err("the relay is not accepting connections".to_owned());
        }
        self.inner
            .heartbeat
            .check("the relay's accept loop", max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_see_updates() {
        let stats = RelayStats::new();
        let waiter = {
            let stats = stats.clone();
            tokio::spawn(async move { stats.wait_for_listeners("hc", 2).await })
        };
        stats.update(|s| *s.listeners.entry("hc".into()).or_default() += 1);
        stats.update(|s| *s.listeners.entry("hc".into()).or_default() += 1);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(seen.listeners.get("hc"), Some(&2));
        assert_eq!(stats.listener_count("hc"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_needs_serving_and_a_recent_beat() {
        let stats = RelayStats::new();
        assert!(stats.liveness(LIVENESS_MAX_AGE).is_err());
        stats.update(|s| s.serving = true);
        let err = stats.liveness(LIVENESS_MAX_AGE).expect_err("no beat yet");
        assert!(err.contains("not run yet"), "{err}");
        tokio::time::advance(Duration::from_secs(3)).await;
        stats.beat();
        assert_eq!(stats.heartbeat_age(), Some(Duration::ZERO));
        assert_eq!(stats.liveness(LIVENESS_MAX_AGE), Ok(()));
        tokio::time::advance(LIVENESS_MAX_AGE + Duration::from_secs(1)).await;
        let err = stats.liveness(LIVENESS_MAX_AGE).expect_err("stale");
        assert!(err.contains("stalled"), "{err}");
        stats.add_bytes(Direction::ListenerToSender, 5);
        assert_eq!(
            (
                stats.bytes(Direction::SenderToListener),
                stats.bytes(Direction::ListenerToSender)
            ),
            (0, 5)
        );
    }
}
