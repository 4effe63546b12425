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
