//! The daily log file of the real `dongle-relay server` process at `LogLevel=0` (the manual's
//! default, "errors"): the file for today exists from the start, and a refused request (-31,
//! every seat taken) is written to it with its code, so an administrator can see who was
//! turned away.

mod license_ops;

use std::path::Path;
use std::time::Duration;

use license_core::{ErrorCode, SlotRef};
use license_ops::{LIMIT, ServerProcess, client_of, free_port};
use tokio::process::Command;

const TOKEN: &str = "logs-test-token-0123456789";

/// The text of every `mxnet*.log` file in `dir`.
fn logs(dir: &Path) -> (usize, String) {
    let mut files = 0;
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect("log folder").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("mxnet") && name.ends_with(".log") {
            files += 1;
            text.push_str(&std::fs::read_to_string(entry.path()).expect("read log"));
        }
    }
    (files, text)
}

#[tokio::test]
async fn log_level_0_creates_the_file_at_start_and_records_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs_dir = dir.path().join("logs");
    std::fs::write(
        dir.path().join("mxnet2.ini"),
        "[Option]\nLogFileFolder=logs\nLogLevel=0\n[dongle1]\nName=Main\n1=App\nLimit1=1\n",
    )
    .expect("write ini");
    let (port, admin) = (free_port().await, free_port().await);
    let mut command = Command::new(env!("CARGO_BIN_EXE_dongle-relay"));
    command
        .args([
            "--log",
            "off",
            "server",
            "--config",
            "mxnet2.ini",
            "--ephemeral-key",
        ])
        .args(["--port", &port.to_string()])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .env(dongle_relay::commands::server::ADMIN_TOKEN_ENV, TOKEN)
        .current_dir(dir.path());
    let mut server = ServerProcess::start(command).await;
    let (files, _) = logs(&logs_dir);
    assert_eq!(files, 1, "today's file exists before anything is refused");

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let slot = SlotRef::first_dongle(1);
    let (holder, turned_away) = (client_of(addr, "holder"), client_of(addr, "late"));
    holder.init().await.expect("init");
    assert_eq!(holder.login(slot).await, Ok(0), "the only seat");
    turned_away.init().await.expect("init");
    assert_eq!(turned_away.login(slot).await, Err(ErrorCode::NoLicense));

    // The file writer runs behind a non-blocking queue: wait (bounded) for the line to land.
    let needle = format!("{}", ErrorCode::NoLicense.code());
    let mut found = false;
    for _ in 0..300 {
        let (_, text) = logs(&logs_dir);
        if text
            .lines()
            .any(|l| l.contains("refused") && l.contains(&needle))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, text) = logs(&logs_dir);
    assert!(found, "no refusal line with {needle} in:\n{text}");
    assert!(
        !text.contains("login refreshed") && !text.contains(" INFO "),
        "level 0 writes no information lines:\n{text}"
    );
    server.child.start_kill().expect("kill");
    tokio::time::timeout(LIMIT, server.child.wait())
        .await
        .expect("dies in time")
        .expect("wait");
}
