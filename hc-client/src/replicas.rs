//! Several relays serving one hybrid connection: the connection string's endpoint and the
//! configured replicas ([`AccessConfig::replicas`]), and every address a relay's host name
//! resolves to — one [`RelayAccess`] each. Replicas share no state, so a listener keeps a
//! control channel to every one, and a sender may use any: [`Replicas::order`] gives the
//! order to try them in — round robin, so senders spread, with the ones that recently could
//! not be reached last, so a dead replica costs one failed dial per [`DOWN_FOR`] rather than
//! one per connection.
//!
//! **Names.** A host name with several addresses (a Kubernetes headless Service: one A record
//! per replica; DNS round robin) is several replicas: each address gets an access pinned to it
//! ([`RelayAccess::with_address`]; TLS still checks the certificate against the name).
//! [`Replicas::follow`] resolves the names again every `resolve_interval` and soon after a
//! replica could not be reached, and publishes the new set ([`Replicas::subscribe`]), so a
//! replica that moves or is added is found without a restart. A resolution that fails or
//! comes back empty keeps the addresses known before (a DNS hiccup must not drop live
//! replicas); a name never resolved is dialled by name. Not expanded: IP literals, and any
//! relay reached through an egress proxy (the proxy resolves names there).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::access::{AccessConfig, AccessError, RelayAccess};
use crate::egress::Egress;

/// How long a replica that could not be reached is tried only after the others.
pub const DOWN_FOR: Duration = Duration::from_secs(5);
/// Least time between two resolutions asked for by failures.
const RESOLVE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// One replica: the configured relay it belongs to, and its access.
#[derive(Debug, Clone)]
struct Replica {
    relay: usize,
    access: Arc<RelayAccess>,
}

/// The relays of one hybrid connection.
#[derive(Debug)]
pub struct Replicas {
    /// One per configured relay, the connection string's first.
    configs: Vec<AccessConfig>,
    /// The configured relays dialled by name (descriptions, shared settings, fallbacks).
    by_name: Vec<Arc<RelayAccess>>,
    current: Mutex<Vec<Replica>>,
    /// Counts changes of `current`, for [`Replicas::subscribe`].
    changes: watch::Sender<u64>,
    down_until: Mutex<HashMap<String, Instant>>,
    next: AtomicUsize,
    /// A replica could not be reached: resolve again soon.
    failed: Notify,
}

impl Replicas {
    /// One access per configured relay, the connection string's endpoint first, each dialled
    /// by name until [`Replicas::refresh`] has resolved the names.
    ///
    /// # Errors
    /// [`AccessError`] when the settings are unusable.
    pub fn new(config: &AccessConfig) -> Result<Self, AccessError> {
        let configs = config.replicas();
        let by_name = configs
            .iter()
            .map(|c| RelayAccess::new(c.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let current = by_name
            .iter()
            .enumerate()
            .map(|(relay, access)| Replica {
                relay,
                access: access.clone(),
            })
            .collect();
        Ok(Self {
            configs,
            by_name,
            current: Mutex::new(current),
            changes: watch::Sender::new(0),
            down_until: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            failed: Notify::new(),
        })
    }

    /// Every replica's access now, in a stable order (configured relay, then address).
    pub fn current(&self) -> Vec<Arc<RelayAccess>> {
        self.replicas().iter().map(|r| r.access.clone()).collect()
    }

    fn replicas(&self) -> std::sync::MutexGuard<'_, Vec<Replica>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes whenever the set of replicas changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The connection string's relay, by name (for descriptions and settings all share).
    pub fn primary(&self) -> &Arc<RelayAccess> {
        // `new` always builds at least the connection string's access.
        &self.by_name[0]
    }

    /// The accesses in the order to try them for a connection that prefers replica
    /// `preferred` (modulo their number; None: the next in round robin); the ones recently
    /// unreachable last.
    pub fn order(&self, preferred: Option<usize>) -> Vec<Arc<RelayAccess>> {
        let all = self.current();
        let n = all.len().max(1);
        let start = preferred.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed)) % n;
        let now = Instant::now();
        let down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut order: Vec<Arc<RelayAccess>> = (0..all.len())
            .map(|i| all[(start + i) % n].clone())
            .collect();
        order.sort_by_key(|a| down.get(&a.describe()).is_some_and(|until| *until > now));
        order
    }

    /// The replica a connection preferring `preferred` belongs on (modulo their number).
    pub fn home(&self, preferred: usize) -> Arc<RelayAccess> {
        let current = self.replicas();
        match current.get(preferred % current.len().max(1)) {
            Some(r) => r.access.clone(),
            None => self.primary().clone(),
        }
    }

    /// `access` could not be reached (or answered again: `reachable`). An unreachable
    /// replica may have moved: the names are resolved again soon.
    pub fn report(&self, access: &RelayAccess, reachable: bool) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reachable {
            down.remove(&access.describe());
        } else {
            down.insert(access.describe(), Instant::now() + DOWN_FOR);
            self.failed.notify_one();
        }
    }

    /// Resolves the relays' host names again and publishes the new set of replicas if it
    /// changed; returns whether it did.
    pub async fn refresh(&self) -> bool {
        let before = self.replicas().clone();
        let mut next = Vec::new();
        for (relay, config) in self.configs.iter().enumerate() {
            let known = || before.iter().filter(|r| r.relay == relay).cloned();
            let endpoint = &config.connection.endpoint;
            let bare = endpoint.host.trim_start_matches('[').trim_end_matches(']');
            if config.egress != Egress::Direct || bare.parse::<IpAddr>().is_ok() {
                next.extend(known());
                continue;
            }
            let addresses = match config.resolver.addresses(bare, endpoint.port).await {
                Ok(addresses) if !addresses.is_empty() => addresses,
                Ok(_) => {
                    tracing::warn!(
                        "relay host {bare} resolved to no address; keeping the known ones"
                    );
                    next.extend(known());
                    continue;
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot resolve relay host {bare}: {e}; keeping the known addresses"
                    );
                    next.extend(known());
                    continue;
                }
            };
            for address in addresses {
                let same = known().find(|r| r.access.address() == Some(address));
                match same {
                    Some(replica) => next.push(replica),
                    None => match self.pinned(relay, address) {
                        Ok(access) => next.push(Replica { relay, access }),
                        Err(e) => tracing::warn!("relay {} at {address}: {e}", endpoint.host),
                    },
                }
            }
        }
        if next.is_empty() {
            next = before.clone();
        }
        let keys = |v: &[Replica]| v.iter().map(|r| r.access.describe()).collect::<Vec<_>>();
        if keys(&next) == keys(&before) {
            return false;
        }
        tracing::info!("relay replicas: {}", keys(&next).join(", "));
        *self.replicas() = next;
        self.changes.send_modify(|n| *n += 1);
        true
    }

    fn pinned(&self, relay: usize, address: SocketAddr) -> Result<Arc<RelayAccess>, AccessError> {
        let access = RelayAccess::new(self.configs[relay].clone())?;
        Ok(Arc::new(access.with_address(address)))
    }

    /// Re-resolves the relays' names every `resolve_interval`, and soon after a replica could
    /// not be reached, until `stop`.
    pub async fn follow(&self, stop: &CancellationToken) {
        let interval = self.configs[0].resolve_interval.max(RESOLVE_AT_MOST_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
                _ = self.failed.notified() => {}
            }
            self.refresh().await;
            // Failures arriving in a burst lead to one resolution.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RESOLVE_AT_MOST_EVERY) => {}
            }
        }
    }

    /// The configured relays, for logs: `wss://a:443/$hc/hc, wss://b:443/$hc/hc`.
    pub fn describe(&self) -> String {
        let all: Vec<String> = self.by_name.iter().map(|a| a.describe()).collect();
        all.join(", ")
    }

    /// How many replicas there are now.
    pub fn len(&self) -> usize {
        self.replicas().len()
    }

    /// Never true: there is always at least the connection string's replica.
    pub fn is_empty(&self) -> bool {
        self.replicas().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use hc_protocol::RelayEndpoint;

    use super::*;
    use crate::resolve::{Resolver, Table};

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().expect("addr")).collect()
    }

    fn config(relays: &[&str]) -> AccessConfig {
        let mut config = AccessConfig::new(
            "Endpoint=sb://a.test/;SharedAccessKeyName=n;SharedAccessKey=k;EntityPath=hc"
                .parse()
                .expect("cs"),
        );
        config.relays = relays
            .iter()
            .map(|r| RelayEndpoint::parse(r).expect("endpoint"))
            .collect();
        config
    }

    fn described(accesses: &[Arc<RelayAccess>]) -> Vec<String> {
        accesses.iter().map(|a| a.describe()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_with_unreachable_replicas_last_for_a_while() {
        let r = Replicas::new(&config(&["sb://b.test/", "sb://c.test:8443/"])).expect("replicas");
        let (a, b, c) = (
            "wss://a.test:443/$hc/hc",
            "wss://b.test:443/$hc/hc",
            "wss://c.test:8443/$hc/hc",
        );
        assert_eq!(described(&r.current()), [a, b, c]);
        assert_eq!(described(&r.order(None)), [a, b, c]);
        assert_eq!(described(&r.order(None)), [b, c, a]);
        assert_eq!(described(&r.order(Some(2))), [c, a, b]);
        r.report(&r.home(0), false);
        assert_eq!(described(&r.order(Some(0))), [b, c, a]);
        tokio::time::advance(DOWN_FOR + Duration::from_millis(1)).await;
        assert_eq!(described(&r.order(Some(0))), [a, b, c]);
        r.report(&r.home(1), false);
        r.report(&r.home(1), true);
        assert_eq!(described(&r.order(Some(1))), [b, c, a]);
    }

    #[tokio::test]
    async fn a_name_with_several_addresses_is_several_replicas_followed_over_time() {
        let table = Table::default();
        let mut config = config(&["sb://10.0.0.9:9443/"]);
        config.resolver = Resolver::new(table.clone());
        let r = Replicas::new(&config).expect("replicas");
        let changes = r.subscribe();

        // Never resolved yet: dialled by name; the IP literal is never resolved.
        assert!(!r.refresh().await);
        assert_eq!(
            described(&r.current()),
            ["wss://a.test:443/$hc/hc", "wss://10.0.0.9:9443/$hc/hc"]
        );

        table.set(
            "a.test",
            &addrs(&["10.0.0.2:443", "10.0.0.1:443", "10.0.0.2:443"]),
        );
        assert!(r.refresh().await);
        let two = r.current();
        assert_eq!(
            described(&two),
            [
                "wss://a.test:443/$hc/hc at 10.0.0.1:443",
                "wss://a.test:443/$hc/hc at 10.0.0.2:443",
                "wss://10.0.0.9:9443/$hc/hc",
            ]
        );
        assert_eq!(two[0].endpoint().host, "a.test", "TLS checks the name");
        assert_eq!(*changes.borrow(), 1);

        // Same answer: nothing changes, the accesses are kept.
        assert!(!r.refresh().await);
        assert!(Arc::ptr_eq(&two[0], &r.current()[0]));

        // One moves, one is added; a failed resolution keeps what is known.
        table.set(
            "a.test",
            &addrs(&["10.0.0.1:443", "10.0.0.3:443", "10.0.0.4:443"]),
        );
        assert!(r.refresh().await);
        assert_eq!(r.len(), 4);
        assert!(Arc::ptr_eq(&two[0], &r.current()[0]));
        table.remove("a.test");
        assert!(!r.refresh().await);
        assert_eq!(r.len(), 4);
        assert_eq!(*changes.borrow(), 2);
    }

    #[tokio::test]
    async fn names_behind_an_egress_proxy_are_left_to_the_proxy() {
        let table = Table::default();
        table.set("a.test", &addrs(&["10.0.0.1:443", "10.0.0.2:443"]));
        let mut config = config(&[]);
        config.resolver = Resolver::new(table);
        config.egress = Egress::Socks5 {
            addr: "127.0.0.1:1080".into(),
            auth: None,
        };
        let r = Replicas::new(&config).expect("replicas");
        assert!(!r.refresh().await);
        assert_eq!(described(&r.current()), ["wss://a.test:443/$hc/hc"]);
    }
}
