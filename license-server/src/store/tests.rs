//! Store tests: what is written comes back, private file mode, unusable files moved aside,
//! unavailable files reported, one owner at a time.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

fn id(n: u64) -> SessionId {
    SessionId::new(n).expect("id")
}

fn opened(n: u64, site: Option<&str>) -> StateChange {
    StateChange::SessionOpened {
        id: id(n),
        client: ClientInfo {
            addr: SocketAddr::from(([192, 0, 2, 7], 51_234)),
            site: site.map(str::to_owned),
            name: "pc7/4242".to_owned(),
        },
        secret: SessionSecret::new([7; 64]),
        last_packet: 1,
    }
}

fn login(n: u64, slot: u16, last_packet: u64) -> StateChange {
    StateChange::LoginAdded {
        session: id(n),
        dongle_key: "sim:1234567890".to_owned(),
        slot,
        last_packet,
    }
}

#[test]
fn changes_come_back_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state").join("mxnet2-state.db");
    let (store, persisted) = StateStore::open(&path).expect("open");
    assert!(persisted.sessions.is_empty() && persisted.logins.is_empty());
    assert_eq!(store.status().opened, OpenedAs::Created);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds session keys");
    }
    // The large id uses all 64 bits.
    let big = u64::MAX - 5;
    for change in [
        opened(1, Some("branch-a")),
        opened(big, None),
        opened(3, None),
        login(1, 1, 4),
        login(1, 2, 5),
        login(big, 1, 9),
        StateChange::LoginRemoved {
            session: id(1),
            dongle_key: "sim:1234567890".to_owned(),
            slot: 2,
        },
        StateChange::SessionClosed { id: id(3) },
    ] {
        store.record(change);
    }
    assert!(store.flush(LIMIT));
    let status = store.status();
    assert_eq!((status.writes, status.queued, status.errors), (8, 0, 0));
    store.close();
    drop(store);

    let (store, persisted) = StateStore::open(&path).expect("reopen");
    assert_eq!(store.status().opened, OpenedAs::Existing);
    let mut sessions: Vec<_> = persisted
        .sessions
        .iter()
        .map(|s| (s.id.get(), s.client.site.clone(), s.last_packet))
        .collect();
    sessions.sort();
    assert_eq!(
        sessions,
        [(1, Some("branch-a".to_owned()), 5), (big, None, 9)],
        "the highest packet number of each session's last login"
    );
    let s1 = persisted
        .sessions
        .iter()
        .find(|s| s.id == id(1))
        .expect("s1");
    assert_eq!(s1.secret, SessionSecret::new([7; 64]));
    assert_eq!(s1.client.name, "pc7/4242");
    assert_eq!(s1.client.addr, SocketAddr::from(([192, 0, 2, 7], 51_234)));
    let mut logins: Vec<_> = persisted
        .logins
        .iter()
        .map(|l| (l.session.get(), l.slot))
        .collect();
    logins.sort_unstable();
    assert_eq!(logins, [(1, 1), (big, 1)]);
    assert_eq!(persisted.skipped, 0);
}

#[test]
fn unusable_files_are_moved_aside_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        "this is not a database, it is a shopping list\n".repeat(100),
    )
    .expect("write");
    let (store, persisted) = StateStore::open(&path).expect("replaced, not failed");
    assert!(persisted.sessions.is_empty());
    let status = store.status();
    assert_eq!(status.opened, OpenedAs::Replaced);
    let aside = PathBuf::from(status.moved_aside.expect("moved aside"));
    assert!(
        aside
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("state.db.corrupt-")),
        "{aside:?}"
    );
    assert!(
        std::fs::read_to_string(&aside)
            .expect("kept")
            .starts_with("this is not a database"),
        "the operator can still look at it"
    );
    assert!(status.problem.is_some());
    // The replacement works.
    store.record(opened(1, None));
    assert!(store.flush(LIMIT));
    store.close();

    // A database of another schema version is not ours either.
    let other = dir.path().join("other.db");
    let conn = Connection::open(&other).expect("sqlite");
    conn.execute_batch("PRAGMA user_version = 99; CREATE TABLE t (x);")
        .expect("schema");
    drop(conn);
    let (store, _) = StateStore::open(&other).expect("replaced");
    let status = store.status();
    assert_eq!(status.opened, OpenedAs::Replaced);
    assert!(
        status.problem.as_deref().is_some_and(|p| p.contains("99")),
        "{status:?}"
    );
}

#[test]
fn unavailable_files_are_reported_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").expect("write");
    let err = StateStore::open(&blocker.join("state.db")).expect_err("cannot create");
    assert!(
        err.to_string().contains("will not survive a restart"),
        "{err}"
    );

    // One server per file: a second opener is refused and the file is untouched.
    let path = dir.path().join("state.db");
    let (first, _) = StateStore::open(&path).expect("first");
    first.record(opened(1, None));
    assert!(first.flush(LIMIT));
    let err = StateStore::open(&path).expect_err("locked");
    assert!(err.reason.contains("in use"), "{err}");
    first.close();
    let (_, persisted) = StateStore::open(&path).expect("free again");
    assert_eq!(persisted.sessions.len(), 1);
}

#[test]
fn a_version_2_database_gains_an_empty_history_and_keeps_its_seats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    {
        let conn = Connection::open(&path).expect("sqlite");
        conn.execute_batch(
            "CREATE TABLE sessions (id INTEGER PRIMARY KEY, secret BLOB NOT NULL, \
             client_addr TEXT NOT NULL, site TEXT, name TEXT NOT NULL, \
             last_packet INTEGER NOT NULL, started_ms INTEGER NOT NULL, \
             logged_in INTEGER NOT NULL DEFAULT 0); \
             CREATE TABLE logins (session INTEGER NOT NULL, dongle_key TEXT NOT NULL, \
             slot INTEGER NOT NULL, first_ms INTEGER NOT NULL, \
             PRIMARY KEY (session, dongle_key, slot)); \
             INSERT INTO logins VALUES (5, 'sim:1', 1, 0); PRAGMA user_version = 2;",
        )
        .expect("version 2");
    }
    let (store, persisted) = StateStore::open(&path).expect("upgraded");
    assert_eq!(persisted.logins.len(), 1, "seats kept");
    assert_eq!(store.status().opened, OpenedAs::Existing);
    store.close();
    let conn = Connection::open(&path).expect("sqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    let events: i64 = conn
        .query_row("SELECT count(*) FROM usage_events", [], |r| r.get(0))
        .expect("history table");
    assert_eq!((version, events), (3, 0));
}
