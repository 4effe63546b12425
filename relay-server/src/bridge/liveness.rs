//! The bridge's sense of time and of each side's responsiveness: when the last frame passed
//! (the idle timeout), which side owes an answer to data it was sent and since when (the
//! peer-response timeout), and the watchdog that halts the bridge when either runs out or the
//! relay's drain deadline passes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::{BridgeSettings, Halt};

/// Time of the last frame, in milliseconds since the bridge started.
pub(super) struct Activity {
    pub(super) start: Instant,
    pub(super) last_ms: AtomicU64,
    /// Wakes the watchdog when a side starts owing an answer.
    pub(super) owed: Notify,
    /// Whether sides owe answers at all (a peer-response timeout is set).
    pub(super) liveness: bool,
}

impl Activity {
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    pub(super) fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(super) fn last(&self) -> Instant {
        self.at(self.last_ms.load(Ordering::Relaxed))
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }
}

/// Nothing owed.
const NOT_OWED: u64 = u64::MAX;

/// What the relay knows of one side's responsiveness.
pub(super) struct Peer {
    /// `sender` or `listener`, for reasons.
    pub(super) name: &'static str,
    /// Since when (ms since the bridge started) data sent to it is unanswered.
    owed_since: AtomicU64,
    /// It sent its Close: it owes nothing any more (a closing peer answers no pings).
    pub(super) finished: AtomicBool,
}

impl Peer {
    pub(super) fn new(name: &'static str) -> Self {
        Self {
            name,
            owed_since: AtomicU64::new(NOT_OWED),
            finished: AtomicBool::new(false),
        }
    }

    /// Anything from the side answers what it owed.
    pub(super) fn heard(&self) {
        self.owed_since.store(NOT_OWED, Ordering::Relaxed);
    }

    /// Data goes to the side: it owes an answer from now, unless it did already. True when
    /// this starts a debt (the relay then pings it).
    pub(super) fn owe(&self, activity: &Activity) -> bool {
        if !activity.liveness || self.finished.load(Ordering::Relaxed) {
            return false;
        }
        let started = self
            .owed_since
            .compare_exchange(
                NOT_OWED,
                activity.now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if started {
            activity.owed.notify_one();
        }
        started
    }

    /// When its debt runs out, if it owes one.
    pub(super) fn due(&self, activity: &Activity, limit: Duration) -> Option<Instant> {
        let since = self.owed_since.load(Ordering::Relaxed);
        (since != NOT_OWED && !self.finished.load(Ordering::Relaxed))
            .then(|| activity.at(since) + limit)
    }
}

/// Halts the bridge when it has been idle too long, a side owes an answer too long, or the
/// relay's drain deadline passed.
pub(super) async fn watchdog(
    activity: &Activity,
    peers: &[Peer],
    halt: &Halt,
    settings: &BridgeSettings,
) {
    let respond = settings.peer_response_timeout;
    loop {
        let owed = activity.owed.notified();
        tokio::pin!(owed);
        owed.as_mut().enable();
        let idle_at =
            (!settings.idle_timeout.is_zero()).then(|| activity.last() + settings.idle_timeout);
        let due = |peer: &Peer| {
            (!respond.is_zero())
                .then(|| peer.due(activity, respond))
                .flatten()
        };
        let deadline = peers.iter().filter_map(due).chain(idle_at).min();
        tokio::select! {
            () = settings.drain.cancelled() => {
                halt.trigger("relay shutting down");
                return;
            }
            () = &mut owed => {}
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                // Let the pumps take what already arrived first: on a busy machine this timer
                // can run late, beside frames that answer what it is about to judge.
                tokio::task::yield_now().await;
                let now = Instant::now();
                if let Some(peer) = peers.iter().find(|p| due(p).is_some_and(|at| at <= now)) {
                    halt.trigger(&format!(
                        "{} stopped responding: nothing from it within {} s of data sent to it",
                        peer.name,
                        respond.as_secs_f64()
                    ));
                    return;
                }
                if activity.last() + settings.idle_timeout <= now && idle_at.is_some() {
                    halt.trigger("idle timeout");
                    return;
                }
            }
        }
    }
}
