//! C programs written against `include/mxnet2_api.h` only, compiled with `cc`, linked with the
//! built `libmxnet2_api.so`, run against a real license server: the manual's life cycle and its
//! error cases (`tests/c/walk.c`), settings from `mxnetapi.ini` beside the program, and sixteen
//! threads whose reference counts and seat counts are exact (`tests/c/threads.c`).
//!
//! Unix only: these build C with `cc` and read exports with `nm -D` against the `.so`. The
//! Windows DLL and its C programs are built and run by `mxnet2-api/build-windows.sh` and
//! `mxnet2-api/run-windows-tests.sh`.
#![cfg(unix)]

mod support;

use support::{LOGIN_TIMEOUT, Server, assert_ok, closed_port, compile_c, run_program};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_the_life_cycle_and_the_error_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("walk");
    compile_c("walk.c", &program);
    let server = Server::start().await;
    let args = [
        server.addr.port().to_string(),
        closed_port().await.to_string(),
        LOGIN_TIMEOUT.as_millis().to_string(),
    ];
    let output = run_program(&program, &args).await;
    assert_ok(&output, "walk: ok");
    assert_eq!(server.taken(1), 0, "every seat returned");
    assert_eq!(
        server.server.snapshot().sessions.len(),
        1,
        "only the session rReset_MatrixAPI abandoned is left (it times out)"
    );
    server.stop().await;
}

/// Sections 7.1/7.2: with no setter called, the server comes from `mxnetapi.ini` beside the
/// program (the library's own folder has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mxnetapi_ini_beside_the_program_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("walk");
    compile_c("walk.c", &program);
    let server = Server::start().await;
    let ini = format!(
        "[Options]\nip=127.0.0.1\nport={}\ntimeout=2000\nremote=1\n",
        server.addr.port()
    );
    std::fs::write(dir.path().join("mxnetapi.ini"), ini).expect("write ini");
    let output = run_program(&program, &["ini".to_owned()]).await;
    assert_ok(&output, "walk ini: ok");
    assert!(server.server.snapshot().sessions.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_threads_share_one_session_and_one_seat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("threads");
    compile_c("threads.c", &program);
    let server = Server::start().await;
    let output = run_program(&program, &[server.addr.port().to_string()]).await;
    assert_ok(&output, "threads: ok");
    assert!(server.server.snapshot().sessions.is_empty(), "released");
    assert_eq!(server.taken(2), 0);
    server.stop().await;
}
