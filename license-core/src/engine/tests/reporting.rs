//! What the engine reports and restores: admin actions, snapshots, seat events and state
//! changes, sessions restored from the store, and the session limit.

use super::*;

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
