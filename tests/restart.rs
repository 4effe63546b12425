//! Seats survive a restart of the real `dongle-relay server` process (`--state-db`): two
//! clients take seats, the server is killed (SIGKILL) and started again on the same port, and
//! the clients' next refresh succeeds without a new init while the taken seats stay exact (read
//! from the admin JSON); a graceful stop (SIGTERM) keeps them too, closes idle clients instead
//! of waiting for them, stops accepting and exits 0. A corrupt database is moved aside and a
//! missing one created: the server starts empty instead of failing.

mod license_ops;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::Method;
use license_client::RemoteApi;
use license_core::ErrorCode;
use license_ops::{DEMO_SLOT as SLOT, LIMIT, ServerProcess, client_of, free_port};
use tokio::process::Command;

const TOKEN: &str = "restart-test-token-0123456789";

/// The server process (see [`ServerProcess`]) with this test's key, database and admin port.
struct Server(ServerProcess);

impl Server {
    /// Starts the server and waits for its admin endpoint line (printed once both ports are
    /// bound).
    async fn start(dir: &Path, port: u16, admin: u16) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dongle-relay"));
        command
            .args(["--log", "warn", "server", "--port"])
            .arg(port.to_string())
            .arg("--key-file")
            .arg(dir.join("server.key"))
            .arg("--state-db")
            .arg(dir.join("state.db"))
            .arg("--admin")
            .arg(format!("127.0.0.1:{admin}"))
            .env(dongle_relay::commands::server::ADMIN_TOKEN_ENV, TOKEN)
            .current_dir(dir);
        Self(ServerProcess::start(command).await)
    }

    fn line(&self, prefix: &str) -> &str {
        self.0.line(prefix)
    }

    async fn kill(mut self) {
        self.0.child.start_kill().expect("SIGKILL");
        tokio::time::timeout(LIMIT, self.0.child.wait())
            .await
            .expect("dies in time")
            .expect("wait");
    }

    /// SIGTERM with an idle client connection open on `port`: the server closes it instead of
    /// waiting for it, exits 0 well within its grace, and no longer accepts.
    // Unix only: it sends SIGTERM with kill(1). Windows has no signal a test can send to one
    // console child without FFI (the console is shared), so there a kill stands in.
    #[cfg(unix)]
    async fn terminate(mut self, port: u16) {
        use tokio::io::AsyncReadExt as _;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let pid = self.0.child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let signalled = std::time::Instant::now();
        let status = tokio::time::timeout(LIMIT, self.0.child.wait())
            .await
            .expect("stops in time")
            .expect("wait");
        assert!(status.success(), "{status}");
        assert!(
            signalled.elapsed() < license_server::server::SHUTDOWN_GRACE,
            "an idle client does not hold the stop for the grace period"
        );
        let mut buf = [0; 16];
        let read = tokio::time::timeout(LIMIT, idle.read(&mut buf))
            .await
            .expect("the idle connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "stopped accepting"
        );
        // Drain what it printed, so nothing is left blocked.
        while let Ok(Some(_)) = self.0.stdout.next_line().await {}
    }
}

async fn status(admin: u16) -> serde_json::Value {
    let addr: SocketAddr = ([127, 0, 0, 1], admin).into();
    let answer = ops_http::client::call(addr, Method::GET, "/api/status", Some(TOKEN), None, LIMIT)
        .await
        .expect("admin answers");
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json().expect("json")
}

fn taken(status: &serde_json::Value) -> u64 {
    status["dongles"][0]["slots"][0]["taken"]
        .as_u64()
        .expect("taken")
}

/// Waits (bounded) until the server has written every change so far.
async fn written(admin: u16, at_least: u64) {
    for _ in 0..500 {
        let s = status(admin).await;
        let store = &s["store"];
        if store["queued"] == 0 && store["writes"].as_u64() >= Some(at_least) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "state changes not written: {}",
        status(admin).await["store"]
    );
}

fn client(port: u16, name: &str) -> RemoteApi {
    client_of(SocketAddr::from(([127, 0, 0, 1], port)), name)
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn seats_survive_kill_and_restart_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port().await, free_port().await);
    let server = Server::start(dir.path(), port, admin).await;
    assert!(server.line("seats persisted in").contains("created"));
    let clients = [client(port, "pc-1"), client(port, "pc-2")];
    for c in &clients {
        c.init().await.expect("init");
        assert!(c.login(SLOT).await.is_ok());
    }
    assert_eq!(taken(&status(admin).await), 2);
    // Two sessions opened, two logins added.
    written(admin, 4).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("state.db"))
            .expect("db")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    server.kill().await;
    let server = Server::start(dir.path(), port, admin).await;
    assert!(
        server
            .line("seats persisted in")
            .contains("existing; restored 2 session(s), 2 login(s)"),
        "{:?}",
        server.0.banner
    );
    for c in &clients {
        assert_eq!(
            c.refresh(SLOT).await,
            Ok(1),
            "the seat is still this client's"
        );
    }
    let s = status(admin).await;
    assert_eq!(taken(&s), 2, "no seat lost, none counted twice");
    assert_eq!(s["sessions"].as_array().expect("sessions").len(), 2);
    assert_eq!(s["logins"].as_array().expect("logins").len(), 2);
    let third = client(port, "pc-3");
    third.init().await.expect("init");
    assert_eq!(third.login(SLOT).await, Ok(0), "the third seat is the last");
    written(admin, 2).await;

    // A graceful stop keeps the seats as well (Windows: a kill, see `Server::terminate`).
    #[cfg(unix)]
    server.terminate(port).await;
    #[cfg(not(unix))]
    server.kill().await;
    let server = Server::start(dir.path(), port, admin).await;
    assert!(
        server
            .line("seats persisted in")
            .contains("restored 3 session(s), 3 login(s)")
    );
    assert_eq!(taken(&status(admin).await), 3);
    for c in clients.iter().chain([&third]) {
        assert_eq!(c.refresh(SLOT).await, Ok(0));
    }
    server.kill().await;

    // A corrupt database: moved aside, the server starts empty and says so.
    let db = dir.path().join("state.db");
    std::fs::write(&db, b"garbage, not SQLite ".repeat(512)).expect("corrupt");
    let _ = std::fs::remove_file(dir.path().join("state.db-wal"));
    let server = Server::start(dir.path(), port, admin).await;
    assert!(
        server
            .line("seats persisted in")
            .contains("unusable file moved aside"),
        "{:?}",
        server.0.banner
    );
    let s = status(admin).await;
    assert_eq!(s["store"]["opened"], "replaced");
    assert!(
        s["store"]["moved_aside"]
            .as_str()
            .is_some_and(|p| p.contains("state.db.corrupt-") && Path::new(p).exists())
    );
    assert_eq!(taken(&s), 0);
    assert_eq!(
        clients[0].refresh(SLOT).await,
        Err(ErrorCode::SessionPassword),
        "its session is gone: the client must init again"
    );
    server.kill().await;

    // A missing database: created, empty.
    std::fs::remove_file(&db).expect("remove");
    let _ = std::fs::remove_file(dir.path().join("state.db-wal"));
    let server = Server::start(dir.path(), port, admin).await;
    assert!(server.line("seats persisted in").contains("created"));
    assert_eq!(status(admin).await["store"]["opened"], "created");
    clients[1].reset().await;
    clients[1].init().await.expect("a new session");
    assert_eq!(clients[1].login(SLOT).await, Ok(2));
    server.kill().await;
}

/// The crash-after-acknowledge race: the server is killed (SIGKILL) the moment a client hears
/// that its init, login, logout or release succeeded, and the restarted server must hold
/// exactly what the client was told. Several rounds, each a new client.
#[tokio::test]
async fn acknowledged_seat_changes_survive_sigkill_right_after_the_answer() {
    const ROUNDS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port().await, free_port().await);
    let mut server = Server::start(dir.path(), port, admin).await;
    for round in 0..ROUNDS {
        let c = client(port, &format!("pc-{round}"));
        c.init().await.expect("init");
        server.kill().await;
        server = Server::start(dir.path(), port, admin).await;
        assert_eq!(
            c.login(SLOT).await,
            Ok(2),
            "round {round}: the acknowledged init survived (the session authenticates)"
        );
        server.kill().await;
        server = Server::start(dir.path(), port, admin).await;
        let s = status(admin).await;
        assert_eq!(
            taken(&s),
            1,
            "round {round}: the acknowledged login survived"
        );
        assert_eq!(c.logout(SLOT).await, Ok(3));
        server.kill().await;
        server = Server::start(dir.path(), port, admin).await;
        assert_eq!(
            taken(&status(admin).await),
            0,
            "round {round}: the acknowledged logout survived"
        );
        c.release().await.expect("release");
        server.kill().await;
        server = Server::start(dir.path(), port, admin).await;
        assert_eq!(
            status(admin).await["sessions"]
                .as_array()
                .expect("sessions")
                .len(),
            0,
            "round {round}: the acknowledged release survived"
        );
    }
    server.kill().await;
}
