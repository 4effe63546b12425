//! A hang watchdog inside the process, for a service manager that has none: Windows' Service
//! Control Manager restarts a service that exits, not one that hangs (MxNet2 ships
//! `Mxnet2_detect` for that, manual section 5). The component's supervision
//! ([`crate::service`]) ticks a [`Heartbeat`] where it would ping systemd's watchdog: at READY,
//! then every half interval while its liveness check passes, from a task of the component's
//! runtime. A plain OS thread ([`spawn`]) checks the heartbeat's age; past the limit it exits
//! the process with [`EXIT_HUNG`], which the SCM counts as a failure, so the failure actions
//! `service install` sets restart the service. STOPPING disarms it: a drain is not a hang.
//!
//! The logic is platform-neutral and takes its clock, sleep and exit as arguments ([`watch`]);
//! only [`spawn`] uses the real ones.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::service::{Notice, Notifier};

/// The process's exit code when the heartbeat stalled (`EX_SOFTWARE`).
pub const EXIT_HUNG: i32 = 70;

/// How often [`spawn`]'s thread looks at the heartbeat.
const POLL: Duration = Duration::from_secs(1);

/// The heartbeat's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// Not ready yet: nothing to watch.
    Unarmed,
    /// Last ticked at.
    At(Instant),
    /// Stopping: nothing to watch any more.
    Disarmed,
}

/// When the component last proved live.
#[derive(Debug)]
pub struct Heartbeat(Mutex<Beat>);

impl Default for Heartbeat {
    fn default() -> Self {
        Self(Mutex::new(Beat::Unarmed))
    }
}

impl Heartbeat {
    fn with<T>(&self, f: impl FnOnce(&mut Beat) -> T) -> T {
        // A plain value: a panic elsewhere cannot leave it half-written.
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The component proved live at `now` (arms the watchdog, unless disarmed).
    pub fn tick(&self, now: Instant) {
        self.with(|beat| {
            if *beat != Beat::Disarmed {
                *beat = Beat::At(now);
            }
        });
    }

    /// The component is stopping: no more ticks are expected.
    pub fn disarm(&self) {
        self.with(|beat| *beat = Beat::Disarmed);
    }

    /// The heartbeat's age at `now` when armed and older than `limit`.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Option<Duration> {
        match self.with(|beat| *beat) {
            Beat::At(at) => Some(now.saturating_duration_since(at)).filter(|age| *age > limit),
            Beat::Unarmed | Beat::Disarmed => None,
        }
    }
}

/// The supervision's notices as heartbeat ticks: what systemd would receive, fed to the hang
/// watchdog instead.
pub struct HeartbeatNotifier(pub Arc<Heartbeat>);

impl Notifier for HeartbeatNotifier {
    fn notify(&self, notice: &Notice) -> std::io::Result<()> {
        match notice {
            Notice::Ready(_) | Notice::Watchdog => self.0.tick(Instant::now()),
            Notice::Stopping(_) => self.0.disarm(),
        }
        Ok(())
    }
}

/// Checks `heartbeat` every `poll` (by `sleep`, at `clock`'s time) until it is older than
/// `limit`, then logs why and calls `exit` with [`EXIT_HUNG`]; returns if `exit` does.
pub fn watch(
    heartbeat: &Heartbeat,
    limit: Duration,
    poll: Duration,
    clock: impl Fn() -> Instant,
    sleep: impl Fn(Duration),
    exit: impl FnOnce(i32),
) {
    loop {
        sleep(poll);
        if let Some(age) = heartbeat.stalled(clock(), limit) {
            tracing::error!(
                "watchdog: no heartbeat for {:.1} s (limit {} s): the component is hung or not \
                 live; exiting with code {EXIT_HUNG} so the service is restarted",
                age.as_secs_f64(),
                limit.as_secs()
            );
            exit(EXIT_HUNG);
            return;
        }
    }
}

/// Starts the watching thread with the real clock; a stall ends the process.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn(heartbeat: Arc<Heartbeat>, limit: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("hang-watchdog".into())
        .spawn(move || {
            watch(
                &heartbeat,
                limit,
                POLL,
                Instant::now,
                std::thread::sleep,
                |code| std::process::exit(code),
            );
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    #[test]
    fn armed_by_a_tick_stalled_past_the_limit_disarmed_by_stopping() {
        let t0 = Instant::now();
        let beat = Heartbeat::default();
        assert_eq!(beat.stalled(t0 + LIMIT * 10, LIMIT), None, "not armed yet");
        beat.tick(t0);
        assert_eq!(beat.stalled(t0 + LIMIT, LIMIT), None, "at the limit");
        let late = LIMIT + Duration::from_millis(1);
        assert_eq!(beat.stalled(t0 + late, LIMIT), Some(late));
        beat.tick(t0 + LIMIT);
        assert_eq!(beat.stalled(t0 + late, LIMIT), None, "a tick resets it");
        beat.disarm();
        beat.tick(t0 + LIMIT * 2);
        assert_eq!(beat.stalled(t0 + LIMIT * 10, LIMIT), None, "stopping");
    }

    #[test]
    fn the_supervision_notices_drive_the_heartbeat() {
        let beat = Arc::new(Heartbeat::default());
        let notifier = HeartbeatNotifier(beat.clone());
        let far = Instant::now() + Duration::from_secs(3600);
        notifier
            .notify(&Notice::Ready("serving".into()))
            .expect("ok");
        assert!(beat.stalled(far, LIMIT).is_some(), "READY arms it");
        notifier.notify(&Notice::Watchdog).expect("ok");
        assert!(beat.stalled(Instant::now(), LIMIT).is_none());
        notifier
            .notify(&Notice::Stopping("draining".into()))
            .expect("ok");
        assert!(beat.stalled(far, LIMIT).is_none(), "STOPPING disarms it");
    }

    /// A fake clock that `sleep` advances: the watch runs at once, in order.
    struct FakeTime(Mutex<Instant>);

    impl FakeTime {
        fn now(&self) -> Instant {
            *self.0.lock().expect("lock")
        }
        fn sleep(&self, d: Duration) {
            *self.0.lock().expect("lock") += d;
        }
    }

    #[test]
    fn a_heartbeat_that_stops_ticking_exits_non_zero_after_the_limit() {
        let t0 = Instant::now();
        let time = Arc::new(FakeTime(Mutex::new(t0)));
        let beat = Arc::new(Heartbeat::default());
        beat.tick(t0);
        let (exited, exits) = mpsc::channel();
        let watcher = {
            let (time, beat) = (time.clone(), beat.clone());
            std::thread::spawn(move || {
                watch(
                    &beat,
                    LIMIT,
                    Duration::from_secs(1),
                    || time.now(),
                    |d| time.sleep(d),
                    |code| exited.send((code, time.now())).expect("send"),
                );
            })
        };
        let (code, at) = exits
            .recv_timeout(test_support::LIMIT)
            .expect("the watchdog exits");
        watcher.join().expect("watch returns after exit");
        assert_eq!(code, EXIT_HUNG);
        assert_ne!(code, 0);
        assert_eq!(
            at - t0,
            LIMIT + Duration::from_secs(1),
            "first poll past the limit"
        );
    }

    #[test]
    fn a_ticking_heartbeat_never_exits() {
        let t0 = Instant::now();
        let time = Arc::new(FakeTime(Mutex::new(t0)));
        let beat = Heartbeat::default();
        beat.tick(t0);
        let polls = std::cell::Cell::new(0u32);
        let exited = std::cell::Cell::new(false);
        // The runtime ticks at every poll for 10 limits' worth of polls; then it stops, so the
        // loop ends (bounded) and the exit comes only after the ticks stopped.
        watch(
            &beat,
            LIMIT,
            Duration::from_secs(1),
            || time.now(),
            |d| {
                time.sleep(d);
                polls.set(polls.get() + 1);
                if polls.get() <= 300 {
                    beat.tick(time.now());
                }
            },
            |_| exited.set(true),
        );
        assert!(exited.get());
        assert_eq!(
            time.now() - t0,
            Duration::from_secs(300) + LIMIT + Duration::from_secs(1)
        );
    }
}
