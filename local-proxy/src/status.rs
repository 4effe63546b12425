//! The local-proxy's live counters, [`Published`] so tests and a later
//! admin page can wait for a condition instead of polling; beside them, lock-free, the byte
//! counters, the relay-dial latency histogram and the accept loop's heartbeat (liveness).

use std::collections::BTreeMap;
use std::sync::Arc;

use hc_client::ByteMeter;
use ops_http::{Heartbeat, Published};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

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
    /// Local connections refused because `max_connections` were open, or their address held
    /// its share.
    pub over_limit: u64,
    /// Local connections closed because they sent nothing within the idle deadline.
    pub idle_closed: u64,
    /// Connections the relay refused (HTTP status on the upgrade).
    pub refused: u64,
    /// Refusals by HTTP status (`"404"`), or `"azbridge"` for a refused azbridge preamble.
    pub refused_by_status: BTreeMap<String, u64>,
    /// Connections that failed otherwise (relay unreachable, TLS, local TLS handshake).
    pub failed: u64,
    /// Tunnels that ended normally.
    pub completed: u64,
    /// The last refusal, one line (`127.0.0.1:40000: 404 no listener connected`).
    pub last_refusal: Option<String>,
    /// The last failure, one line, as logged (`relay closed the tunnel for 127.0.0.1:40000:
    /// 1001 listener stopped responding …`).
    pub last_failure: Option<String>,
    /// Pooled (multiplexed) relay connections open now.
    pub pooled: u64,
    /// Tunnels carried as streams of a pooled connection, in total.
    pub multiplexed: u64,
    /// The listener answered a pooled connection without multiplexing (1:1 until re-probed).
    pub mux_fallback: bool,
    /// Pre-opened 1:1 tunnels parked now, waiting for a client.
    pub preopened_ready: u64,
    /// Tunnels carried on a pre-opened 1:1 tunnel, in total.
    pub preopened: u64,
}

/// A cloneable handle on the proxy's counters.
#[derive(Clone, Debug)]
pub struct ProxyStatus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Published<ProxySnapshot>,
    bytes: ByteMeter,
    /// Seconds to open a relay WebSocket (TCP, TLS, upgrade), successful dials only.
    dial: Histogram,
    heartbeat: Heartbeat,
}

impl Default for ProxyStatus {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Published::default(),
                bytes: ByteMeter::default(),
                // 1 ms to about 16 s (the connect and handshake timeouts are 10 s and 20 s).
                dial: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
                heartbeat: Heartbeat::default(),
            }),
        }
    }
}

impl ProxyStatus {
    /// The current counters.
    pub fn snapshot(&self) -> ProxySnapshot {
        self.inner.state.snapshot()
    }

    /// Payload bytes of all tunnels (to the relay = from local clients).
    pub fn bytes(&self) -> &ByteMeter {
        &self.inner.bytes
    }

    /// Seconds each successful relay dial took (1:1 tunnels and pooled connections).
    pub fn relay_dial_latency(&self) -> &Histogram {
        &self.inner.dial
    }

    /// The heartbeat of the accept loop.
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.inner.heartbeat
    }

    /// The proxy's liveness: it listens and its accept loop beat within `max_age`
    /// ([`LIVENESS_MAX_AGE`](ops_http::heartbeat::LIVENESS_MAX_AGE)). An unreachable relay
    /// does not make it unlive.
    ///
    /// # Errors
    /// Not listening, or the accept loop stalled.
    pub fn liveness(&self, max_age: std::time::Duration) -> Result<(), String> {
        if !self.inner.state.read(|s| s.listening) {
            return Err("the local-proxy is not accepting connections".to_owned());
        }
        self.inner
            .heartbeat
            .check("the local-proxy's accept loop", max_age)
    }

    /// Waits until `condition` holds and returns that state.
    pub async fn wait_for(&self, condition: impl FnMut(&ProxySnapshot) -> bool) -> ProxySnapshot {
        self.inner.state.wait_for(condition).await
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut ProxySnapshot)) {
        self.inner.state.update(change);
    }
}
