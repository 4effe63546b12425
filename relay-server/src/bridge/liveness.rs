//! The bridge's sense of time and of each side's responsiveness: when the last frame passed
//! (the idle timeout), which side owes an answer to data it was sent and since when (the
//! peer-response timeout), and the watchdog that halts the bridge when either runs out or the
//! relay's drain deadline passes.
//!
//! **Pings only for silence.** A side that owes an answer is pinged only when the debt is
//! [`ping_after`] old: a side that answers sooner (a call's reply, a multiplexer's window
//! update) is never pinged. Pinging with every first unanswered data frame cost a bulk
//! transfer over a multiplexed connection a ping and a pong, each its own write at three
//! processes, for every window update. The deadline itself still runs from the data. A side
//! that owes an answer when the other side's Close is forwarded to it gets its ping first
//! ([`Peer::claim_ping`]): nothing may be sent to it after the Close.

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

/// Longest wait before a side that owes an answer is pinged.
const PING_AFTER: Duration = Duration::from_secs(1);

/// How old a debt is when its side is pinged: [`PING_AFTER`], or half the peer-response
/// timeout when that is shorter, so that a live side always has time to answer the ping.
pub(super) fn ping_after(respond: Duration) -> Duration {
    PING_AFTER.min(respond / 2)
}

/// What the relay knows of one side's responsiveness.
pub(super) struct Peer {
    /// `sender` or `listener`, for reasons.
    pub(super) name: &'static str,
    /// Since when (ms since the bridge started) data sent to it is unanswered.
    owed_since: AtomicU64,
    /// The debt (its `owed_since`) the side was last pinged for.
    pinged_for: AtomicU64,
    /// Asks the pump that writes to this side to ping it.
    pub(super) ping: Notify,
    /// It sent its Close: it owes nothing any more (a closing peer answers no pings).
    pub(super) finished: AtomicBool,
}

impl Peer {
    pub(super) fn new(name: &'static str) -> Self {
        Self {
            name,
            owed_since: AtomicU64::new(NOT_OWED),
            pinged_for: AtomicU64::new(NOT_OWED),
            ping: Notify::new(),
            finished: AtomicBool::new(false),
        }
    }

    /// Anything from the side answers what it owed.
    pub(super) fn heard(&self) {
        self.owed_since.store(NOT_OWED, Ordering::Relaxed);
    }

    /// Data goes to the side: it owes an answer from now, unless it did already (the
    /// watchdog then learns of the new debt).
    pub(super) fn owe(&self, activity: &Activity) {
        if !activity.liveness || self.finished.load(Ordering::Relaxed) {
            return;
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
    }

    /// When its debt runs out, if it owes one.
    pub(super) fn due(&self, activity: &Activity, limit: Duration) -> Option<Instant> {
        let since = self.owed_since.load(Ordering::Relaxed);
        (since != NOT_OWED && !self.finished.load(Ordering::Relaxed))
            .then(|| activity.at(since) + limit)
    }

    /// When to ping it for its debt, if it owes one it was not pinged for yet.
    fn ping_due(&self, activity: &Activity, after: Duration) -> Option<Instant> {
        let since = self.owed_since.load(Ordering::Relaxed);
        (since != self.pinged_for.load(Ordering::Relaxed))
            .then(|| self.due(activity, after))
            .flatten()
    }

    /// Pings it (through the pump that writes to it) if its debt is `after` old and it was
    /// not pinged for that debt yet.
    fn ping_if_due(&self, activity: &Activity, after: Duration, now: Instant) {
        if self.ping_due(activity, after).is_some_and(|at| at <= now) && self.claim_ping() {
            self.ping.notify_one();
        }
    }

    /// Marks its debt as pinged for. True when it owes one it was not pinged for yet: the
    /// caller sends that ping now (before a Close, after which nothing may be sent to it).
    pub(super) fn claim_ping(&self) -> bool {
        let since = self.owed_since.load(Ordering::Relaxed);
        since != NOT_OWED && self.pinged_for.swap(since, Ordering::Relaxed) != since
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
    let after = ping_after(respond);
    loop {
        let owed = activity.owed.notified();
        tokio::pin!(owed);
        owed.as_mut().enable();
        let idle_at =
            (!settings.idle_timeout.is_zero()).then(|| activity.last() + settings.idle_timeout);
        // With no peer-response timeout no side ever owes anything (`Activity::liveness`),
        // so neither deadline exists.
        let due = |peer: &Peer| peer.due(activity, respond);
        let deadline = peers
            .iter()
            .filter_map(due)
            .chain(peers.iter().filter_map(|p| p.ping_due(activity, after)))
            .chain(idle_at)
            .min();
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
                for peer in peers {
                    peer.ping_if_due(activity, after, now);
                }
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
