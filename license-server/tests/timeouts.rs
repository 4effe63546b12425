//! Login and session timeouts over real TCP, driven by paused tokio time (sections 6.3, 6.5,
//! 6.6 and 6.8).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SLOT, at, config, start};
use license_client::RemoteApi;
use license_core::ErrorCode;
use license_core::clock::SkewedClock;

async fn advance(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn s6_6_unrefreshed_login_times_out_after_300_s() {
    let run = start(config(1)).await;
    let (a, b) = (run.client(), run.client());
    a.init().await.expect("a");
    b.init().await.expect("b");
    assert_eq!(a.login(at(SLOT)).await, Ok(0));
    assert_eq!(b.login(at(SLOT)).await, Err(ErrorCode::NoLicense));
    advance(300).await;
    assert_eq!(
        b.refresh(at(SLOT)).await,
        Err(ErrorCode::NoLicense),
        "300 s: still held"
    );
    advance(1).await;
    assert_eq!(b.refresh(at(SLOT)).await, Ok(0), "301 s: freed");
    assert_eq!(a.logout(at(SLOT)).await, Err(ErrorCode::NotLoggedIn));
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn s6_6_refreshing_keeps_the_seat() {
    let run = start(config(1)).await;
    let (a, b) = (run.client(), run.client());
    a.init().await.expect("a");
    b.init().await.expect("b");
    assert_eq!(a.login(at(SLOT)).await, Ok(0));
    for _ in 0..8 {
        advance(250).await;
        assert_eq!(a.refresh(at(SLOT)).await, Ok(0));
        assert_eq!(b.refresh(at(SLOT)).await, Err(ErrorCode::NoLicense));
    }
    assert_eq!(run.taken(SLOT), 1);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn s6_6_the_periodic_sweep_frees_seats_without_any_call() {
    use license_core::engine::{RemovalReason, SeatEvent};
    let run = start(config(2)).await;
    let freed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = freed.clone();
    run.server.set_observer(Box::new(move |e: &SeatEvent| {
        if let Some(reason) = e.reason {
            sink.lock().expect("lock").push(reason);
        }
    }));
    let a = run.client();
    a.init().await.expect("a");
    a.login(at(SLOT)).await.expect("login");
    advance(302).await;
    // Nothing calls the engine now but the server's own sweep.
    for _ in 0..100 {
        if !freed.lock().expect("lock").is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(*freed.lock().expect("lock"), [RemovalReason::LoginTimeout]);
    assert_eq!(
        run.server.with_engine(|e| e.session_count()),
        1,
        "the session lives on"
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn s6_3_session_times_out_after_3600_s_idle() {
    let run = start(config(2)).await;
    let a = run.client();
    a.init().await.expect("init");
    a.login(at(SLOT)).await.expect("login");
    advance(3000).await;
    assert_eq!(
        a.dongle_count().await,
        Ok(1),
        "the call updates last access"
    );
    advance(3600).await;
    assert_eq!(a.dongle_count().await, Ok(1), "exactly 3600 s idle: alive");
    advance(3601).await;
    assert_eq!(a.dongle_count().await, Err(ErrorCode::SessionPassword));
    assert!(run.server.snapshot().sessions.is_empty());
    assert_eq!(run.taken(SLOT), 0);
    run.stop().await;
}

/// Section 6.5: with the init counter at 2, a lost session cannot be re-opened by init (it
/// only counts) until reset.
#[tokio::test(start_paused = true)]
async fn s6_5_reset_recovers_from_a_lost_session() {
    let run = start(config(2)).await;
    let a = run.client();
    assert_eq!(a.init().await, Ok(1));
    assert_eq!(a.init().await, Ok(2));
    advance(3601).await;
    assert_eq!(a.login(at(SLOT)).await, Err(ErrorCode::SessionPassword));
    assert_eq!(a.init().await, Ok(3), "only counts");
    assert_eq!(a.login(at(SLOT)).await, Err(ErrorCode::SessionPassword));
    a.reset().await;
    assert_eq!(a.init().await, Ok(1), "a new session");
    assert_eq!(a.login(at(SLOT)).await, Ok(1));
    run.stop().await;
}

/// Section 6.8: a client whose clock is more than CmdIssueTimeInterval off is refused.
#[tokio::test(start_paused = true)]
async fn s6_8_client_clock_skew_is_a_time_stamp_error() {
    let run = start(config(2)).await;
    for (offset, ahead, expected) in [
        (61, false, Err(ErrorCode::TimeStamp)),
        (61, true, Err(ErrorCode::TimeStamp)),
        (59, false, Ok(1)),
    ] {
        let mut cfg = run.client_config();
        cfg.clock = Arc::new(SkewedClock::new(
            run.clock.clone(),
            Duration::from_secs(offset),
            ahead,
        ));
        assert_eq!(RemoteApi::new(cfg).init().await, expected, "{offset} s");
    }
    let mut cfg = config(2);
    cfg.cmd_issue_time_interval = Duration::from_secs(10);
    let strict = start(cfg).await;
    let mut c = strict.client_config();
    c.clock = Arc::new(SkewedClock::new(
        strict.clock.clone(),
        Duration::from_secs(11),
        false,
    ));
    assert_eq!(RemoteApi::new(c).init().await, Err(ErrorCode::TimeStamp));
    strict.stop().await;
    run.stop().await;
}
