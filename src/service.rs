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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A liveness verdict: `Err` says why the component is not live.
pub type Verdict = Result<(), String>;

/// The future of one liveness check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// Proof that a component's event loop is responsive: its accept loop runs, its state handle
/// answers. A check that never answers counts as failed (see [`Service::supervise`]), so a
/// check may take locks the component's loop takes.
pub trait Liveness: Send + Sync + 'static {
    /// Checks the component once.
    fn check(&self) -> CheckFuture<'_>;
}

/// A synchronous check as a [`Liveness`].
pub struct CheckFn<F>(pub F);

impl<F> Liveness for CheckFn<F>
where
    F: Fn() -> Verdict + Send + Sync + 'static,
{
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready((self.0)()))
    }
}

/// The license server is live while its periodic sweep — which takes the engine's lock and is
/// driven by the accept loop's `select!` — beat within
/// [`LIVENESS_MAX_AGE`](license_server::server::LIVENESS_MAX_AGE).
impl Liveness for license_server::LicenseServer {
    fn check(&self) -> CheckFuture<'_> {
        let max = license_server::server::LIVENESS_MAX_AGE;
        let verdict = if self.is_live(max) {
            Ok(())
        } else {
            Err(match self.heartbeat_age() {
                None => "the license server is not serving yet".to_owned(),
                Some(age) => format!(
                    "the license engine's heartbeat is {:.1} s old (limit {} s): its accept \
                     loop or lock is stalled",
                    age.as_secs_f64(),
                    max.as_secs()
                ),
            })
        };
        Box::pin(std::future::ready(verdict))
    }
}

/// The relay is live while it accepts connections, its accept loop beat within
/// [`LIVENESS_MAX_AGE`](relay_server::stats::LIVENESS_MAX_AGE), and its counters answer (they
/// sit behind the lock its connection tasks update).
impl Liveness for relay_server::RelayStats {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(
            self.liveness(relay_server::stats::LIVENESS_MAX_AGE),
        ))
    }
}

/// The relay-listener is live while its main loop (connect, serve the control channel, wait
/// to reconnect) beats: an unreachable relay does not count against it, a stuck task does.
impl Liveness for relay_listener::ListenerStatus {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(
            self.liveness(ops_http::heartbeat::LIVENESS_MAX_AGE),
        ))
    }
}

/// The local-proxy is live while it listens and its accept loop beats.
impl Liveness for local_proxy::ProxyStatus {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(std::future::ready(
            self.liveness(ops_http::heartbeat::LIVENESS_MAX_AGE),
        ))
    }
}

/// One message to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1` with a one-line `STATUS=`.
    Ready(String),
    /// `STOPPING=1` with a one-line `STATUS=`.
    Stopping(String),
    /// `WATCHDOG=1`.
    Watchdog,
}

impl Notice {
    /// The datagram as systemd receives it (`sd_notify(3)`).
    pub fn text(&self) -> String {
        match self {
            Self::Ready(status) => format!("READY=1\nSTATUS={}\n", one_line(status)),
            Self::Stopping(status) => format!("STOPPING=1\nSTATUS={}\n", one_line(status)),
            Self::Watchdog => "WATCHDOG=1\n".to_owned(),
        }
    }
}

/// `STATUS=` ends at a newline.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

/// Where [`Notice`]s go: systemd's notification socket, or a test's recorder.
pub trait Notifier: Send + Sync + 'static {
    /// Sends one notice.
    ///
    /// # Errors
    /// The socket cannot be reached.
    fn notify(&self, notice: &Notice) -> std::io::Result<()>;
}

/// systemd's `NOTIFY_SOCKET`, through `sd-notify`.
#[cfg(unix)]
struct Systemd;

#[cfg(unix)]
impl Notifier for Systemd {
    fn notify(&self, notice: &Notice) -> std::io::Result<()> {
        use sd_notify::NotifyState;
        match notice {
            Notice::Ready(status) => {
                let status = one_line(status);
                sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)])
            }
            Notice::Stopping(status) => {
                let status = one_line(status);
                sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status(&status)])
            }
            Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
        }
    }
}

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

/// Sends notices, warning once per failure streak.
struct Sender {
    notifier: Arc<dyn Notifier>,
    failing: std::sync::atomic::AtomicBool,
}

impl Sender {
    fn new(notifier: Arc<dyn Notifier>) -> Self {
        Self {
            notifier,
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn send(&self, notice: &Notice) {
        use std::sync::atomic::Ordering;
        match self.notifier.notify(notice) {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("cannot notify the service manager: {e}");
                }
            }
        }
    }
}

/// Runs liveness checks in their own task, so one stuck in a lock is timed out here (and not
/// started again while it hangs).
struct Checker {
    liveness: Arc<dyn Liveness>,
    limit: Duration,
    hanging: Option<JoinHandle<Verdict>>,
}

impl Checker {
    fn new(liveness: Arc<dyn Liveness>, limit: Duration) -> Self {
        Self {
            liveness,
            limit,
            hanging: None,
        }
    }

    async fn check(&mut self) -> Verdict {
        let mut task = self.hanging.take().unwrap_or_else(|| {
            let liveness = self.liveness.clone();
            tokio::spawn(async move { liveness.check().await })
        });
        match tokio::time::timeout(self.limit, &mut task).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => Err(format!("the liveness check failed: {e}")),
            Err(_) => {
                self.hanging = Some(task);
                Err(format!(
                    "the liveness check did not answer within {:?}",
                    self.limit
                ))
            }
        }
    }
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
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::time::Instant;

    use super::*;

    /// Records what would be sent, with the (paused) time it was sent at.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<(Instant, Notice)>>,
        changed: tokio::sync::Notify,
    }

    impl Notifier for Recorder {
        fn notify(&self, notice: &Notice) -> std::io::Result<()> {
            self.sent
                .lock()
                .expect("lock")
                .push((Instant::now(), notice.clone()));
            self.changed.notify_waiters();
            Ok(())
        }
    }

    impl Recorder {
        fn notices(&self) -> Vec<Notice> {
            let sent = self.sent.lock().expect("lock");
            sent.iter().map(|(_, n)| n.clone()).collect()
        }

        fn pings_between(&self, from: Instant, to: Instant) -> usize {
            let sent = self.sent.lock().expect("lock");
            sent.iter()
                .filter(|(at, n)| *n == Notice::Watchdog && *at >= from && *at <= to)
                .count()
        }

        /// Waits until `n` notices were sent (paused time advances meanwhile).
        async fn wait_for(&self, n: usize) {
            loop {
                let changed = self.changed.notified();
                if self.sent.lock().expect("lock").len() >= n {
                    return;
                }
                changed.await;
            }
        }
    }

    /// Live while the flag is set; counts its checks; hangs instead of answering while
    /// `hang` is set.
    #[derive(Default)]
    struct Flag {
        live: AtomicBool,
        hang: AtomicBool,
        checks: AtomicUsize,
    }

    impl Liveness for Flag {
        fn check(&self) -> CheckFuture<'_> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            let hang = self.hang.load(Ordering::SeqCst);
            let live = self.live.load(Ordering::SeqCst);
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                if live {
                    Ok(())
                } else {
                    Err("flag down".to_owned())
                }
            })
        }
    }

    const WATCHDOG: Duration = Duration::from_secs(30);

    fn start(
        watchdog: Option<Duration>,
        flag: &Arc<Flag>,
    ) -> (Arc<Recorder>, CancellationToken, Supervision) {
        let recorder = Arc::new(Recorder::default());
        let shutdown = CancellationToken::new();
        let service = Service::new(recorder.clone(), watchdog);
        let supervision = service.supervise(flag.clone(), "serving".into(), shutdown.clone());
        (recorder, shutdown, supervision)
    }

    #[tokio::test(start_paused = true)]
    async fn ready_once_live_then_pings_at_half_the_interval_then_stopping() {
        let flag = Arc::new(Flag::default());
        let (recorder, shutdown, supervision) = start(Some(WATCHDOG), &flag);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(recorder.notices().is_empty(), "not ready while not live");
        assert!(
            flag.checks.load(Ordering::SeqCst) >= 3,
            "readiness is polled"
        );

        flag.live.store(true, Ordering::SeqCst);
        let ready_by = Instant::now() + READY_POLL.1;
        recorder.wait_for(2).await;
        assert!(Instant::now() <= ready_by);
        let t0 = Instant::now();
        assert_eq!(
            recorder.notices(),
            [Notice::Ready("serving".into()), Notice::Watchdog]
        );
        // Pings at t0, t0 + 15 s, …, t0 + 60 s.
        tokio::time::sleep(WATCHDOG * 2 + Duration::from_secs(1)).await;
        assert_eq!(recorder.pings_between(t0, Instant::now()), 5);

        shutdown.cancel();
        supervision.finish(Duration::from_secs(1)).await;
        assert_eq!(
            recorder.notices().last(),
            Some(&Notice::Stopping("stopping: draining connections".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pings_stop_while_not_live_and_resume() {
        let flag = Arc::new(Flag::default());
        flag.live.store(true, Ordering::SeqCst);
        let (recorder, shutdown, supervision) = start(Some(WATCHDOG), &flag);
        recorder.wait_for(2).await;

        flag.live.store(false, Ordering::SeqCst);
        let down = Instant::now();
        tokio::time::sleep(WATCHDOG * 3 + Duration::from_secs(1)).await;
        assert_eq!(
            recorder.pings_between(down + Duration::from_millis(1), Instant::now()),
            0,
            "no ping while the check fails: the manager's watchdog fires"
        );

        flag.live.store(true, Ordering::SeqCst);
        let up = Instant::now();
        tokio::time::sleep(WATCHDOG).await;
        assert_eq!(recorder.pings_between(up, Instant::now()), 2);
        shutdown.cancel();
        supervision.finish(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_never_answers_stops_the_pings_and_is_not_piled_up() {
        let flag = Arc::new(Flag::default());
        flag.live.store(true, Ordering::SeqCst);
        let (recorder, shutdown, supervision) = start(Some(WATCHDOG), &flag);
        recorder.wait_for(2).await;
        let checks = flag.checks.load(Ordering::SeqCst);

        flag.hang.store(true, Ordering::SeqCst);
        let hung = Instant::now();
        tokio::time::sleep(WATCHDOG * 4).await;
        assert_eq!(
            recorder.pings_between(hung + Duration::from_millis(1), Instant::now()),
            0
        );
        assert_eq!(
            flag.checks.load(Ordering::SeqCst),
            checks + 1,
            "the hanging check is awaited again, not started again"
        );
        shutdown.cancel();
        supervision.finish(Duration::from_secs(1)).await;
        assert!(matches!(
            recorder.notices().last(),
            Some(Notice::Stopping(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_watchdog_only_ready_and_stopping() {
        let flag = Arc::new(Flag::default());
        flag.live.store(true, Ordering::SeqCst);
        let (recorder, shutdown, supervision) = start(None, &flag);
        recorder.wait_for(1).await;
        tokio::time::sleep(WATCHDOG * 2).await;
        shutdown.cancel();
        supervision.finish(Duration::from_secs(1)).await;
        assert_eq!(
            recorder.notices(),
            [
                Notice::Ready("serving".into()),
                Notice::Stopping("stopping: draining connections".into())
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_before_ready_still_says_stopping() {
        let flag = Arc::new(Flag::default());
        let (recorder, shutdown, supervision) = start(Some(WATCHDOG), &flag);
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        supervision.finish(Duration::from_secs(1)).await;
        assert_eq!(
            recorder.notices(),
            [Notice::Stopping("stopping: draining connections".into())]
        );
    }

    #[tokio::test]
    async fn not_supervised_spawns_nothing() {
        let service = Service {
            notifier: None,
            watchdog: Some(WATCHDOG),
        };
        assert!(!service.is_supervised());
        let supervision = service.supervise(
            Arc::new(CheckFn(|| Ok(()))),
            String::new(),
            CancellationToken::new(),
        );
        assert!(supervision.0.is_none());
        assert_eq!(
            Service::new(Arc::new(Recorder::default()), Some(Duration::ZERO)).watchdog(),
            None
        );
    }

    #[test]
    fn notices_are_sd_notify_datagrams() {
        assert_eq!(
            Notice::Ready("listening on\n127.0.0.1:1".into()).text(),
            "READY=1\nSTATUS=listening on 127.0.0.1:1\n"
        );
        assert_eq!(Notice::Watchdog.text(), "WATCHDOG=1\n");
        assert_eq!(
            Notice::Stopping("bye".into()).text(),
            "STOPPING=1\nSTATUS=bye\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn license_server_is_live_while_serving_and_not_after_its_loop_stops() {
        let config = license_server::ServerConfig::default();
        let server = license_server::LicenseServer::new(&config).expect("server");
        let verdict = Liveness::check(&server).await;
        assert!(
            verdict.as_ref().is_err_and(|e| e.contains("not serving")),
            "{verdict:?}"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let stop = CancellationToken::new();
        let serving = {
            let server = server.clone();
            let stop = stop.clone();
            tokio::spawn(async move { server.serve(listener, stop).await })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(Liveness::check(&server).await, Ok(()));
        stop.cancel();
        serving.await.expect("task").expect("serve");
        // The loop no longer beats: the heartbeat ages past the limit.
        tokio::time::sleep(license_server::server::LIVENESS_MAX_AGE * 2).await;
        let verdict = Liveness::check(&server).await;
        assert!(
            verdict.as_ref().is_err_and(|e| e.contains("heartbeat")),
            "{verdict:?}"
        );
    }

    #[tokio::test]
    async fn relay_is_live_while_serving() {
        let config = relay_server::quickstart::config(
            "hc",
            relay_server::quickstart::QuickstartKeys::default(),
            relay_server::config::TlsConfig::Plain,
        );
        let stats = config.stats();
        assert!(Liveness::check(&stats).await.is_err(), "not before it runs");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let stop = CancellationToken::new();
        let relay = tokio::spawn(relay_server::run(config, listener, stop.clone()));
        tokio::time::timeout(Duration::from_secs(10), stats.wait_serving())
            .await
            .expect("serving in time");
        assert_eq!(Liveness::check(&stats).await, Ok(()));
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), relay)
            .await
            .expect("stops in time")
            .expect("task")
            .expect("clean stop");
        let verdict = Liveness::check(&stats).await;
        assert!(
            verdict.as_ref().is_err_and(|e| e.contains("not accepting")),
            "{verdict:?}"
        );
    }
}
