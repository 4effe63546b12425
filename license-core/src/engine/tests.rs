//! Engine tests: one or more per numbered rule of sections 6.1–6.8 of the manual that the
//! engine owns, plus a property test of seat exactness under interleaved clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::dongle::{Detected, DongleSection, describe};

const SLOT: u16 = 1;

fn at(slot: u16) -> SlotRef {
    SlotRef::first_dongle(slot)
}

fn engine_with(mode: LicenseMode, limit: u32) -> Engine {
    engine_coded(mode, limit, None)
}

fn engine_coded(mode: LicenseMode, limit: u32, user_code: Option<i32>) -> Engine {
    let mut e = Engine::new(EngineSettings {
        mode,
        ..EngineSettings::default()
    });
    let sections = vec![DongleSection {
        number: 1,
        sernr: Some(1_234_567_890),
        name: Some("MyDongle".into()),
        slot_names: [(SLOT, "Foo Application".to_owned())].into(),
        limits: [(SLOT, limit), (2, 1)].into(),
        user_code,
        ..DongleSection::default()
    }];
    let found: Vec<_> = sections.iter().map(Detected::simulated).collect();
    e.update_dongles(describe(&found, &sections));
    e
}

fn engine(limit: u32) -> Engine {
    engine_with(LicenseMode::Session, limit)
}

fn client(ip: [u8; 4], port: u16) -> ClientInfo {
    ClientInfo::at(SocketAddr::from((ip, port)))
}

fn open(e: &mut Engine, c: ClientInfo, now: Instant) -> SessionId {
    e.open_session(c, SessionSecret::new([1; 64]), 1, now)
        .expect("session")
}

fn slot_ref(user_code: i32) -> SlotRef {
    SlotRef {
        dng_nr: 1,
        user_code,
        slot: SLOT,
    }
}

fn taken(e: &mut Engine, now: Instant) -> i32 {
    e.login_count(at(SLOT), now).expect("count")
}

// ----- 6.1 / 6.2: init and release -----

#[test]
fn s6_1_calls_need_a_session_and_release_invalidates_it() {
    let mut e = engine(3);
    let t = Instant::now();
    let bogus = SessionId::new(99).expect("id");
    assert_eq!(e.login(bogus, at(SLOT), t), Err(ErrorCode::SessionPassword));
    let id = open(&mut e, client([10, 0, 0, 1], 1), t);
    assert_eq!(e.login(id, at(SLOT), t), Ok(2));
    e.release(id, t).expect("release");
    assert_eq!(e.login(id, at(SLOT), t), Err(ErrorCode::SessionPassword));
    assert_eq!(e.release(id, t), Err(ErrorCode::SessionPassword));
    assert_eq!(e.session_count(), 0);
}

#[test]
fn s6_1_release_logs_the_session_out_of_everything() {
    let mut e = engine(3);
    let t = Instant::now();
    let id = open(&mut e, client([10, 0, 0, 1], 1), t);
    e.login(id, at(SLOT), t).expect("login");
    e.login(id, at(2), t).expect("login 2");
    assert_eq!(taken(&mut e, t), 1);
    e.release(id, t).expect("release");
    assert_eq!(taken(&mut e, t), 0);
    assert_eq!(e.login_count(at(2), t), Ok(0));
}

#[test]
fn s6_2_every_init_starts_a_new_session_with_its_client_info() {
    let mut e = engine(3);
    let t = Instant::now();
    let mut c = client([10, 0, 0, 7], 5000);
    c.site = Some("branch-a".into());
    c.name = "pc7/42".into();
    let a = open(&mut e, c.clone(), t);
    let b = open(&mut e, c, t);
    assert_ne!(a, b);
    let snap = e.snapshot(t, 1_000_000);
    assert_eq!(snap.sessions.len(), 2);
    assert!(
        snap.sessions
            .iter()
            .all(|s| s.site.as_deref() == Some("branch-a")
                && s.client_name == "pc7/42"
                && s.client_addr.port() == 5000)
    );
    assert_eq!(e.session_secret(a), Some(&SessionSecret::new([1; 64])));
}

// ----- 6.3: session timeout -----

#[test]
fn s6_3_default_timeouts_are_the_manuals() {
    let s = EngineSettings::default();
    assert_eq!(s.session_timeout, Duration::from_secs(3600));
    assert_eq!(s.login_timeout, Duration::from_secs(300));
    assert_eq!(s.mode, LicenseMode::Session);
}

#[test]
fn s6_3_every_call_updates_last_access() {
    let mut e = engine(3);
    let t = Instant::now();
    let id = open(&mut e, client([10, 0, 0, 1], 1), t);
    // Calls every 3000 s keep a 3600 s session alive for 9000 s.
    for i in 1..=3 {
        let now = t + Duration::from_secs(3000 * i);
        e.authorize(id, 1 + i, now, |_| Ok(())).expect("alive");
    }
    let later = t + Duration::from_secs(9000 + 3601);
    assert_eq!(
        e.authorize(id, 10, later, |_| Ok(())),
        Err(ErrorCode::SessionPassword)
    );
}

#[test]
fn s6_3_session_timeout_removes_the_session_and_its_logins() {
    let mut e = engine(1);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    e.login(a, at(SLOT), t).expect("login");
    // Another session stays busy; session a makes no call after its login.
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    for i in 1..=12 {
        let now = t + Duration::from_secs(290 * i);
        e.authorize(b, 1 + i, now, |_| Ok(())).expect("b alive");
    }
    // Session a is still alive at exactly 3600 s...
    let at_3600 = t + Duration::from_secs(3600);
    assert!(e.snapshot(at_3600, 0).sessions.iter().any(|s| s.id == a));
    // ... gone at 3601 s, with its login (whose seat was already reclaimed at 301 s).
    let at_3601 = t + Duration::from_secs(3601);
    e.sweep(at_3601);
    assert!(e.snapshot(at_3601, 0).sessions.iter().all(|s| s.id != a));
    assert_eq!(
        e.login(a, at(SLOT), at_3601),
        Err(ErrorCode::SessionPassword)
    );
    assert_eq!(e.login(b, at(SLOT), at_3601), Ok(0));
}

#[test]
fn s6_3_session_timeout_frees_seats_of_refreshed_logins() {
    let mut e = Engine::new(EngineSettings {
        login_timeout: Duration::from_secs(300),
        session_timeout: Duration::from_secs(180),
        ..EngineSettings::default()
    });
    let sections = vec![DongleSection {
        number: 1,
        limits: [(SLOT, 1)].into(),
        ..DongleSection::default()
    }];
    let found: Vec<_> = sections.iter().map(Detected::simulated).collect();
    e.update_dongles(describe(&found, &sections));
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    e.login(a, at(SLOT), t).expect("login");
    // 181 s later the session (180 s) is gone even though the login (300 s) is not due.
    let b = open(
        &mut e,
        client([10, 0, 0, 2], 1),
        t + Duration::from_secs(181),
    );
    assert_eq!(
        e.login(b, at(SLOT), t + Duration::from_secs(181)),
        Err(ErrorCode::NoLicense)
    );
    e.sweep(t + Duration::from_secs(181));
    assert_eq!(e.login(b, at(SLOT), t + Duration::from_secs(181)), Ok(0));
}

// ----- packet numbers and authentication -----

#[test]
fn packet_numbers_must_increase_and_failed_checks_change_nothing() {
    let mut e = engine(3);
    let t = Instant::now();
    let id = open(&mut e, client([10, 0, 0, 1], 1), t);
    assert_eq!(
        e.authorize(id, 1, t, |_| Ok(())),
        Err(ErrorCode::PacketNumber)
    );
    e.authorize(id, 5, t, |_| Ok(())).expect("5");
    assert_eq!(
        e.authorize(id, 5, t, |_| Ok(())),
        Err(ErrorCode::PacketNumber)
    );
    assert_eq!(
        e.authorize(id, 4, t, |_| Ok(())),
        Err(ErrorCode::PacketNumber)
    );
    // A request that fails its check does not consume its packet number.
    assert_eq!(
        e.authorize(id, 6, t, |_| Err(ErrorCode::SessionPassword)),
        Err(ErrorCode::SessionPassword)
    );
    assert_eq!(
        e.authorize(id, 6, t, |_| Err(ErrorCode::TimeStamp)),
        Err(ErrorCode::TimeStamp)
    );
    e.authorize(id, 6, t, |_| Ok(())).expect("6 still usable");
}

#[test]
fn failed_checks_do_not_extend_the_session() {
    let mut e = engine(3);
    let t = Instant::now();
    let id = open(&mut e, client([10, 0, 0, 1], 1), t);
    let late = t + Duration::from_secs(3000);
    let _ = e.authorize(id, 2, late, |_| Err(ErrorCode::SessionPassword));
    let after = t + Duration::from_secs(3601);
    assert_eq!(
        e.authorize(id, 2, after, |_| Ok(())),
        Err(ErrorCode::SessionPassword)
    );
}

// ----- 6.6: login / logout -----

#[test]
fn s6_6_first_login_takes_a_seat_and_returns_the_seats_left() {
    let mut e = engine(3);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    assert_eq!(e.login(a, at(SLOT), t), Ok(2));
    assert_eq!(e.login(b, at(SLOT), t), Ok(1));
    assert_eq!(taken(&mut e, t), 2);
}

#[test]
fn s6_6_repeated_logins_only_refresh() {
    let mut e = engine(3);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    for _ in 0..5 {
        assert_eq!(e.login(a, at(SLOT), t), Ok(2));
    }
    assert_eq!(taken(&mut e, t), 1);
}

#[test]
fn s6_6_no_free_seat_is_minus_31() {
    let mut e = engine(1);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    assert_eq!(e.login(a, at(SLOT), t), Ok(0));
    assert_eq!(e.login(b, at(SLOT), t), Err(ErrorCode::NoLicense));
    // An AppSlot without seats, too.
    assert_eq!(e.login(a, at(9), t), Err(ErrorCode::NoLicense));
}

#[test]
fn s6_6_logout_frees_the_seat_and_logout_without_login_is_minus_11() {
    let mut e = engine(1);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    assert_eq!(e.logout(a, at(SLOT), t), Err(ErrorCode::NotLoggedIn));
    e.login(a, at(SLOT), t).expect("login");
    assert_eq!(e.logout(a, at(SLOT), t), Ok(1));
    assert_eq!(e.login(b, at(SLOT), t), Ok(0));
    assert_eq!(e.logout(a, at(SLOT), t), Err(ErrorCode::NotLoggedIn));
}

/// The manual's example: threads A and B of one process; B's logout releases the licence,
/// A's logout then fails with -11 (at the server, without client counting).
#[test]
fn s6_6_multiple_logins_one_seat_one_logout_frees_it() {
    let mut e = engine(3);
    let t = Instant::now();
    let process = open(&mut e, client([10, 0, 0, 1], 1), t);
    assert_eq!(e.login(process, at(SLOT), t), Ok(2)); // thread A
    assert_eq!(e.login(process, at(SLOT), t), Ok(2)); // thread B: refresh only
    assert_eq!(e.logout(process, at(SLOT), t), Ok(3)); // thread B
    assert_eq!(e.logout(process, at(SLOT), t), Err(ErrorCode::NotLoggedIn)); // thread A
}

#[test]
fn s6_6_login_timeout_frees_unrefreshed_seats() {
    let mut e = engine(1);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    e.login(a, at(SLOT), t).expect("login");
    // Refreshed at 290 s, the seat holds at 580 s...
    e.login(a, at(SLOT), t + Duration::from_secs(290))
        .expect("refresh");
    assert_eq!(
        e.login(b, at(SLOT), t + Duration::from_secs(580)),
        Err(ErrorCode::NoLicense)
    );
    // ... exactly 300 s after the refresh it still holds, one second later it is free.
    assert_eq!(
        e.login(b, at(SLOT), t + Duration::from_secs(590)),
        Err(ErrorCode::NoLicense)
    );
    assert_eq!(e.login(b, at(SLOT), t + Duration::from_secs(591)), Ok(0));
    // The timed-out client is no longer logged in.
    assert_eq!(
        e.logout(a, at(SLOT), t + Duration::from_secs(591)),
        Err(ErrorCode::NotLoggedIn)
    );
}

#[test]
fn s6_6_timed_out_login_is_swept_and_logging_in_again_takes_a_new_seat() {
    let mut e = engine(2);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    e.login(a, at(SLOT), t).expect("login");
    let later = t + Duration::from_secs(301);
    e.sweep(later);
    assert_eq!(taken(&mut e, later), 0);
    assert_eq!(e.login(a, at(SLOT), later), Ok(1));
    assert_eq!(taken(&mut e, later), 1);
}

#[test]
fn dongles_must_be_present_and_answer_to_the_user_code() {
    let mut e = engine_coded(LicenseMode::Session, 3, Some(777));
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    assert_eq!(e.login(a, slot_ref(1), t), Err(ErrorCode::NoDongle));
    assert_eq!(e.login(a, slot_ref(777), t), Ok(2));
    let second = SlotRef {
        dng_nr: 2,
        ..slot_ref(777)
    };
    assert_eq!(e.login(a, second, t), Err(ErrorCode::NoDongle));
    assert_eq!(e.read_serial(1, 777), Ok(1_234_567_890));
    assert_eq!(
        e.read_serial(0, 777),
        Ok(1_234_567_890),
        "DngNr 0 is the first dongle"
    );
    assert_eq!(e.dongle_count(), Ok(1));
    // The key is pulled: -102, and its seat count survives until it is back.
    e.update_dongles(Vec::new());
    assert_eq!(e.dongle_count(), Err(ErrorCode::NoDongle));
    assert_eq!(e.login(a, slot_ref(777), t), Err(ErrorCode::NoDongle));
    assert_eq!(e.read_serial(1, 777), Err(ErrorCode::NoDongle));
}

#[test]
fn read_data_returns_the_simulated_variables() {
    let sections = vec![DongleSection {
        number: 1,
        data: vec![10, 20, 30],
        ..DongleSection::default()
    }];
    let mut e = Engine::new(EngineSettings::default());
    let found: Vec<_> = sections.iter().map(Detected::simulated).collect();
    e.update_dongles(describe(&found, &sections));
    assert_eq!(e.read_data(1, 0, 1, 5), Ok(vec![20, 30]));
    assert_eq!(e.read_data(1, 0, 9, 5), Ok(vec![]));
    assert_eq!(e.read_serial(1, 0), Ok(1_000_000_001));
}

// ----- 6.7: naming -----

#[test]
fn s6_7_names_appear_in_status_and_login_names() {
    let mut e = engine(3);
    let t = Instant::now();
    let mut c = client([10, 0, 0, 3], 1);
    c.name = "Client3".into();
    let a = open(&mut e, c, t);
    e.login(a, at(SLOT), t).expect("login");
    e.login(a, at(2), t).expect("login 2");
    let snap = e.snapshot(t, 5_000);
    assert_eq!(snap.dongles[0].name, "MyDongle");
    assert_eq!(snap.dongles[0].slots[0].name, "Foo Application");
    assert_eq!(snap.dongles[0].slots[1].name, "AppSlot2");
    let names: Vec<_> = snap
        .logins
        .iter()
        .map(|l| (&l.dongle[..], &l.slot_name[..]))
        .collect();
    assert_eq!(
        names,
        [("MyDongle", "Foo Application"), ("MyDongle", "AppSlot2")]
    );
    assert_eq!(
        e.login_names(at(SLOT), t),
        Ok((1, vec!["Client3".to_owned()]))
    );
}

// ----- 6.7a: session-based licence -----

#[test]
fn s6_7a_each_session_on_one_pc_takes_its_own_seat() {
    let mut e = engine_with(LicenseMode::Session, 3);
    let t = Instant::now();
    let pc = [192, 168, 1, 10];
    let a = open(&mut e, client(pc, 1000), t);
    let b = open(&mut e, client(pc, 1001), t);
    assert_eq!(e.login(a, at(SLOT), t), Ok(2));
    assert_eq!(e.login(b, at(SLOT), t), Ok(1));
    assert_eq!(e.logout(a, at(SLOT), t), Ok(2));
    assert_eq!(e.logout(b, at(SLOT), t), Ok(3));
}

// ----- 6.7b: IP-based licence -----

/// The manual's walkthrough: processes 1, 2, 3 on one PC (one IP).
#[test]
fn s6_7b_ip_licence_walkthrough_with_three_processes() {
    let mut e = engine_with(LicenseMode::Ip, 2);
    let t = Instant::now();
    let ip1 = [192, 168, 1, 10];
    let p1 = open(&mut e, client(ip1, 1001), t);
    let p2 = open(&mut e, client(ip1, 1002), t);
    let p3 = open(&mut e, client(ip1, 1003), t);
    let other = open(&mut e, client([192, 168, 1, 11], 1), t);

    assert_eq!(
        e.login(p1, at(SLOT), t),
        Ok(1),
        "process 1 takes IP1's seat"
    );
    assert_eq!(
        e.login(p2, at(SLOT), t),
        Ok(1),
        "process 2 only refreshes IP1's login"
    );
    assert_eq!(
        e.login(p3, at(SLOT), t),
        Ok(1),
        "process 3 only refreshes IP1's login"
    );
    assert_eq!(taken(&mut e, t), 1);
    assert_eq!(
        e.snapshot(t, 0).logins.len(),
        3,
        "each process's record is kept"
    );

    assert_eq!(
        e.logout(p2, at(SLOT), t),
        Ok(1),
        "other records with IP1 remain"
    );
    assert_eq!(
        e.logout(p1, at(SLOT), t),
        Ok(1),
        "process 3's record remains"
    );
    assert_eq!(taken(&mut e, t), 1);
    assert_eq!(
        e.logout(p3, at(SLOT), t),
        Ok(2),
        "last record: the seat returns"
    );
    assert_eq!(taken(&mut e, t), 0);

    // Another IP is another identity.
    assert_eq!(e.login(p1, at(SLOT), t), Ok(1));
    assert_eq!(e.login(other, at(SLOT), t), Ok(0));
    assert_eq!(
        e.login_names(at(SLOT), t).map(|(_, n)| n),
        Ok(vec!["192.168.1.10".to_owned(), "192.168.1.11".to_owned()])
    );
}

#[test]
fn s6_7b_ip_seat_returns_when_the_last_record_times_out() {
    let mut e = engine_with(LicenseMode::Ip, 1);
    let t = Instant::now();
    let ip1 = [192, 168, 1, 10];
    let p1 = open(&mut e, client(ip1, 1001), t);
    let p2 = open(&mut e, client(ip1, 1002), t);
    let other = open(&mut e, client([192, 168, 1, 11], 1), t);
    e.login(p1, at(SLOT), t).expect("p1");
    e.login(p2, at(SLOT), t + Duration::from_secs(200))
        .expect("p2");
    // p1's record times out at 301 s, but p2's (refreshed at 200 s) keeps the seat.
    let t1 = t + Duration::from_secs(400);
    e.sweep(t1);
    assert_eq!(e.snapshot(t1, 0).logins.len(), 1);
    assert_eq!(e.login(other, at(SLOT), t1), Err(ErrorCode::NoLicense));
    // p2's record times out at 501 s: the seat returns.
    let t2 = t + Duration::from_secs(501);
    assert_eq!(e.login(other, at(SLOT), t2), Ok(0));
}

#[test]
fn s6_7b_ipv4_mapped_addresses_are_the_same_ip() {
    let mut e = engine_with(LicenseMode::Ip, 1);
    let t = Instant::now();
    let v4 = open(&mut e, client([10, 1, 1, 1], 1), t);
    let mapped = IpAddr::from(Ipv4Addr::new(10, 1, 1, 1).to_ipv6_mapped());
    let v6 = open(&mut e, ClientInfo::at(SocketAddr::new(mapped, 2)), t);
    assert_eq!(e.login(v4, at(SLOT), t), Ok(0));
    assert_eq!(e.login(v6, at(SLOT), t), Ok(0));
}

// ----- admin, snapshot, events -----

#[test]
fn admin_actions_disconnect_and_log_out() {
    let mut e = engine(2);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    e.login(a, at(SLOT), t).expect("a");
    e.login(b, at(SLOT), t).expect("b");
    let key = e.snapshot(t, 0).dongles[0].key.clone();
    e.logout_login(b, &key, SLOT).expect("admin logout");
    assert_eq!(e.logout_login(b, &key, SLOT), Err(ErrorCode::NotLoggedIn));
    assert_eq!(taken(&mut e, t), 1);
    e.disconnect_session(a).expect("disconnect");
    assert_eq!(e.disconnect_session(a), Err(ErrorCode::SessionPassword));
    assert_eq!(taken(&mut e, t), 0);
    assert_eq!(e.login(a, at(SLOT), t), Err(ErrorCode::SessionPassword));
}

#[test]
fn snapshot_reports_taken_peak_and_times() {
    let mut e = engine(3);
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    let b = open(&mut e, client([10, 0, 0, 2], 1), t);
    e.login(a, at(SLOT), t).expect("a");
    e.login(b, at(SLOT), t + Duration::from_secs(10))
        .expect("b");
    e.logout(a, at(SLOT), t + Duration::from_secs(20))
        .expect("logout");
    let snap = e.snapshot(t + Duration::from_secs(30), 1_000_000);
    let slot = snap.slot(SLOT).expect("slot");
    assert_eq!((slot.limit, slot.taken, slot.peak), (3, 1, 2));
    assert_eq!(snap.logins.len(), 1);
    assert_eq!(snap.logins[0].last_refresh_ms, 980_000);
    assert_eq!(snap.logins[0].identity, format!("session {b}"));
    let json = serde_json::to_string(&snap).expect("json");
    let back: StatusSnapshot = serde_json::from_str(&json).expect("back");
    assert_eq!(back, snap);
}

#[test]
fn seat_events_are_reported() {
    let mut e = engine(2);
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    e.set_observer(Box::new(move |ev: &SeatEvent| {
        sink.lock()
            .expect("lock")
            .push((ev.kind, ev.reason, ev.taken));
    }));
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    e.login(a, at(SLOT), t).expect("login");
    e.login(a, at(SLOT), t).expect("refresh: no event");
    e.logout(a, at(SLOT), t).expect("logout");
    e.login(a, at(SLOT), t).expect("login");
    e.sweep(t + Duration::from_secs(301));
    assert_eq!(
        *events.lock().expect("lock"),
        [
            (SeatEventKind::Taken, None, 1),
            (SeatEventKind::Freed, Some(RemovalReason::Logout), 0),
            (SeatEventKind::Taken, None, 1),
            (SeatEventKind::Freed, Some(RemovalReason::LoginTimeout), 0),
        ]
    );
}

#[test]
fn state_changes_are_reported_but_refreshes_are_not() {
    let mut e = engine(2);
    let changes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = changes.clone();
    e.set_state_observer(Box::new(move |change: StateChange| {
        sink.lock().expect("lock").push(change);
    }));
    let t = Instant::now();
    let a = open(&mut e, client([10, 0, 0, 1], 1), t);
    e.authorize(a, 5, t, |_| Ok(())).expect("authorized");
    e.login(a, at(SLOT), t).expect("login");
    e.authorize(a, 6, t, |_| Ok(())).expect("authorized");
    e.login(a, at(SLOT), t)
        .expect("refresh: nothing to persist");
    e.release(a, t).expect("release");
    let key = e.snapshot(t, 0).dongles[0].key.clone();
    assert_eq!(
        *changes.lock().expect("lock"),
        [
            StateChange::SessionOpened {
                id: a,
                client: client([10, 0, 0, 1], 1),
                secret: SessionSecret::new([1; 64]),
                last_packet: 1,
            },
            StateChange::LoginAdded {
                session: a,
                dongle_key: key.clone(),
                slot: SLOT,
                last_packet: 5,
            },
            StateChange::LoginRemoved {
                session: a,
                dongle_key: key,
                slot: SLOT,
            },
            StateChange::SessionClosed { id: a },
        ]
    );
}

#[test]
fn restored_sessions_authenticate_and_keep_their_seats_exactly() {
    let t = Instant::now();
    let mut before = engine_with(LicenseMode::Ip, 2);
    let a = open(&mut before, client([10, 0, 0, 1], 1), t);
    let b = open(&mut before, client([10, 0, 0, 1], 2), t);
    before.login(a, at(SLOT), t).expect("a");
    before.login(b, at(SLOT), t).expect("b shares a's IP seat");
    let key = before.snapshot(t, 0).dongles[0].key.clone();

    // A new engine (the restarted server), an hour later.
    let now = t + Duration::from_secs(3600);
    let mut e = engine_with(LicenseMode::Ip, 2);
    for (id, port) in [(a, 1), (b, 2)] {
        e.restore_session(
            RestoredSession {
                id,
                client: client([10, 0, 0, 1], port),
                secret: SessionSecret::new([1; 64]),
                last_packet: 7,
                started: t,
                logged_in: true,
            },
            now,
        )
        .expect("restored");
        e.restore_login(id, &key, SLOT, t, now)
            .expect("login restored");
    }
    assert_eq!(taken(&mut e, now), 1, "one IP seat, not two");
    // Packet numbers continue above the persisted one.
    assert_eq!(
        e.authorize(a, 7, now, |_| Ok(())),
        Err(ErrorCode::PacketNumber)
    );
    e.authorize(a, 8, now, |_| Ok(())).expect("next packet");
    assert_eq!(e.login(a, at(SLOT), now), Ok(1), "a refresh, no new seat");
    // Fresh timeouts: still held just before LoginTimeOut from the restart, gone after.
    assert_eq!(taken(&mut e, now + Duration::from_secs(300)), 1);
    assert_eq!(taken(&mut e, now + Duration::from_secs(301)), 0);

    // Refusals: duplicate session, unknown dongle or slot, no seat left.
    let mut e = engine(1);
    let restored = |id, port| RestoredSession {
        id,
        client: client([10, 0, 0, 9], port),
        secret: SessionSecret::new([2; 64]),
        last_packet: 1,
        started: now,
        logged_in: false,
    };
    e.restore_session(restored(a, 1), now).expect("a");
    assert_eq!(
        e.restore_session(restored(a, 1), now),
        Err(RestoreRefusal::Duplicate)
    );
    e.restore_session(restored(b, 2), now).expect("b");
    assert_eq!(
        e.restore_login(a, "sim:1", SLOT, now, now),
        Err(RestoreRefusal::NoDongle)
    );
    assert_eq!(
        e.restore_login(a, &key, 9, now, now),
        Err(RestoreRefusal::NoSlot)
    );
    let c = SessionId::new(12345).expect("id");
    assert_eq!(
        e.restore_login(c, &key, SLOT, now, now),
        Err(RestoreRefusal::NoSession)
    );
    e.restore_login(a, &key, SLOT, now, now)
        .expect("the only seat");
    assert_eq!(
        e.restore_login(b, &key, SLOT, now, now),
        Err(RestoreRefusal::NoSeat)
    );
    assert_eq!(taken(&mut e, now), 1);
}

#[test]
fn max_sessions_is_enforced() {
    let mut e = Engine::new(EngineSettings {
        max_sessions: 2,
        ..EngineSettings::default()
    });
    let t = Instant::now();
    open(&mut e, client([10, 0, 0, 1], 1), t);
    open(&mut e, client([10, 0, 0, 1], 2), t);
    assert_eq!(
        e.open_session(client([10, 0, 0, 1], 3), SessionSecret::new([0; 64]), 1, t),
        Err(ErrorCode::TooManySessions)
    );
    // Expired sessions make room.
    let later = t + Duration::from_secs(3601);
    assert!(
        e.open_session(
            client([10, 0, 0, 1], 3),
            SessionSecret::new([0; 64]),
            1,
            later
        )
        .is_ok()
    );
}

// ----- exactness under interleaved clients (property) -----

#[derive(Debug, Clone)]
enum Op {
    Login(usize),
    Logout(usize),
    Release(usize),
    Advance(u64),
}

fn op(clients: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..clients).prop_map(Op::Login),
        2 => (0..clients).prop_map(Op::Logout),
        1 => (0..clients).prop_map(Op::Release),
        1 => (0u64..400).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Many clients (several per IP) interleave logins, logouts, releases and time: the seats
    /// taken never exceed the limit, always equal the distinct identities with a live record,
    /// and return to zero once everyone logged out or timed out.
    #[test]
    fn seats_are_exact_under_interleaving(
        ip_mode: bool,
        limit in 1u32..5,
        ops in proptest::collection::vec(op(12), 1..300),
    ) {
        let mode = if ip_mode { LicenseMode::Ip } else { LicenseMode::Session };
        let mut e = engine_with(mode, limit);
        let mut now = Instant::now();
        // 12 clients on 4 IPs.
        let mut packet = 10u64;
        let mut ids: Vec<SessionId> = (0..12u8)
            .map(|i| open(&mut e, client([10, 0, 0, i % 4], u16::from(i)), now))
            .collect();
        for op in ops {
            match op {
                Op::Login(i) => {
                    let r = e.login(ids[i], at(SLOT), now);
                    prop_assert!(matches!(r, Ok(_) | Err(ErrorCode::NoLicense)), "{r:?}");
                    if let Ok(left) = r {
                        prop_assert!(left >= 0);
                    }
                }
                Op::Logout(i) => {
                    let r = e.logout(ids[i], at(SLOT), now);
                    prop_assert!(matches!(r, Ok(_) | Err(ErrorCode::NotLoggedIn)), "{r:?}");
                }
                Op::Release(i) => {
                    e.release(ids[i], now).expect("release");
                    ids[i] = open(&mut e, client([10, 0, 0, (i % 4) as u8], i as u16), now);
                }
                Op::Advance(s) => {
                    now += Duration::from_secs(s);
                    // Keep every session alive; only logins time out.
                    for id in &ids {
                        packet += 1;
                        e.authorize(*id, packet, now, |_| Ok(())).expect("alive");
                    }
                }
            }
            let snap = e.snapshot(now, 0);
            let slot = snap.slot(SLOT).expect("slot");
            prop_assert!(slot.taken <= limit);
            let holders: std::collections::BTreeSet<_> =
                snap.logins.iter().filter(|l| l.slot == SLOT).map(|l| l.identity.clone()).collect();
            prop_assert_eq!(slot.taken as usize, holders.len());
        }
        for id in &ids {
            let _ = e.logout(*id, at(SLOT), now);
        }
        prop_assert_eq!(e.login_count(at(SLOT), now), Ok(0));
        // And time alone also brings it to zero.
        for id in &ids {
            let _ = e.login(*id, at(SLOT), now);
        }
        prop_assert_eq!(e.login_count(at(SLOT), now + Duration::from_secs(301)), Ok(0));
    }
}

#[test]
fn read_data_is_refused_for_a_dongle_whose_data_cannot_be_read() {
    // A real USB key: its data protocol is not public, so the descriptor says it cannot read.
    let sections = vec![DongleSection {
        number: 1,
        data: vec![10, 20, 30],
        ..DongleSection::default()
    }];
    let mut found: Vec<_> = sections.iter().map(Detected::simulated).collect();
    found[0].reads_data = false;
    let mut e = Engine::new(EngineSettings::default());
    e.update_dongles(describe(&found, &sections));
    assert_eq!(e.read_data(1, 0, 0, 3), Err(ErrorCode::Unsupported));
    assert_eq!(e.read_serial(1, 0), Ok(1_000_000_001));
}
