//! Service-manager integration (systemd `Type=notify` with `WatchdogSec=`): a component says
//! `READY=1` once its [`Liveness`] check first passes (its listener is bound and it serves, or
//! its main loop runs),
//! pings the watchdog (`WATCHDOG=1`) at half the manager's interval **only while that check
//! passes**, and says `STOPPING=1` when shutdown begins. A stalled event loop therefore stops
//! the pings and the manager restarts the service (`Restart=on-failure`): the job of MxNet2's
//! failure-protection service (manual section 5). Messages go through the `sd-notify` crate.
//! On Windows the same notices feed the service's own hang watchdog instead
//! ([`report_to`], [`crate::hang_watchdog`]). Without either (not under systemd nor the SCM)
//! nothing is sent and no task runs.

mod liveness;
mod notice;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use liveness::Checker;
pub use liveness::{CheckFn, CheckFuture, Liveness, Verdict};
use notice::Sender;
#[cfg(unix)]
use notice::Systemd;
pub use notice::{Notice, Notifier};

/// Sends `READY=1` with `status` when running under systemd; does nothing otherwise.
pub fn notify_ready(status: &str) {
    Service::from_env().send(&Notice::Ready(status.to_owned()));
}

/// Sends `STOPPING=1` when running under systemd; does nothing otherwise.
pub fn notify_stopping() {
    Service::from_env().send(&Notice::Stopping("stopping".to_owned()));
}

/// How often readiness is checked while waiting for the component to become live: from the
/// first value, doubling up to the second.
const READY_POLL: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(500));

/// A manager this process reports to instead of systemd, with its watchdog interval: the
/// Windows service's hang watchdog ([`crate::hang_watchdog`]). Set once, before the component
/// starts.
static PROCESS_MANAGER: OnceLock<(Arc<dyn Notifier>, Duration)> = OnceLock::new();

/// Makes [`Service::from_env`] report to `notifier` with this watchdog interval for the rest
/// of the process; false if a manager was already set (the first one stays).
pub fn report_to(notifier: Arc<dyn Notifier>, watchdog: Duration) -> bool {
    PROCESS_MANAGER.set((notifier, watchdog)).is_ok()
}

/// The service manager this process runs under, if any, and its watchdog interval.
pub struct Service {
    notifier: Option<Arc<dyn Notifier>>,
    watchdog: Option<Duration>,
}

impl Service {
    /// The manager set by [`report_to`], else systemd when `NOTIFY_SOCKET` is set (Unix
    /// only), with the watchdog interval from `WATCHDOG_USEC` (when `WATCHDOG_PID`, if set, is
    /// this process); otherwise none.
    pub fn from_env() -> Self {
        if let Some((notifier, watchdog)) = PROCESS_MANAGER.get() {
            return Self::new(notifier.clone(), Some(*watchdog));
        }
        #[cfg(unix)]
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return Self::new(Arc::new(Systemd), sd_notify::watchdog_enabled());
        }
        Self {
            notifier: None,
            watchdog: None,
        }
    }

    /// A service manager reached through `notifier` with this watchdog interval (tests).
    pub fn new(notifier: Arc<dyn Notifier>, watchdog: Option<Duration>) -> Self {
        Self {
            notifier: Some(notifier),
            watchdog: watchdog.filter(|w| !w.is_zero()),
        }
    }

    /// Whether a service manager listens.
    pub fn is_supervised(&self) -> bool {
        self.notifier.is_some()
    }

    /// The watchdog interval, when the manager set one.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, notice: &Notice) {
        if let Some(notifier) = &self.notifier
            && let Err(e) = notifier.notify(notice)
        {
            tracing::warn!("cannot notify the service manager: {e}");
        }
    }

    /// Spawns the task that tells the service manager about the component: `READY=1` with
    /// `status` once `liveness` first passes; then, with a watchdog interval, `WATCHDOG=1` at
    /// half of it while `liveness` passes (a check that does not answer within a quarter of
    /// the interval fails); `STOPPING=1` as soon as `shutdown` is cancelled, then it ends. Not
    /// under a service manager, nothing is spawned.
    pub fn supervise(
        self,
        liveness: Arc<dyn Liveness>,
        status: String,
        shutdown: CancellationToken,
    ) -> Supervision {
        let Some(notifier) = self.notifier else {
            return Supervision(None);
        };
        let task = tokio::spawn(supervise(
            notifier,
            self.watchdog,
            liveness,
            status,
            shutdown,
        ));
        Supervision(Some(task))
    }
}

/// The running supervision task, if any.
#[must_use = "await `finish` so STOPPING=1 is sent before the process exits"]
pub struct Supervision(Option<JoinHandle<()>>);

impl Supervision {
    /// Waits (at most `limit`) for the task to end; it ends once shutdown was cancelled.
    pub async fn finish(self, limit: Duration) {
        if let Some(task) = self.0
            && tokio::time::timeout(limit, task).await.is_err()
        {
            tracing::debug!("service notifications still running at exit");
        }
    }
}

async fn supervise(
    notifier: Arc<dyn Notifier>,
    watchdog: Option<Duration>,
    liveness: Arc<dyn Liveness>,
    status: String,
    shutdown: CancellationToken,
) {
    let sender = Sender::new(notifier);
    let mut checker = Checker::new(liveness, watchdog.map_or(READY_POLL.1, |w| w / 4));
    if wait_live(&mut checker, &shutdown).await {
        sender.send(&Notice::Ready(status));
        tracing::debug!("service manager notified: ready");
        if let Some(interval) = watchdog {
            tracing::debug!(?interval, "watchdog: pinging while live");
            ping_while_live(&sender, &mut checker, interval / 2, &shutdown).await;
        } else {
            shutdown.cancelled().await;
        }
    }
    sender.send(&Notice::Stopping(
        "stopping: draining connections".to_owned(),
    ));
}

/// Checks until the component is live (true) or shutdown begins (false).
async fn wait_live(checker: &mut Checker, shutdown: &CancellationToken) -> bool {
    let mut delay = READY_POLL.0;
    loop {
        let verdict = tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            v = checker.check() => v,
        };
        match verdict {
            Ok(()) => return true,
            Err(reason) => tracing::debug!("not ready yet: {reason}"),
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(READY_POLL.1);
    }
}

/// Pings every `period` while the check passes; logs once when it stops pinging and why, and
/// once when it resumes.
async fn ping_while_live(
    sender: &Sender,
    checker: &mut Checker,
    period: Duration,
    shutdown: &CancellationToken,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopped: Option<String> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let verdict = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            v = checker.check() => v,
        };
        match verdict {
            Ok(()) => {
                sender.send(&Notice::Watchdog);
                if let Some(reason) = stopped.take() {
                    tracing::info!("watchdog: live again, pinging resumed (was: {reason})");
                }
            }
            Err(reason) => {
                if stopped.is_none() {
                    tracing::error!(
                        "watchdog: not live, pings stopped so the service manager restarts \
                         this service: {reason}"
                    );
                    stopped = Some(reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
