//! The liveness heartbeat of every component (relay, listener, proxy, license server): its
//! event loop beats every [`HEARTBEAT_INTERVAL`] while it runs; a watchdog (systemd's, through the CLI) asks
//! how old the last beat is and stops vouching for the process when it is older than
//! [`LIVENESS_MAX_AGE`] — the loop or its task is stuck. Lock-free: one atomic store per beat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How often a running loop beats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// A beat older than this means the loop stalled (ten beats missed).
pub const LIVENESS_MAX_AGE: Duration = Duration::from_secs(10);

/// The last beat, as milliseconds after the heartbeat was created, plus one (0: never).
#[derive(Debug)]
pub struct Heartbeat {
    base: Instant,
    last: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Records a beat now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last.store(ms + 1, Ordering::Relaxed);
    }

    /// How long ago the last beat was; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }

    /// `Ok` when the last beat is at most `max_age` old; otherwise why not, naming `what`
    /// (`"the local-proxy's accept loop"`).
    ///
    /// # Errors
    /// No beat yet, or the last one is too old.
    pub fn check(&self, what: &str, max_age: Duration) -> Result<(), String> {
        match self.age() {
            Some(age) if age <= max_age => Ok(()),
            Some(age) => Err(format!(
                "{what} last ran {:.1} s ago (limit {} s): it is stalled",
                age.as_secs_f64(),
                max_age.as_secs()
            )),
            None => Err(format!("{what} has not run yet")),
        }
    }

    /// Beats every [`HEARTBEAT_INTERVAL`], forever: race it against a loop in the same task
    /// (`select!`), so the beats stop when that task stops being polled.
    pub async fn beat_forever(&self) {
        let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.beat();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn beats_age_and_checks() {
        let h = Heartbeat::default();
        assert!(
            h.check("loop", LIVENESS_MAX_AGE)
                .is_err_and(|e| e.contains("not run yet"))
        );
        let beating = tokio::spawn(async move {
            tokio::select! {
                () = h.beat_forever() => unreachable!(),
                () = tokio::time::sleep(Duration::from_secs(30)) => h,
            }
        });
        let h = beating.await.expect("task");
        assert!(h.age().is_some_and(|a| a <= HEARTBEAT_INTERVAL));
        assert_eq!(h.check("loop", LIVENESS_MAX_AGE), Ok(()));
        tokio::time::advance(LIVENESS_MAX_AGE * 2).await;
        let err = h.check("the loop", LIVENESS_MAX_AGE).expect_err("stale");
        assert!(
            err.starts_with("the loop last ran ") && err.contains("stalled"),
            "{err}"
        );
    }
}
