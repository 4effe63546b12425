//! Admission control: which clients may connect at all (IP allow/deny lists), how many
//! connections are open at once (a slot per TCP connection, held until the connection and
//! any WebSocket upgraded from it are gone), and how fast one IP may open listener control
//! channels.
//!
//! The listen rate limit exists for `hyco-ws`: a refused listener reconnects at once, and
//! twice per failure (on its `error` and on its `close` event), so its attempts double each
//! round until its CPU is saturated. Answering each with `429` after a TLS handshake is not
//! enough: the attempts pile up faster than handshakes complete and fill every connection
//! slot. So an IP refused for its listen rate is **storming**: its TCP connections are
//! closed at accept, before TLS, except one probe per refill interval (`1 / rate`), which is
//! served normally. The state ends once the IP's bucket is full again (it stayed quiet for
//! `burst / rate` seconds). Other IPs are not affected; a site without a misbehaving listener
//! never meets this.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{AccessConfig, Limits};
use crate::stats::RelayStats;

/// Connections answered `503` beyond `max_connections` before further ones are dropped
/// without an answer.
const OVERFLOW_SLOTS: usize = 32;

/// Buckets kept before idle ones are pruned.
const MAX_TRACKED_IPS: usize = 4096;

/// Longest wait between two probes of a storming IP, whatever the configured rate.
const MAX_PROBE_INTERVAL_SECS: f64 = 60.0;

/// A held connection slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    /// An over-the-limit connection that only gets a `503`.
    pub overflow: bool,
    stats: RelayStats,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if !self.overflow {
            self.stats
                .update(|s| s.connections = s.connections.saturating_sub(1));
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// A listen attempt was refused for the rate and the bucket has not refilled since.
    storming: bool,
    /// While storming: when the next connection may pass as a probe.
    next_probe: Instant,
}

impl Bucket {
    fn tokens_at(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        (self.tokens + now.duration_since(self.updated).as_secs_f64() * rate).min(burst)
    }
}

/// The relay's admission state.
#[derive(Debug)]
pub(crate) struct Admission {
    access: AccessConfig,
    connections: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    burst: u32,
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    stats: RelayStats,
}

impl Admission {
    pub fn new(access: AccessConfig, limits: &Limits, stats: RelayStats) -> Self {
        Self {
            access,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            overflow: Arc::new(Semaphore::new(OVERFLOW_SLOTS)),
            burst: limits.listen_burst_per_ip,
            rate: limits.listen_rate_per_ip,
            buckets: Mutex::new(HashMap::new()),
            stats,
        }
    }

    /// Whether the access lists let `ip` in.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.access.permits(ip)
    }

    /// A slot for a new connection: a normal one, an overflow one (answered `503`), or none
    /// (drop the connection).
    pub fn connection_slot(&self) -> Option<ConnectionSlot> {
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            self.stats.update(|s| s.connections += 1);
            return Some(ConnectionSlot {
                _permit: permit,
                overflow: false,
                stats: self.stats.clone(),
            });
        }
        self.overflow
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| ConnectionSlot {
                _permit: permit,
                overflow: true,
                stats: self.stats.clone(),
            })
    }

    /// Takes one listen attempt from `ip`'s token bucket; false when it is empty (and `ip`
    /// is then storming).
    pub fn allow_listen(&self, ip: IpAddr) -> bool {
        if self.burst == 0 {
            return true;
        }
        let now = Instant::now();
        let burst = f64::from(self.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_IPS {
            // Forget IPs whose bucket has refilled: they are indistinguishable from new ones.
            let rate = self.rate;
            buckets.retain(|_, b| b.tokens_at(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(ip.to_canonical()).or_insert(Bucket {
            tokens: burst,
            updated: now,
            storming: false,
            next_probe: now,
        });
        bucket.tokens = bucket.tokens_at(now, self.rate, burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        if !bucket.storming {
            bucket.storming = true;
            bucket.next_probe = now + self.probe_interval();
            tracing::info!(%ip, "listen attempts over the rate limit: throttling this address");
        }
        false
    }

    /// Whether a new connection from `ip` is to be closed before TLS because `ip` is storming
    /// (see the module documentation). Lets one probe through per refill interval.
    pub fn throttled(&self, ip: IpAddr) -> bool {
        if self.burst == 0 {
            return false;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(bucket) = buckets.get_mut(&ip.to_canonical()) else {
            return false;
        };
        if !bucket.storming {
            return false;
        }
        if bucket.tokens_at(now, self.rate, f64::from(self.burst)) >= f64::from(self.burst) {
            bucket.storming = false;
            return false;
        }
        if now >= bucket.next_probe {
            bucket.next_probe = now + self.probe_interval();
            return false;
        }
        true
    }

    /// How often a storming IP may open a connection: as often as it regains a token.
    fn probe_interval(&self) -> Duration {
        Duration::from_secs_f64((1.0 / self.rate).min(MAX_PROBE_INTERVAL_SECS))
    }

    /// Seconds until `ip` may try to listen again (for `Retry-After`).
    pub fn listen_retry_after(&self) -> u64 {
        if self.rate > 0.0 {
            (1.0 / self.rate).ceil().max(1.0) as u64
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_connections: usize, burst: u32, rate: f64) -> Admission {
        let limits = Limits {
            max_connections,
            listen_burst_per_ip: burst,
            listen_rate_per_ip: rate,
            ..Limits::default()
        };
        Admission::new(AccessConfig::default(), &limits, RelayStats::new())
    }

    #[tokio::test(start_paused = true)]
    async fn listen_bucket_refills() {
        let a = admission(10, 2, 1.0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(a.allow_listen(ip));
        assert!(a.allow_listen(ip));
        assert!(!a.allow_listen(ip));
        assert!(a.allow_listen("192.0.2.2".parse().expect("ip")));
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(a.allow_listen(ip));
        assert!(!a.allow_listen(ip));
        assert!(admission(10, 0, 0.0).allow_listen(ip));
    }

    #[tokio::test(start_paused = true)]
    async fn a_storming_ip_gets_one_probe_per_interval_until_it_is_quiet() {
        let a = admission(10, 2, 2.0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(a.allow_listen(ip));
        assert!(a.allow_listen(ip));
        // An exhausted bucket alone does not throttle: only a refused attempt does.
        assert!(!a.throttled(ip));
        assert!(!a.allow_listen(ip));
        assert!(a.throttled(ip));
        assert!(!a.throttled("::ffff:192.0.2.2".parse().expect("ip")));
        // One probe per refill interval (0.5 s), served even if its listen then succeeds.
        tokio::time::advance(Duration::from_millis(510)).await;
        assert!(!a.throttled(ip));
        assert!(a.throttled(ip));
        assert!(a.allow_listen(ip));
        assert!(a.throttled(ip));
        // Quiet until the bucket is full again (2 tokens at 2/s): no longer storming.
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(!a.throttled(ip));
        assert!(!a.throttled(ip));
        assert!(!admission(10, 0, 0.0).throttled(ip));
    }

    #[test]
    fn connection_slots_overflow_then_drop() {
        let a = admission(1, 0, 0.0);
        let first = a.connection_slot().expect("slot");
        assert!(!first.overflow);
        assert_eq!(a.stats.snapshot().connections, 1);
        let extra: Vec<_> = (0..OVERFLOW_SLOTS)
            .map(|_| a.connection_slot().expect("overflow"))
            .collect();
        assert!(extra.iter().all(|s| s.overflow));
        assert!(a.connection_slot().is_none());
        drop(first);
        assert_eq!(a.stats.snapshot().connections, 0);
        assert!(a.connection_slot().is_some_and(|s| !s.overflow));
    }
}
