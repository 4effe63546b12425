//! Seats survive a restart (`StateDb=`): sessions and logins written by one server are restored
//! by the next with fresh timeouts; the clients' next calls authenticate without a new init,
//! and the seat counts are exact (per session and per IP). The restart with a killed process
//! is `tests/restart.rs` at the workspace root.

mod common;

use common::{LIMIT, SLOT, at, config, start};
use license_core::ErrorCode;
use license_core::engine::LicenseMode;
use license_server::store::OpenedAs;

#[tokio::test]
async fn sessions_and_seats_come_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(3);
    cfg.state_db = Some(dir.path().join("state.db"));
    let first = start(cfg.clone()).await;
    assert_eq!(
        first.server.store_status().expect("store").opened,
        OpenedAs::Created
    );
    let holders: Vec<_> = (0..2).map(|_| first.client()).collect();
    for c in &holders {
        c.init().await.expect("init");
        c.login(at(SLOT)).await.expect("login");
    }
    let leaver = first.client();
    leaver.init().await.expect("init");
    leaver.login(at(SLOT)).await.expect("login");
    assert_eq!(leaver.logout(at(SLOT)).await, Ok(1), "its seat is back");
    let idle = first.client();
    idle.init().await.expect("a session without a login");
    let mut expected = Vec::new();
    for c in [&holders[0], &holders[1], &leaver, &idle] {
        expected.push(c.session_id().await.expect("id"));
    }
    expected.sort();
    assert_eq!(first.taken(SLOT), 2);
    first.stop().await;

    let second = start(cfg).await;
    let status = second.server.store_status().expect("store");
    assert_eq!(status.opened, OpenedAs::Existing);
    assert_eq!((status.restored_sessions, status.restored_logins), (4, 2));
    assert_eq!(second.taken(SLOT), 2, "exactly the seats held before");
    let snapshot = second.server.snapshot();
    let mut restored: Vec<_> = snapshot.sessions.iter().map(|s| s.id).collect();
    restored.sort();
    assert_eq!(restored, expected);

    // The same clients, pointed at the new port: their next calls authenticate.
    for c in holders.iter().chain([&leaver, &idle]) {
        c.set_port(second.addr.port());
    }
    for c in &holders {
        assert_eq!(c.refresh(at(SLOT)).await, Ok(1), "refresh keeps the seat");
    }
    assert_eq!(second.taken(SLOT), 2, "no seat counted twice");
    assert_eq!(
        leaver.logout(at(SLOT)).await,
        Err(ErrorCode::NotLoggedIn),
        "its logout was persisted too"
    );
    assert_eq!(idle.login(at(SLOT)).await, Ok(0), "the last seat");
    assert_eq!(
        leaver.refresh(at(SLOT)).await,
        Err(ErrorCode::NoLicense),
        "the slot is full"
    );
    holders[0].release().await.expect("release");
    assert_eq!(second.taken(SLOT), 2);
    assert!(second.server.flush_store(LIMIT));
    second.stop().await;
}

#[tokio::test]
async fn per_ip_seats_are_restored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(2);
    cfg.license_mode = LicenseMode::Ip;
    cfg.state_db = Some(dir.path().join("state.db"));
    let first = start(cfg.clone()).await;
    // Three processes of one address hold one IP seat.
    let procs: Vec<_> = (0..3).map(|_| first.client()).collect();
    for p in &procs {
        p.init().await.expect("init");
        p.login(at(SLOT)).await.expect("login");
    }
    assert_eq!(first.taken(SLOT), 1);
    first.stop().await;

    let second = start(cfg).await;
    assert_eq!(second.taken(SLOT), 1);
    assert_eq!(second.server.snapshot().logins.len(), 3);
    for p in &procs {
        p.set_port(second.addr.port());
        assert_eq!(p.refresh(at(SLOT)).await, Ok(1));
    }
    for p in &procs[..2] {
        p.logout(at(SLOT)).await.expect("logout");
    }
    assert_eq!(second.taken(SLOT), 1, "the last record keeps the seat");
    procs[2].logout(at(SLOT)).await.expect("logout");
    assert_eq!(second.taken(SLOT), 0);
    second.stop().await;
}

#[tokio::test]
async fn lowered_limits_and_unusable_databases_do_not_stop_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(3);
    cfg.state_db = Some(dir.path().join("state.db"));
    let first = start(cfg.clone()).await;
    let clients: Vec<_> = (0..3).map(|_| first.client()).collect();
    for c in &clients {
        c.init().await.expect("init");
        c.login(at(SLOT)).await.expect("login");
    }
    first.stop().await;

    // The administrator lowered the limit to 1 meanwhile: one login comes back, two are
    // dropped (and forgotten), nothing is over-counted.
    let second = start(config_with_limit(&cfg, 1)).await;
    assert_eq!(second.taken(SLOT), 1);
    let status = second.server.store_status().expect("store");
    assert_eq!((status.restored_logins, status.dropped), (1, 2));
    second.stop().await;
    let third = start(config_with_limit(&cfg, 3)).await;
    assert_eq!(third.taken(SLOT), 1, "the dropped logins stay dropped");
    third.stop().await;

    // A folder that cannot hold the file: the server runs without persistence and says why.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").expect("write");
    let mut broken = config(3);
    broken.state_db = Some(blocker.join("state.db"));
    let running = start(broken).await;
    assert!(running.server.store_status().is_none());
    assert!(running.server.store_error().is_some());
    let c = running.client();
    c.init().await.expect("served anyway");
    assert_eq!(c.login(at(SLOT)).await, Ok(2));
    running.stop().await;
}

fn config_with_limit(
    base: &license_server::ServerConfig,
    limit: u32,
) -> license_server::ServerConfig {
    let mut c = base.clone();
    c.dongles[0].limits.insert(SLOT, limit);
    c
}
