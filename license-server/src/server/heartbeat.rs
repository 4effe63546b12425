//! The engine's liveness signal: the server's periodic sweep (every [`SWEEP_INTERVAL`]) takes
//! the engine's lock, removes what timed out and then beats. A service manager's watchdog
//! pinger asks [`LicenseServer::is_live`](super::LicenseServer::is_live) and stops pinging
//! when the beat is too old — the accept loop stalled, or the engine's lock is stuck — so the
//! service is restarted (MxNet2's failure-protection service, section 5 of the manual).
//!
//! [`SWEEP_INTERVAL`]: super::SWEEP_INTERVAL

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use license_core::clock::Instant;

/// The last beat, as milliseconds since the server was created (0: never).
#[derive(Debug)]
pub(crate) struct Heartbeat {
    base: Instant,
    last: AtomicU64,
}

impl Heartbeat {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    pub(crate) fn beat(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms.max(1), Ordering::Relaxed);
    }

    /// How long ago the last beat was; `None` before the first.
    pub(crate) fn age(&self) -> Option<Duration> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn age_grows_until_the_next_beat() {
        let h = Heartbeat::new();
        assert_eq!(h.age(), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        h.beat();
        assert_eq!(h.age(), Some(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(h.age(), Some(Duration::from_secs(7)));
        h.beat();
        assert_eq!(h.age(), Some(Duration::ZERO));
    }
}
