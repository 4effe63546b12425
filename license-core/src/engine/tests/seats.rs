//! Seats (6.6: logins, refreshes, logouts, the login timeout), dongle presence and data, names
//! (6.7) and session- vs IP-based licensing (6.7a, 6.7b).

use super::*;

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
