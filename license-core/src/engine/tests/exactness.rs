//! Seat exactness under interleaved clients (property test).

use proptest::prelude::*;

use super::*;

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
