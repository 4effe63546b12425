//! Time. The engine never reads a clock itself: callers pass the monotonic "now"
//! (`tokio::time::Instant`, so `#[tokio::test(start_paused = true)]` drives every timeout), and
//! request time-stamps (Unix milliseconds) are checked against an injectable [`WallClock`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// A source of wall-clock time in Unix milliseconds.
pub trait WallClock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn unix_millis(&self) -> u64;
}

/// Shared handle to a wall clock.
pub type SharedWallClock = Arc<dyn WallClock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn unix_millis(&self) -> u64 {
        system_unix_millis()
    }
}

/// The system time in Unix milliseconds (0 if the clock is before 1970).
pub fn system_unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A wall clock that follows tokio's (pausable) clock from a fixed starting point, so tests
/// that advance tokio time also advance request time-stamps.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base_millis: u64,
    base: Instant,
}

impl TokioClock {
    /// Starts at the current system time.
    pub fn new() -> Self {
        Self::starting_at(system_unix_millis())
    }

    /// Starts at `base_millis` now.
    pub fn starting_at(base_millis: u64) -> Self {
        Self {
            base_millis,
            base: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl WallClock for TokioClock {
    fn unix_millis(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_millis.saturating_add(elapsed)
    }
}

/// A wall clock shifted from another by a fixed offset (a client whose clock is wrong).
#[derive(Debug, Clone)]
pub struct SkewedClock {
    inner: SharedWallClock,
    ahead: bool,
    offset: Duration,
}

impl SkewedClock {
    /// `inner` moved `offset` into the future (`ahead`) or into the past.
    pub fn new(inner: SharedWallClock, offset: Duration, ahead: bool) -> Self {
        Self {
            inner,
            ahead,
            offset,
        }
    }
}

impl WallClock for SkewedClock {
    fn unix_millis(&self) -> u64 {
        let now = self.inner.unix_millis();
        let offset = u64::try_from(self.offset.as_millis()).unwrap_or(u64::MAX);
        if self.ahead {
            now.saturating_add(offset)
        } else {
            now.saturating_sub(offset)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::starting_at(1_000);
        assert_eq!(clock.unix_millis(), 1_000);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(clock.unix_millis(), 62_000);
        let skewed = SkewedClock::new(Arc::new(clock), Duration::from_secs(2), false);
        assert_eq!(skewed.unix_millis(), 60_000);
    }
}
