//! Admission control: which clients may connect at all (IP allow/deny lists), how many
//! connections are open at once (a slot per TCP connection, held until the connection and
//! any WebSocket upgraded from it are gone), how many of them may be unauthenticated, and how
//! fast one IP may open listener control channels.
//!
//! **Unauthenticated connections** (accepted, not yet past a valid token or rendezvous
//! address) cost an attacker nothing, so they may never crowd out the others: at most
//! `max_unauthenticated_per_ip` per address (a newer one closes that address' **oldest**),
//! and at most `max_connections - reserved_for_authenticated` in all. Over that, or when every
//! slot is held, the oldest unauthenticated connection of the address holding the most is
//! closed to make room. A real client authenticates within milliseconds of connecting and is
//! never the heaviest address: listeners reconnecting, senders and proxies re-dialling their
//! pool always get a slot while a flood of idle connections only churns through its own. The
//! per-address cap is generous (a site behind one NAT address bursts hundreds of 1:1 senders
//! at once, each unauthenticated for the length of its TLS handshake).
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

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use config_syntax::AccessList;

use crate::config::Limits;
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
    table: Arc<SlotTable>,
    /// The slot's entry in the table; `None` for an overflow slot.
    id: Option<u64>,
    /// An over-the-limit connection that only gets a `503`.
    pub overflow: bool,
    /// Cancelled when the connection is closed to make room (it was unauthenticated and the
    /// oldest).
    evicted: CancellationToken,
}

impl ConnectionSlot {
    /// The connection proved its right (a valid token or rendezvous address): it no longer
    /// counts as unauthenticated and is never closed to make room.
    pub fn authenticated(&self) {
        if let Some(id) = self.id {
            self.table.lock().authenticate(id);
        }
    }

    /// Cancelled when the connection is to be closed to make room.
    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        match self.id {
            Some(id) => {
                if table.remove(id) {
                    self.table
                        .stats
                        .update(|s| s.connections = s.connections.saturating_sub(1));
                }
            }
            None => table.overflow = table.overflow.saturating_sub(1),
        }
    }
}

/// One counted connection.
#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    authenticated: bool,
    evicted: CancellationToken,
}

/// Every counted connection, and the unauthenticated ones by age (ids grow with time).
#[derive(Debug, Default)]
struct Slots {
    next: u64,
    entries: HashMap<u64, Entry>,
    unauthenticated: BTreeSet<u64>,
    per_ip: HashMap<IpAddr, BTreeSet<u64>>,
    overflow: usize,
}

impl Slots {
    fn authenticate(&mut self, id: u64) {
        if let Some(entry) = self.entries.get_mut(&id)
            && !entry.authenticated
        {
            entry.authenticated = true;
            let ip = entry.ip;
            self.forget_unauthenticated(id, ip);
        }
    }

    fn forget_unauthenticated(&mut self, id: u64, ip: IpAddr) {
        self.unauthenticated.remove(&id);
        if let Some(ids) = self.per_ip.get_mut(&ip) {
            ids.remove(&id);
            if ids.is_empty() {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Removes `id`; false when it was already gone (evicted).
    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        if !entry.authenticated {
            self.forget_unauthenticated(id, entry.ip);
        }
        true
    }

    /// The oldest unauthenticated connection of the address holding the most: making room
    /// costs the flood, never a client that is merely in its handshake.
    fn oldest_of_heaviest(&self) -> Option<u64> {
        self.per_ip
            .values()
            .max_by_key(|ids| ids.len())
            .and_then(|ids| ids.first().copied())
    }

    /// Closes unauthenticated connection `id` to make room; false when there is none.
    fn evict(&mut self, id: Option<u64>) -> bool {
        let Some(id) = id else { return false };
        let Some(entry) = self.entries.get(&id) else {
            return false;
        };
        entry.evicted.cancel();
        self.remove(id)
    }
}

/// The slot table and what it reports to.
#[derive(Debug)]
struct SlotTable {
    slots: Mutex<Slots>,
    stats: RelayStats,
}

impl SlotTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
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
    access: AccessList,
    table: Arc<SlotTable>,
    max_connections: usize,
    max_unauthenticated: usize,
    max_unauthenticated_per_ip: usize,
    burst: u32,
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    stats: RelayStats,
}

impl Admission {
    pub fn new(access: AccessList, limits: &Limits, stats: RelayStats) -> Self {
        Self {
            access,
            table: Arc::new(SlotTable {
                slots: Mutex::new(Slots::default()),
                stats: stats.clone(),
            }),
            max_connections: limits.max_connections.max(1),
            max_unauthenticated: limits
                .max_connections
                .saturating_sub(limits.reserved_for_authenticated)
                .max(limits.max_connections.div_ceil(2)),
            max_unauthenticated_per_ip: limits.max_unauthenticated_per_ip.max(1),
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

    /// A slot for a new, unauthenticated connection from `ip`: a normal one (closing the
    /// oldest unauthenticated connection when a limit says so, see the module documentation),
    /// an overflow one (answered `503`), or none (drop the connection).
    pub fn connection_slot(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let ip = ip.to_canonical();
        let mut slots = self.table.lock();
        let mut evicted = 0usize;
        let own = slots.per_ip.get(&ip).map_or(0, BTreeSet::len);
        if own >= self.max_unauthenticated_per_ip {
            let oldest = slots.per_ip.get(&ip).and_then(|ids| ids.first().copied());
            evicted += usize::from(slots.evict(oldest));
        }
        if slots.unauthenticated.len() >= self.max_unauthenticated
            || slots.entries.len() >= self.max_connections
        {
            let oldest = slots.oldest_of_heaviest();
            evicted += usize::from(slots.evict(oldest));
        }
        if evicted > 0 {
            tracing::debug!(%ip, evicted, "closed the oldest unauthenticated connections to make room");
            self.stats.update(|s| {
                s.connections = s.connections.saturating_sub(evicted);
                s.evicted_total += evicted as u64;
            });
        }
        if slots.entries.len() >= self.max_connections {
            if slots.overflow >= OVERFLOW_SLOTS {
                return None;
            }
            slots.overflow += 1;
            return Some(ConnectionSlot {
                table: self.table.clone(),
                id: None,
                overflow: true,
                evicted: CancellationToken::new(),
            });
        }
        let id = slots.next;
        slots.next += 1;
        let token = CancellationToken::new();
        slots.entries.insert(
            id,
            Entry {
                ip,
                authenticated: false,
                evicted: token.clone(),
            },
        );
        slots.unauthenticated.insert(id);
        slots.per_ip.entry(ip).or_default().insert(id);
        drop(slots);
        self.stats.update(|s| s.connections += 1);
        Some(ConnectionSlot {
            table: self.table.clone(),
            id: Some(id),
            overflow: false,
            evicted: token,
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
        Admission::new(AccessList::default(), &limits, RelayStats::new())
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
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = a.connection_slot(ip).expect("slot");
        assert!(!first.overflow);
        first.authenticated();
        assert_eq!(a.stats.snapshot().connections, 1);
        let extra: Vec<_> = (0..OVERFLOW_SLOTS)
            .map(|_| a.connection_slot(ip).expect("overflow"))
            .collect();
        assert!(extra.iter().all(|s| s.overflow));
        assert!(a.connection_slot(ip).is_none());
        drop(first);
        assert_eq!(a.stats.snapshot().connections, 0);
        assert!(a.connection_slot(ip).is_some_and(|s| !s.overflow));
    }

    #[test]
    fn a_flood_of_unauthenticated_connections_only_churns_its_own() {
        let limits = Limits {
            max_connections: 10,
            reserved_for_authenticated: 4,
            max_unauthenticated_per_ip: 3,
            ..Limits::default()
        };
        let a = Admission::new(AccessList::default(), &limits, RelayStats::new());
        let bad: IpAddr = "192.0.2.66".parse().expect("ip");
        let other: IpAddr = "192.0.2.67".parse().expect("ip");
        let handshaking = a.connection_slot(other).expect("slot");
        let flood: Vec<_> = (0..5)
            .map(|_| a.connection_slot(bad).expect("slot"))
            .collect();
        // Three per address: the two oldest were closed to make room.
        let evicted: Vec<bool> = flood.iter().map(|s| s.evicted().is_cancelled()).collect();
        assert_eq!(evicted, [true, true, false, false, false]);
        assert_eq!(a.stats.snapshot().connections, 4);
        // Listeners and senders from elsewhere authenticate at once and keep their slots.
        let good: Vec<_> = (0..6)
            .map(|i| {
                let ip: IpAddr = format!("198.51.100.{i}").parse().expect("ip");
                let slot = a.connection_slot(ip).expect("good slot");
                slot.authenticated();
                slot
            })
            .collect();
        assert!(
            good.iter()
                .all(|s| !s.overflow && !s.evicted().is_cancelled())
        );
        // Every slot is held: the newest one pushes out the oldest unauthenticated one.
        assert_eq!(a.stats.snapshot().connections, 10);
        let late = a
            .connection_slot("203.0.113.9".parse().expect("ip"))
            .expect("late");
        assert!(!late.overflow);
        assert!(flood[2].evicted().is_cancelled());
        assert!(
            !handshaking.evicted().is_cancelled(),
            "older, but not the flood"
        );
        assert_eq!(a.stats.snapshot().evicted_total, 3);
        drop((flood, good, late, handshaking));
        assert_eq!(a.stats.snapshot().connections, 0);
    }
}
