//! Live counters of a running relay and a way to wait for them: tests wait for "listener
//! registered" or "connection bridged" instead of sleeping, and operators can read them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

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
}

struct Inner {
    state: Mutex<Snapshot>,
    changed: watch::Sender<()>,
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
                state: Mutex::new(Snapshot::default()),
                changed: watch::Sender::new(()),
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

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // The counters stay meaningful even if a holder panicked.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// Registered listeners on hybrid connection `hc` (configured name).
    pub fn listener_count(&self, hc: &str) -> usize {
        self.lock().listeners.get(hc).copied().unwrap_or(0)
    }

    /// Waits until `ready` holds for the counters. Pair it with a `tokio::time::timeout`.
    ///
    /// # Cancel safety
    /// Cancel safe: it only observes.
    pub async fn wait_until(&self, mut ready: impl FnMut(&Snapshot) -> bool) -> Snapshot {
        let mut changes = self.inner.changed.subscribe();
        loop {
            let snapshot = self.snapshot();
            if ready(&snapshot) {
                return snapshot;
            }
            // The sender lives in `self`, so `changed` cannot fail while we hold it.
            let _ = changes.changed().await;
        }
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
        change(&mut self.lock());
        self.inner.changed.send_replace(());
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
}
