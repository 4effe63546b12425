//! `dongle-relay demo`, the README's first command, run as the built binary: it exits 0 and its
//! output shows a seat taken and returned through the tunnel; `--keep-running` serves other
//! clients until SIGINT; a taken port fails with a hint.

use std::process::{Output, Stdio};
use std::time::Duration;

use license_client::{ClientConfig, RemoteApi};
use license_core::SlotRef;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(60);

fn demo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dongle-relay"));
    cmd.args(["--log", "warn", "demo"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: Command) -> (Output, String, String) {
    let out = timeout(LIMIT, cmd.output())
        .await
        .expect("demo finishes in time")
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[tokio::test]
async fn demo_walks_a_client_through_the_tunnel_and_exits_0() {
    let (out, stdout, stderr) = output(demo(&["--port", "0"])).await;
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{stdout}"))
            .to_owned()
    };
    // Every step, with its value, in order.
    assert!(line("init ").contains("->     1 ok"), "{stdout}");
    assert!(
        line("login ").contains("->     2 ok  (2 seat(s) left"),
        "{stdout}"
    );
    assert!(line("refresh ").contains("->     2 ok"), "{stdout}");
    assert!(
        line("status ").contains("1 taken [demo-client]"),
        "{stdout}"
    );
    assert!(
        line("logout ").contains("->     3 ok  (3 seat(s) left"),
        "{stdout}"
    );
    assert!(line("release ").contains("->     0 ok"), "{stdout}");
    // The server's count after each step: taken after login, returned after logout.
    let counts: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server: "))
        .collect();
    assert_eq!(
        counts,
        [
            "0 of 3 seat(s) taken, 3 free",
            "1 of 3 seat(s) taken, 2 free",
            "1 of 3 seat(s) taken, 2 free",
            "1 of 3 seat(s) taken, 2 free",
            "0 of 3 seat(s) taken, 3 free",
            "0 of 3 seat(s) taken, 3 free",
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("ok: a seat of AppSlot 1 was taken"),
        "{stdout}"
    );
    assert!(stdout.contains("at site demo-site"), "{stdout}");
    assert!(
        !stdout.contains("SharedAccessKey="),
        "no keys without --keep-running --show-keys"
    );
}

#[tokio::test]
async fn a_taken_port_fails_with_a_hint() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let (out, stdout, stderr) = output(demo(&["--port", &port])).await;
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("--port 0"), "{stderr}");
}

#[tokio::test]
async fn keep_running_serves_other_clients_until_sigint() {
    let mut child = demo(&["--port", "0", "--keep-running"])
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // Readiness: the banner names the proxy's address.
    let proxy = timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(rest) = line.strip_prefix("Running until Ctrl-C. Point license clients at ")
            {
                return rest.trim_end_matches(':').to_owned();
            }
        }
        panic!("the demo ended without its banner");
    })
    .await
    .expect("banner in time");
    let (host, port) = proxy.rsplit_once(':').expect("host:port");
    let api = RemoteApi::new(ClientConfig::for_server(host, port.parse().expect("port")));
    let at = SlotRef::first_dongle(1);
    timeout(LIMIT, async {
        assert_eq!(api.init().await, Ok(1));
        assert_eq!(api.login(at).await, Ok(2), "a seat of the demo's dongle");
        assert_eq!(api.logout(at).await, Ok(3));
        assert_eq!(api.release().await, Ok(0));
    })
    .await
    .expect("client in time");
    stop_with_sigint(child).await;
}

/// SIGINT (what Ctrl-C sends) stops the demo, which exits 0.
#[cfg(unix)]
async fn stop_with_sigint(mut child: tokio::process::Child) {
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = timeout(LIMIT, child.wait())
        .await
        .expect("stops in time")
        .expect("wait");
    assert!(status.success(), "{status}");
}

/// Windows has no way for a test to send Ctrl-C to one console child without FFI (the console
/// is shared), so the demo is killed; that it served other clients was the point above.
#[cfg(not(unix))]
async fn stop_with_sigint(mut child: tokio::process::Child) {
    child.start_kill().expect("kill");
    timeout(LIMIT, child.wait())
        .await
        .expect("stops in time")
        .expect("wait");
}
