//! The client keeps a seat the way section 6.6 tells a program to — by calling
//! `rLogIn_MatrixNet` periodically — and never says "licensed" when the server no longer holds
//! the seat. Driven by paused tokio time over real TCP (LoginTimeOut 300 s, SessionTimeOut
//! 3600 s, the manual's defaults).

mod common;

use std::future::Future;
use std::time::Duration;

use common::{SLOT, at, config, start};
use license_client::RemoteApi;
use license_core::ErrorCode;

/// Bound on each test in virtual time: well beyond the time the test advances, so a call that
/// hangs makes the clock run out here instead of blocking the test.
const VIRTUAL_LIMIT: Duration = Duration::from_secs(6 * 3600);

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(VIRTUAL_LIMIT, test)
        .await
        .expect("the test finishes within its virtual time limit")
}

async fn advance(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
}

/// A program that only calls login, every LoginTimeOut/3, keeps its seat across four login
/// timeouts; the other program never gets it; every one of those logins was sent; the
/// references count each call (section 6.7a) and only the last logout frees the seat.
#[tokio::test(start_paused = true)]
async fn s6_6_login_every_third_of_the_timeout_keeps_the_seat() {
    bounded(async {
        let run = start(config(1)).await;
        let (a, b) = (run.client(), run.client());
        a.init().await.expect("a");
        b.init().await.expect("b");
        assert_eq!(a.login(at(SLOT)).await, Ok(0));
        let rounds = 12; // 12 × 100 s = four 300 s login timeouts
        for round in 1..=rounds {
            advance(100).await;
            assert_eq!(a.login(at(SLOT)).await, Ok(0), "round {round}: still A's");
            assert_eq!(
                b.login(at(SLOT)).await,
                Err(ErrorCode::NoLicense),
                "round {round}: B gets no seat"
            );
            assert_eq!(run.taken(SLOT), 1);
        }
        assert_eq!(a.login_refs(at(SLOT)).await, rounds + 1);
        assert_eq!(
            b.login_refs(at(SLOT)).await,
            0,
            "refused logins count nothing"
        );
        for _ in 0..rounds {
            assert_eq!(a.logout(at(SLOT)).await, Ok(0), "counted, not sent");
        }
        assert_eq!(run.taken(SLOT), 1);
        assert_eq!(a.logout(at(SLOT)).await, Ok(1), "the last logout frees it");
        assert_eq!(run.taken(SLOT), 0);
        run.stop().await;
    })
    .await;
}

/// The scenario: a 2-seat AppSlot, one program refreshing every LoginTimeOut/3, one
/// that logs in once and stops refreshing, one that keeps trying. At every step the programs
/// told "licensed" by their last call are exactly the ones the server holds a seat for.
#[tokio::test(start_paused = true)]
async fn no_program_is_told_it_is_licensed_without_a_seat() {
    bounded(async {
        let run = start(config(2)).await;
        let p: Vec<RemoteApi> = (0..3).map(|_| run.client()).collect();
        for api in &p {
            api.init().await.expect("init");
        }
        assert_eq!(p[0].login(at(SLOT)).await, Ok(1));
        assert_eq!(p[1].login(at(SLOT)).await, Ok(0));
        let mut licensed = [true, true, false];
        for round in 1..=12 {
            advance(100).await;
            licensed[0] = p[0].login(at(SLOT)).await.is_ok();
            // p[1] stopped refreshing after its first login: the server frees its seat once
            // more than 300 s have passed (round 4); its next call will say so (below).
            if round >= 4 {
                licensed[1] = false;
            }
            licensed[2] = p[2].login(at(SLOT)).await.is_ok();
            assert!(
                licensed[0],
                "round {round}: the refreshing program keeps its seat"
            );
            let told = licensed.iter().filter(|l| **l).count();
            assert_eq!(
                u32::try_from(told).expect("small"),
                run.taken(SLOT),
                "round {round}: {licensed:?}"
            );
        }
        assert!(licensed[2], "the freed seat went to the program that asked");
        // p[1] believes nothing: its login is sent and refused, and its logout answers -11.
        assert_eq!(p[1].login(at(SLOT)).await, Err(ErrorCode::NoLicense));
        assert_eq!(p[1].logout(at(SLOT)).await, Err(ErrorCode::NotLoggedIn));
        run.stop().await;
    })
    .await;
}

/// Once the server has freed a seat (login timeout) and another program took it, the next
/// login of the old holder says -31 even though it counted several logins, its references are
/// gone, and its next logout is sent and answered -11 (section 6.6's example).
#[tokio::test(start_paused = true)]
async fn a_seat_freed_by_the_server_is_reported_by_the_next_call() {
    bounded(async {
        let run = start(config(1)).await;
        let (a, b) = (run.client(), run.client());
        a.init().await.expect("a");
        b.init().await.expect("b");
        assert_eq!(a.login(at(SLOT)).await, Ok(0));
        assert_eq!(a.login(at(SLOT)).await, Ok(0));
        assert_eq!(a.login_refs(at(SLOT)).await, 2);
        advance(301).await;
        assert_eq!(b.login(at(SLOT)).await, Ok(0), "A's seat was freed");
        assert_eq!(a.login(at(SLOT)).await, Err(ErrorCode::NoLicense));
        assert_eq!(a.login_refs(at(SLOT)).await, 0);
        assert_eq!(a.logout(at(SLOT)).await, Err(ErrorCode::NotLoggedIn));
        assert_eq!(b.logout(at(SLOT)).await, Ok(1));
        assert_eq!(a.login(at(SLOT)).await, Ok(0), "a free seat is taken again");
        run.stop().await;
    })
    .await;
}

/// A session the server has lost (session timeout) answers -105 — the code the vendor's
/// distributor's samples re-initialise on — on every call, and its logins are dropped; -116
/// is only for a library with no session of its own (before init, after the last release or
/// a reset). Section 6.5: init only counts until the counter is back at zero.
#[tokio::test(start_paused = true)]
async fn a_lost_session_is_105_and_no_session_is_116() {
    bounded(async {
        let run = start(config(1)).await;
        let a = run.client();
        assert_eq!(a.login(at(SLOT)).await, Err(ErrorCode::NoSession));
        assert_eq!(a.init().await, Ok(1));
        assert_eq!(a.login(at(SLOT)).await, Ok(0));
        advance(3601).await;
        assert_eq!(a.login(at(SLOT)).await, Err(ErrorCode::SessionPassword));
        assert_eq!(a.login_refs(at(SLOT)).await, 0, "its seat went with it");
        assert_eq!(run.taken(SLOT), 0);
        assert_eq!(a.dongle_count().await, Err(ErrorCode::SessionPassword));
        assert_eq!(a.logout(at(SLOT)).await, Err(ErrorCode::SessionPassword));
        assert_eq!(a.init().await, Ok(2), "only counts");
        a.reset().await;
        assert_eq!(a.dongle_count().await, Err(ErrorCode::NoSession));
        assert_eq!(a.init().await, Ok(1), "a new session");
        assert_eq!(a.login(at(SLOT)).await, Ok(0));
        assert_eq!(a.release().await, Ok(0));
        assert_eq!(a.release().await, Err(ErrorCode::NoSession));
        run.stop().await;
    })
    .await;
}
