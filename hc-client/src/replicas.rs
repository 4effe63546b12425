//! Several relays serving one hybrid connection: the connection string's endpoint and the
//! configured replicas ([`AccessConfig::replicas`]), one [`RelayAccess`] each. Replicas share
//! no state, so a listener keeps a control channel to every one, and a sender may use any:
//! [`Replicas::order`] gives the order to try them in — round robin, so senders spread, with
//! the ones that recently could not be reached last, so a dead replica costs one failed dial
//! per [`DOWN_FOR`] rather than one per connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::access::{AccessConfig, AccessError, RelayAccess};

/// How long a replica that could not be reached is tried only after the others.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// The relays of one hybrid connection.
#[derive(Debug)]
pub struct Replicas {
    accesses: Vec<Arc<RelayAccess>>,
    down_until: Mutex<Vec<Option<Instant>>>,
    next: AtomicUsize,
}

impl Replicas {
    /// One access per replica of `config`, the connection string's endpoint first.
    ///
    /// # Errors
    /// [`AccessError`] when the settings are unusable.
    pub fn new(config: &AccessConfig) -> Result<Self, AccessError> {
        let accesses = config
            .replicas()
            .into_iter()
            .map(|c| RelayAccess::new(c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            down_until: Mutex::new(vec![None; accesses.len()]),
            accesses,
            next: AtomicUsize::new(0),
        })
    }

    /// Every replica's access, the connection string's first.
    pub fn all(&self) -> &[Arc<RelayAccess>] {
        &self.accesses
    }

    /// The connection string's replica (for descriptions and settings all share).
    pub fn primary(&self) -> &Arc<RelayAccess> {
        // `new` always builds at least the connection string's access.
        &self.accesses[0]
    }

    /// The replicas by index in the order to try them for a connection that prefers
    /// `preferred` (None: the next in round robin); the ones recently unreachable last.
    pub fn order(&self, preferred: Option<usize>) -> Vec<usize> {
        let n = self.accesses.len();
        let start = preferred.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed)) % n;
        let now = Instant::now();
        let down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        order.sort_by_key(|&i| down[i].is_some_and(|until| until > now));
        order
    }

    /// Replica `index` could not be reached (or answered again: `reachable`).
    pub fn report(&self, index: usize, reachable: bool) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = down.get_mut(index) {
            *slot = (!reachable).then(|| Instant::now() + DOWN_FOR);
        }
    }

    /// The access of replica `index` (modulo the number of replicas).
    pub fn get(&self, index: usize) -> &Arc<RelayAccess> {
        &self.accesses[index % self.accesses.len()]
    }

    /// The relays, for logs: `wss://a:443/$hc/hc, wss://b:443/$hc/hc`.
    pub fn describe(&self) -> String {
        let all: Vec<String> = self.accesses.iter().map(|a| a.describe()).collect();
        all.join(", ")
    }

    /// How many replicas there are.
    pub fn len(&self) -> usize {
        self.accesses.len()
    }

    /// Never true: there is always the connection string's replica.
    pub fn is_empty(&self) -> bool {
        self.accesses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use hc_protocol::RelayEndpoint;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn round_robin_with_unreachable_replicas_last_for_a_while() {
        let mut config = AccessConfig::new(
            "Endpoint=sb://a.test/;SharedAccessKeyName=n;SharedAccessKey=k;EntityPath=hc"
                .parse()
                .expect("cs"),
        );
        config.relays = vec![
            RelayEndpoint::parse("sb://b.test/").expect("b"),
            RelayEndpoint::parse("sb://c.test:8443/").expect("c"),
        ];
        let r = Replicas::new(&config).expect("replicas");
        let hosts: Vec<String> = r.all().iter().map(|a| a.describe()).collect();
        assert_eq!(
            hosts,
            [
                "wss://a.test:443/$hc/hc",
                "wss://b.test:443/$hc/hc",
                "wss://c.test:8443/$hc/hc"
            ]
        );
        assert_eq!(r.order(None), [0, 1, 2]);
        assert_eq!(r.order(None), [1, 2, 0]);
        assert_eq!(r.order(Some(2)), [2, 0, 1]);
        r.report(0, false);
        assert_eq!(r.order(Some(0)), [1, 2, 0]);
        tokio::time::advance(DOWN_FOR + Duration::from_millis(1)).await;
        assert_eq!(r.order(Some(0)), [0, 1, 2]);
        r.report(1, false);
        r.report(1, true);
        assert_eq!(r.order(Some(1)), [1, 2, 0]);
    }
}
