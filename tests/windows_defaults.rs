//! The Windows layout of `dongle-relay server`, run as the built `.exe` (under Wine in CI):
//! without `--config` it reads `mxnet2.ini` from the executable's folder, whatever the
//! working directory, and keeps the identity key and the daily logs under
//! `%ProgramData%\dongle-relay`. The path logic itself is unit-tested in
//! `src/default_paths.rs`; this proves the executable uses it.
//!
//! Windows only: on Linux the executable's folder is not searched (tested in the unit tests).
#![cfg(windows)]

use std::path::Path;
use std::process::Stdio;

use test_support::LIMIT;
use tokio::process::Command;

/// Runs `server --print-key` from `exe` in `cwd` with `%ProgramData%` at `program_data`;
/// returns the printed key.
async fn print_key(exe: &Path, cwd: &Path, program_data: &Path) -> String {
    let out = tokio::time::timeout(
        LIMIT,
        Command::new(exe)
            .args(["--log", "warn", "server", "--print-key"])
            .current_dir(cwd)
            .env("ProgramData", program_data)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("in time")
    .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "{}: {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.is_empty(), "a public key is printed");
    stdout
}

#[tokio::test]
async fn server_reads_the_ini_beside_the_exe_and_keeps_its_data_in_program_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("Program Files");
    let elsewhere = dir.path().join("elsewhere");
    let program_data = dir.path().join("ProgramData");
    for d in [&program, &elsewhere] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let exe = program.join("dongle-relay.exe");
    std::fs::copy(env!("CARGO_BIN_EXE_dongle-relay"), &exe).expect("copy the exe");

    // The ini beside the exe names the key file (relative to the ini): it is read although
    // the working directory is elsewhere.
    std::fs::write(
        program.join("mxnet2.ini"),
        "[Option]\r\nKeyFile=beside.key\r\n",
    )
    .expect("ini");
    let key = print_key(&exe, &elsewhere, &program_data).await;
    let beside = program.join("beside.key");
    assert!(beside.is_file(), "the ini beside the exe was used");
    assert_eq!(
        print_key(&exe, &elsewhere, &program_data).await,
        key,
        "same key next time"
    );

    // Without KeyFile=, key and logs go to %ProgramData%\dongle-relay.
    std::fs::write(program.join("mxnet2.ini"), "[Option]\r\n").expect("ini");
    print_key(&exe, &elsewhere, &program_data).await;
    let data = program_data.join("dongle-relay");
    assert!(
        data.join("mxnet2-server.key").is_file(),
        "key in the data folder"
    );
    assert!(data.join("logs").is_dir(), "log folder created");
    assert!(!elsewhere.join("mxnet2-server.key").exists());
}
