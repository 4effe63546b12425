//! Usage reports on a running server's database, and one server per database (issue 18): a
//! real `dongle-relay server --state-db` process serves four clients of an AppSlot with three
//! seats (three logins, one refusal, one logout); `dongle-relay usage` run on the same file
//! while that server keeps running prints exactly those numbers and events, and the server
//! keeps serving and writing afterwards. A second server started on the same database is
//! refused it, with an error naming the database and the first server's process.

mod license_ops;

use std::net::SocketAddr;
use std::path::Path;

use license_ops::{DEMO_SLOT as SLOT, LIMIT, ServerProcess, client_of, free_port};
use tokio::process::Command;

const TOKEN: &str = "usage-live-test-token-0123456789";

async fn server(db: &Path, port: u16) -> ServerProcess {
    let admin = free_port().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_dongle-relay"));
    command
        .args(["--log", "warn", "server", "--ephemeral-key", "--port"])
        .arg(port.to_string())
        .arg("--state-db")
        .arg(db)
        .arg("--admin")
        .arg(format!("127.0.0.1:{admin}"))
        .env(dongle_relay::commands::server::ADMIN_TOKEN_ENV, TOKEN);
    ServerProcess::start(command).await
}

/// `dongle-relay usage --state-db db ARGS…` as JSON.
async fn usage(db: &Path, args: &[&str]) -> serde_json::Value {
    let out = tokio::time::timeout(
        LIMIT,
        Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
            .arg("usage")
            .arg("--state-db")
            .arg(db)
            .args(["--format", "json"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the report ends in time")
    .expect("run");
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The `usage` report once it lists at least `count` events. A call's answer waits for its
/// seat change, not for its usage event ("nobody waits for it"), which the writer's queue may
/// commit a batch later.
async fn events_once(db: &Path, args: &[&str], count: usize) -> serde_json::Value {
    tokio::time::timeout(LIMIT, async {
        loop {
            let events = usage(db, args).await;
            if events.as_array().is_some_and(|e| e.len() >= count) {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the report lists the events in time")
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn reports_read_a_running_servers_database_and_a_second_server_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state.db");
    let port = free_port().await;
    let mut first = server(&db, port).await;
    assert!(first.line("seats persisted in").contains("created"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let clients: Vec<_> = (1..=4)
        .map(|n| client_of(addr, &format!("pc-{n}")))
        .collect();
    tokio::time::timeout(LIMIT, async {
        for (n, c) in clients.iter().enumerate() {
            c.init().await.expect("init");
            let login = c.login(SLOT).await;
            assert_eq!(login.is_ok(), n < 3, "three seats: {login:?}");
        }
        // The logout is answered once it is written, and with it everything queued before,
        // the refusal's event included; the logout's own event may follow a commit later.
        clients[0].logout(SLOT).await.expect("logout");
    })
    .await
    .expect("in time");

    // The report reads the file while the server holds it and keeps writing.
    let summary = usage(&db, &[]).await;
    let slot = &summary["slots"][0];
    assert_eq!(slot["slot"], 1, "{summary}");
    assert_eq!(slot["slot_name"], "Demo Application");
    assert_eq!(
        (&slot["limit"], &slot["peak"], &slot["refusals"]),
        (&3.into(), &3.into(), &1.into()),
        "{summary}"
    );
    let sites = slot["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), 1, "{summary}");
    assert_eq!(sites[0]["site"], serde_json::Value::Null, "direct clients");
    let events = events_once(&db, &["--events", "--slot", "1"], 5).await;
    let kinds: Vec<_> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["kind"].as_str().unwrap_or("?"), e["taken"].as_u64()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("login", Some(1)),
            ("login", Some(2)),
            ("login", Some(3)),
            ("refused", Some(3)),
            ("logout", Some(2)),
        ]
    );

    // A second server on the same database is refused it, and says who holds it.
    let second = server(&db, free_port().await).await;
    let refused = second.line("seats NOT persisted");
    let pid = first.child.id().expect("pid");
    assert!(
        refused.contains(&db.display().to_string())
            && refused.contains(&format!("in use by another license server: process {pid} ")),
        "{refused}"
    );
    drop(second);

    // The first server was not disturbed: it serves and records, and the report sees it.
    tokio::time::timeout(LIMIT, clients[3].login(SLOT))
        .await
        .expect("in time")
        .expect("a seat is free again");
    tokio::time::timeout(LIMIT, clients[1].logout(SLOT))
        .await
        .expect("in time")
        .expect("logout");
    let events = events_once(&db, &["--events"], 7).await;
    assert_eq!(events.as_array().expect("events").len(), 7, "{events}");
    first.child.start_kill().expect("kill");
    tokio::time::timeout(LIMIT, first.child.wait())
        .await
        .expect("stops")
        .expect("wait");
}
