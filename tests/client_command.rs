//! `dongle-relay client` finds `mxnetapi.ini` as the vendor's library does when no `--config`
//! is given: here, in its working directory, naming a server on a port it could not guess.

mod license_ops;

use license_ops::{LIMIT, Ops, config};
use tokio::process::Command;

#[tokio::test]
async fn the_client_command_reads_mxnetapi_ini_from_its_working_directory() {
    let ops = Ops::start(&config(), None, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mxnetapi.ini"),
        format!(
            "[Options]\nip=127.0.0.1\nport={}\ntimeout=3000\n",
            ops.license.port()
        ),
    )
    .expect("write ini");
    let run = Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
        .args([
            "--log", "off", "client", "init", "login", "logout", "release",
        ])
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(LIMIT, run)
        .await
        .expect("the client ends in time")
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = text
        .lines()
        .find(|l| l.starts_with("login"))
        .unwrap_or_else(|| panic!("no login line in {text}"));
    assert!(login.contains(" 2 "), "2 of the 3 seats left: {login:?}");
    ops.stop().await;
}
