//! Tests of session admission: quotas per address and site, eviction of never-logged-in
//! sessions, the pre-login timeout, and restored sessions keeping their expiry.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::dongle::{Detected, DongleSection, describe};

const SLOT: u16 = 1;

fn engine(settings: EngineSettings) -> Engine {
    let mut e = Engine::new(settings);
    let sections = vec![DongleSection {
        number: 1,
        sernr: Some(1_234_567_890),
        limits: [(SLOT, 100)].into(),
        ..DongleSection::default()
    }];
    let found: Vec<_> = sections.iter().map(Detected::simulated).collect();
    e.update_dongles(describe(&found, &sections));
    e
}

fn small(per_address: usize, per_site: usize, max: usize) -> Engine {
    engine(EngineSettings {
        max_sessions: max,
        max_sessions_per_address: per_address,
        max_sessions_per_site: per_site,
        ..EngineSettings::default()
    })
}

fn client(ip: [u8; 4], port: u16, site: Option<&str>) -> ClientInfo {
    ClientInfo {
        addr: SocketAddr::from((ip, port)),
        site: site.map(str::to_owned),
        name: String::new(),
    }
}

fn open(e: &mut Engine, c: ClientInfo, now: Instant) -> Result<SessionId, ErrorCode> {
    e.open_session(c, SessionSecret::new([3; 64]), 1, now)
}

fn alive(e: &mut Engine, id: SessionId, packet: u64, now: Instant) -> bool {
    e.authorize(id, packet, now, |_| Ok(())).is_ok()
}

const ATTACKER: [u8; 4] = [10, 0, 0, 66];
const GOOD: [u8; 4] = [10, 0, 0, 7];

#[test]
fn an_address_at_its_quota_loses_its_own_oldest_prelogin_session() {
    let mut e = small(3, 100, 100);
    let t = Instant::now();
    let good = open(&mut e, client(GOOD, 1, None), t).expect("good");
    let first = open(&mut e, client(ATTACKER, 1, None), t).expect("1");
    let later = t + Duration::from_millis(1);
    let flood: Vec<_> = (2..1000)
        .map(|port| open(&mut e, client(ATTACKER, port, None), later).expect("room is made"))
        .collect();
    assert_eq!(
        e.index_counts(IpAddr::from(ATTACKER)),
        (3, 3),
        "never more than its quota"
    );
    assert_eq!(e.session_count(), 4);
    assert!(!alive(&mut e, first, 2, later), "its oldest went first");
    assert!(alive(&mut e, flood[flood.len() - 1], 2, later));
    assert!(
        alive(&mut e, good, 2, later),
        "another address is untouched"
    );
}

#[test]
fn an_address_whose_sessions_all_hold_logins_is_refused_at_its_quota() {
    let mut e = small(2, 100, 100);
    let t = Instant::now();
    for port in 1..=2 {
        let id = open(&mut e, client(ATTACKER, port, None), t).expect("open");
        e.login(id, SlotRef::first_dongle(SLOT), t).expect("login");
    }
    assert_eq!(
        open(&mut e, client(ATTACKER, 3, None), t),
        Err(ErrorCode::TooManySessions),
        "logged-in sessions are never evicted"
    );
    assert!(open(&mut e, client(GOOD, 1, None), t).is_ok());
}

#[test]
fn a_site_at_its_quota_loses_its_own_oldest_prelogin_session() {
    let mut e = small(100, 4, 100);
    let t = Instant::now();
    let other_site = open(&mut e, client([10, 1, 0, 1], 1, Some("b")), t).expect("b");
    let first = open(&mut e, client([10, 0, 0, 1], 1, Some("a")), t).expect("a");
    let later = t + Duration::from_millis(1);
    // Many addresses of one site: the site quota holds them.
    for host in 2..200u8 {
        open(&mut e, client([10, 0, 0, host], 1, Some("a")), later).expect("room is made");
    }
    assert_eq!(e.session_count(), 5);
    assert!(!alive(&mut e, first, 2, later));
    assert!(alive(&mut e, other_site, 2, later));
}

#[test]
fn a_full_server_evicts_from_the_largest_prelogin_holder_and_refuses_it() {
    let mut e = small(100, 100, 10);
    let t = Instant::now();
    let holder = open(&mut e, client(GOOD, 1, None), t).expect("holder");
    e.login(holder, SlotRef::first_dongle(SLOT), t)
        .expect("login");
    let pending = open(&mut e, client([10, 0, 0, 8], 1, None), t).expect("pending");
    let flood: Vec<_> = (1..=8)
        .map(|port| {
            let at = t + Duration::from_millis(u64::from(port));
            open(&mut e, client(ATTACKER, port, None), at).expect("flood")
        })
        .collect();
    let now = t + Duration::from_secs(1);
    assert_eq!(
        open(&mut e, client(ATTACKER, 100, None), now),
        Err(ErrorCode::TooManySessions),
        "the flood itself is refused"
    );
    let newcomer = open(&mut e, client([10, 0, 0, 9], 1, None), now).expect("newcomer");
    assert_eq!(e.session_count(), 10);
    assert!(
        !alive(&mut e, flood[0], 2, now),
        "the flood's oldest made room"
    );
    for id in [holder, pending, newcomer] {
        assert!(alive(&mut e, id, 2, now));
    }
    assert_eq!(e.login(newcomer, SlotRef::first_dongle(SLOT), now), Ok(98));
}

fn hardened() -> EngineSettings {
    EngineSettings {
        prelogin_timeout: Duration::from_secs(60),
        ..EngineSettings::default()
    }
}

#[test]
fn never_logged_in_sessions_time_out_after_the_prelogin_timeout() {
    let mut e = engine(hardened());
    let t = Instant::now();
    let idle = open(&mut e, client(GOOD, 1, None), t).expect("idle");
    let busy = open(&mut e, client(GOOD, 2, None), t).expect("busy");
    let user = open(&mut e, client(GOOD, 3, None), t).expect("user");
    e.login(user, SlotRef::first_dongle(SLOT), t)
        .expect("login");
    e.logout(user, SlotRef::first_dongle(SLOT), t)
        .expect("logout");
    let at = |s| t + Duration::from_secs(s);
    assert!(alive(&mut e, busy, 2, at(50)), "calls keep it");
    e.sweep(at(60));
    assert_eq!(e.session_count(), 3, "60 s: still there");
    e.sweep(at(61));
    assert!(!alive(&mut e, idle, 2, at(61)), "61 s without a call: gone");
    assert!(alive(&mut e, busy, 3, at(109)));
    assert!(
        alive(&mut e, user, 2, at(3600)),
        "a session that logged in once has SessionTimeOut"
    );
}

#[tokio::test(start_paused = true)]
async fn prelogin_timeout_under_paused_time() {
    let mut e = engine(EngineSettings {
        prelogin_timeout: Duration::from_secs(5),
        ..EngineSettings::default()
    });
    let id = open(&mut e, client(GOOD, 1, None), Instant::now()).expect("open");
    tokio::time::advance(Duration::from_secs(5)).await;
    e.sweep(Instant::now());
    assert_eq!(e.session_count(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    e.sweep(Instant::now());
    assert_eq!(e.session_count(), 0);
    assert_eq!(
        e.authorize(id, 2, Instant::now(), |_| Ok(())),
        Err(ErrorCode::SessionPassword)
    );
}

#[test]
fn restored_prelogin_sessions_keep_their_original_expiry() {
    let t = Instant::now();
    let restored = |id: u64, logged_in| RestoredSession {
        id: SessionId::new(id).expect("id"),
        client: client(ATTACKER, 1, None),
        secret: SessionSecret::new([4; 64]),
        last_packet: 1,
        started: t,
        logged_in,
    };
    let mut e = engine(hardened());
    let now = t + Duration::from_secs(30);
    e.restore_session(restored(1, false), now)
        .expect("30 s old: still valid");
    e.restore_session(restored(2, true), now)
        .expect("logged in");
    e.sweep(t + Duration::from_secs(61));
    assert_eq!(e.session_count(), 1, "the pre-login one expired on time");
    let mut e = engine(hardened());
    assert_eq!(
        e.restore_session(restored(1, false), t + Duration::from_secs(61)),
        Err(RestoreRefusal::Expired)
    );
    assert_eq!(e.session_count(), 0);
}
