use std::time::Duration;

use super::*;
use crate::store::{StateStore, UsageEvent, UsageKind};

const DAY: u64 = 86_400_000;
const MIN: u64 = 60_000;

fn event(minute: u64, kind: UsageKind, site: Option<&str>, taken: u32) -> UsageEvent {
    UsageEvent {
        at_ms: 20_000 * DAY + minute * MIN,
        kind,
        dongle_key: "sim:1".to_owned(),
        slot: 1,
        slot_name: "CAD".to_owned(),
        session: 7,
        client_addr: "10.0.0.1:5000".to_owned(),
        site: site.map(str::to_owned),
        code: (kind == UsageKind::Refused).then_some(-31),
        taken,
        limit: 2,
    }
}

/// A query over all time.
fn everything() -> UsageQuery {
    UsageQuery {
        from_ms: 0,
        to_ms: u64::MAX / 2,
        slot: None,
        site: None,
        now_ms: u64::MAX / 2,
    }
}

#[test]
fn summary_has_peaks_averages_time_at_limit_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let (store, _) = StateStore::open(&path).expect("open");
    let script = [
        event(0, UsageKind::Login, Some("a"), 1),
        event(10, UsageKind::Login, None, 2),
        event(20, UsageKind::Refused, Some("a"), 2),
        event(30, UsageKind::Logout, Some("a"), 1),
        event(60, UsageKind::LoginTimeout, None, 0),
    ];
    for e in &script {
        store.record_usage(e.clone());
    }
    assert!(store.flush(Duration::from_secs(10)), "flushed");
    store.close();

    let conn = open_file(&path).expect("open for reports");
    let q = UsageQuery {
        from_ms: 20_000 * DAY,
        to_ms: 20_000 * DAY + 120 * MIN,
        slot: None,
        site: None,
        now_ms: 30_000 * DAY,
    };
    assert_eq!(events(&conn, &q).expect("events"), script);
    let s = summary(&conn, &q).expect("summary");
    assert_eq!(s.slots.len(), 1, "{s:?}");
    let slot = &s.slots[0];
    assert_eq!((slot.peak, slot.limit, slot.refusals), (2, 2, 1));
    // Minutes 10 to 30 inclusive at the limit; 82 seat-minutes over 120 minutes.
    assert!((slot.hours_at_limit - 0.35).abs() < 1e-9, "{slot:?}");
    assert!((slot.average - 0.68).abs() < 1e-9, "{slot:?}");
    let sites: Vec<_> = slot
        .sites
        .iter()
        .map(|s| (s.site.clone(), s.peak, s.refusals))
        .collect();
    assert_eq!(sites, [(None, 1, 0), (Some("a".to_owned()), 1, 1)]);

    // Seats carry into a later period; a filter on the site keeps the AppSlot's total.
    let later = UsageQuery {
        from_ms: q.from_ms + 40 * MIN,
        site: Some(String::new()),
        ..q.clone()
    };
    let s = summary(&conn, &later).expect("later");
    assert_eq!(s.slots[0].peak, 1);
    assert_eq!(s.slots[0].sites.len(), 1);
    assert_eq!(s.slots[0].sites[0].site, None);

    let csv = render::events_csv(&events(&conn, &q).expect("events")).expect("csv");
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(
        csv.lines()
            .nth(3)
            .is_some_and(|l| l.contains(",refused,") && l.ends_with(",-31,2,2")),
        "{csv}"
    );
    let table = render::summary_table(&summary(&conn, &q).expect("summary"));
    assert!(
        table.contains("(direct)") && table.contains("(all)"),
        "{table}"
    );
}

#[test]
fn old_history_is_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let retention = crate::store::Retention {
        history_days: 10,
        event_days: 2,
    };
    let (store, _) = StateStore::open_with(&path, retention).expect("open");
    store.record_usage(event(0, UsageKind::Login, None, 1));
    let mut late = event(0, UsageKind::Logout, None, 0);
    late.at_ms += 5 * DAY;
    store.record_usage(late.clone());
    assert!(store.flush(Duration::from_secs(10)), "flushed");
    store.close();
    let conn = open_file(&path).expect("open");
    let all = everything();
    // The first event is older than 2 days when the second is written; its minute is not.
    assert_eq!(events(&conn, &all).expect("events"), [late]);
    assert_eq!(summary(&conn, &all).expect("summary").slots[0].peak, 1);
}

#[test]
fn a_missing_file_is_named_and_an_open_store_can_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = open_file(&dir.path().join("none.db")).expect_err("missing");
    assert!(missing.to_string().contains("none.db"), "{missing}");
    assert!(
        !dir.path().join("none.db").exists(),
        "reports create nothing"
    );
    let path = dir.path().join("state.db");
    let (store, _) = StateStore::open(&path).expect("open");
    let all = everything();
    // The writer keeps its file open; a report reads what it committed, before and after a
    // commit made while the report's connection is open.
    let conn = open_file(&path).expect("readable while the store is open");
    assert_eq!(events(&conn, &all).expect("events"), []);
    store.record_usage(event(0, UsageKind::Login, None, 1));
    assert!(store.flush(Duration::from_secs(10)), "flushed");
    assert_eq!(events(&conn, &all).expect("events").len(), 1);
    assert!(
        conn.execute("DELETE FROM usage_events", []).is_err(),
        "reports cannot write"
    );
    store.close();
}

#[test]
fn series_cut_the_period_into_round_buckets_up_to_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let (store, _) = StateStore::open(&path).expect("open");
    for e in [
        event(0, UsageKind::Login, Some("a"), 1),
        event(10, UsageKind::Login, None, 2),
        event(20, UsageKind::Refused, Some("a"), 2),
        event(30, UsageKind::Logout, Some("a"), 1),
        event(60, UsageKind::LoginTimeout, None, 0),
    ] {
        store.record_usage(e);
    }
    assert!(store.flush(Duration::from_secs(10)), "flushed");
    let conn = open_file(&path).expect("open for reports");
    let day = UsageQuery {
        from_ms: 20_000 * DAY,
        to_ms: 20_001 * DAY,
        slot: None,
        site: None,
        now_ms: 30_000 * DAY,
    };
    let s = series(&conn, &day).expect("series");
    assert_eq!((s.step_ms, s.times.len()), (5 * MIN, 288));
    assert_eq!(s.times[1], 20_000 * DAY + 5 * MIN);
    let slot = &s.slots[0];
    // Buckets of 5 minutes: both seats from minute 10 to 30, one until the timeout at 60.
    assert_eq!(slot.peak[..14], [1, 1, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0]);
    assert!(slot.peak[14..].iter().all(|p| *p == 0));
    assert_eq!(slot.limit[0], 2);
    assert_eq!(slot.refusals.iter().sum::<u64>(), 1);
    assert_eq!(slot.refusals[4], 1);
    // The chart's highest point is the summary's peak.
    let peak = summary(&conn, &day).expect("summary").slots[0].peak;
    assert_eq!(slot.peak.iter().max(), Some(&peak));
    let sites: Vec<_> = slot
        .sites
        .iter()
        .map(|x| (x.site.clone(), x.peak[..14].to_vec(), x.refusals[4]))
        .collect();
    assert_eq!(
        sites,
        [
            (None, vec![0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0], 0),
            (
                Some("a".to_owned()),
                vec![1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                1
            ),
        ]
    );

    // A year is drawn per day; a period reaching past now stops at now.
    let year = UsageQuery {
        to_ms: 20_365 * DAY,
        ..day.clone()
    };
    let s = series(&conn, &year).expect("year");
    assert_eq!((s.step_ms, s.times.len()), (DAY, 365));
    assert_eq!(s.slots[0].peak[..2], [2, 0]);
    let until_now = UsageQuery {
        now_ms: 20_000 * DAY + 30 * MIN,
        ..day
    };
    let s = series(&conn, &until_now).expect("now");
    assert_eq!((s.step_ms, s.times.len()), (MIN, 30));
    store.close();
}
