//! Engine tests: one or more per numbered rule of sections 6.1–6.8 of the manual that the
//! engine owns, plus a property test of seat exactness under interleaved clients. Here: the
//! shared fixtures and sessions (6.1–6.3, packet numbers); seats and licensing modes in
//! [`seats`], what the engine reports and restores in [`reporting`], the property test in
//! [`exactness`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

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

mod exactness;
mod reporting;
mod seats;
