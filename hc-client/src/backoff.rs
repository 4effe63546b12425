//! Reconnect delays: the first retry is immediate, then exponential from `base` with full
//! jitter (a uniform delay between zero and the cap), the cap doubling up to `max`. Full jitter
//! spreads a fleet of listeners that lost the same relay at the same moment. The schedule is
//! reset once a connection has stayed up for a while, so one flap does not cost 30 s.
//!
//! [`Reconnect`] is the schedule of a connection that must come back fast (the listener's
//! control channel, the proxy's pooled connections): a relay that cannot be reached at all is
//! retried at most [`UNREACHABLE_MAX`] apart (a retry costs one TCP connect, and a call must
//! succeed within 2 s of the relay being back, however often it failed before), and so is a
//! hybrid connection without a listener yet (it is reconnecting); a relay that answers and
//! refuses otherwise backs off to the full cap.

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

/// Longest wait between attempts while the relay cannot be reached at all.
pub const UNREACHABLE_MAX: Duration = Duration::from_millis(1500);

/// A connection that stayed up this long proved the relay works: the schedule starts over.
pub const STABLE_AFTER: Duration = Duration::from_secs(5);

/// Reconnect delays of a long-lived relay connection (see the module documentation).
#[derive(Debug, Clone)]
pub struct Reconnect {
    refused: Backoff,
    unreachable: Backoff,
}

impl Reconnect {
    /// Backs off to `max` after refusals and early session ends.
    pub fn new(max: Duration) -> Self {
        Self {
            refused: Backoff::new(Duration::from_secs(1), max),
            unreachable: Backoff::new(Duration::from_millis(250), UNREACHABLE_MAX),
        }
    }

    /// The delay after a failed attempt; `unreachable`: the relay could not be reached (no
    /// answer, connection refused or reset), as opposed to an answer refusing us.
    pub fn after_failure(&mut self, unreachable: bool) -> Duration {
        if unreachable {
            self.unreachable.next_delay()
        } else {
            self.refused.next_delay()
        }
    }

    /// The delay after a session that lasted `lasted` ended: at once after a session that
    /// proved the relay works, else on the short schedule, which sessions that keep ending
    /// early do not reset (at most [`UNREACHABLE_MAX`] apart: a relay restarting twice in a
    /// row must not cost more).
    pub fn after_session(&mut self, lasted: Duration) -> Duration {
        if lasted >= STABLE_AFTER {
            self.refused.reset();
            self.unreachable.reset();
        }
        self.unreachable.next_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_relay_is_retried_often_and_a_refusing_one_backs_off() {
        let mut r = Reconnect::new(Duration::from_secs(30));
        for _ in 0..20 {
            assert!(r.after_failure(true) <= UNREACHABLE_MAX);
        }
        assert_eq!(r.after_session(STABLE_AFTER), Duration::ZERO);
        for _ in 0..6 {
            r.after_failure(false);
        }
        assert_eq!(r.refused.cap(), Duration::from_secs(30));
        // Still quick when the relay is down, whatever failed before.
        assert!(r.after_failure(true) <= UNREACHABLE_MAX);
        // Sessions that keep ending early do not reset the short schedule, nor exceed it.
        for _ in 0..10 {
            assert!(r.after_session(Duration::from_secs(1)) <= UNREACHABLE_MAX);
        }
        assert_eq!(r.unreachable.cap(), UNREACHABLE_MAX);
        assert_eq!(r.refused.cap(), Duration::from_secs(30));
    }

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
