//! Reconnect delays: the first retry is immediate, then exponential from `base` with full
//! jitter (a uniform delay between zero and the cap), the cap doubling up to `max`. Full jitter
//! spreads a fleet of listeners that lost the same relay at the same moment. The schedule is
//! reset once a connection has stayed up for a while, so one flap does not cost 30 s.

use std::time::Duration;

use rand::Rng as _;

/// Exponential back-off with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 0, then up to 1 s, 2 s, 4 s … capped at 30 s (the SDKs retry at 0, 1, 2, 5, 10, 30 s).
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    /// A schedule starting at `base` and capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The upper bound of the next delay (zero for the first retry).
    pub fn cap(&self) -> Duration {
        match self.attempt {
            0 => Duration::ZERO,
            n => {
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                self.base.saturating_mul(factor).min(self.max)
            }
        }
    }

    /// The next delay: uniform in `[0, cap]`, then the cap grows.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.cap();
        self.attempt = self.attempt.saturating_add(1);
        if cap.is_zero() {
            return cap;
        }
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// Starts over (after a connection stayed up).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Retries since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_doubling_cap_and_reset() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(), Duration::ZERO);
        let caps = [1, 2, 4, 8, 16, 30, 30, 30];
        for cap in caps {
            assert_eq!(b.cap(), Duration::from_secs(cap));
            for _ in 0..50 {
                let mut probe = b.clone();
                assert!(probe.next_delay() <= Duration::from_secs(cap));
            }
            b.next_delay();
        }
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.cap(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
        assert_eq!(b.attempts(), 1);
    }
}
