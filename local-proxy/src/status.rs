//! The local-proxy's live counters, published through a `watch` channel so tests and a later
//! admin page can wait for a condition instead of polling.

use std::sync::Arc;

use hc_client::ByteMeter;
use tokio::sync::watch;

/// A point-in-time copy of the proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySnapshot {
    /// The listening socket is accepting.
    pub listening: bool,
    /// Tunnels open now (from accept to close).
    pub active: u64,
    /// Local connections admitted in total.
    pub accepted: u64,
    /// Local connections refused by the allow/deny lists.
    pub denied: u64,
    /// Local connections refused because `max_connections` were open.
    pub over_limit: u64,
    /// Connections the relay refused (HTTP status on the upgrade).
    pub refused: u64,
    /// Connections that failed otherwise (relay unreachable, TLS, local TLS handshake).
    pub failed: u64,
    /// Tunnels that ended normally.
    pub completed: u64,
    /// The last refusal, one line (`127.0.0.1:40000: 404 no listener connected`).
    pub last_refusal: Option<String>,
    /// Pooled (multiplexed) relay connections open now.
    pub pooled: u64,
    /// Tunnels carried as streams of a pooled connection, in total.
    pub multiplexed: u64,
    /// The listener answered a pooled connection without multiplexing (1:1 until re-probed).
    pub mux_fallback: bool,
}

/// A cloneable handle on the proxy's counters.
#[derive(Clone, Debug)]
pub struct ProxyStatus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: watch::Sender<ProxySnapshot>,
    bytes: ByteMeter,
}

impl Default for ProxyStatus {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: watch::Sender::new(ProxySnapshot::default()),
                bytes: ByteMeter::default(),
            }),
        }
    }
}

impl ProxyStatus {
    /// The current counters.
    pub fn snapshot(&self) -> ProxySnapshot {
        self.inner.state.borrow().clone()
    }

    /// Payload bytes of all tunnels (to the relay = from local clients).
    pub fn bytes(&self) -> &ByteMeter {
        &self.inner.bytes
    }

    /// Waits until `condition` holds and returns that state.
    pub async fn wait_for(
        &self,
        mut condition: impl FnMut(&ProxySnapshot) -> bool,
    ) -> ProxySnapshot {
        let mut rx = self.inner.state.subscribe();
        match rx.wait_for(|s| condition(s)).await {
            Ok(s) => s.clone(),
            Err(_) => self.snapshot(),
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut ProxySnapshot)) {
        self.inner.state.send_modify(change);
    }
}
