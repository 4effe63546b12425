//! What the C tests share: the built library's folder, a C compiler that must be there (a
//! missing compiler fails the test, it does not skip it), and a license server on 127.0.0.1:0
//! whose simulated dongle matches `tests/c/check.h`.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use license_core::clock::TokioClock;
use license_core::dongle::DongleSection;
use license_server::LicenseServer;
use license_server::config::ServerConfig;
use test_support::license::License;
use tokio::net::TcpListener;

/// Every C program run is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(90);
/// The login timeout of the tests' server: short, so several pass during a test.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(1);

/// This crate's folder.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding `libmxnet2_api.so`: `cargo test` leaves it beside the test binary in
/// `target/<profile>/deps/` (a plain `cargo build` also copies it to `target/<profile>/`).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("target/<profile>/deps").to_path_buf();
    let candidates = [
        deps.clone(),
        deps.parent().map(Path::to_path_buf).unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|dir| dir.join("libmxnet2_api.so").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libmxnet2_api.so is in neither {} nor its parent (cargo builds it with this \
                 crate's tests)",
                deps.display()
            )
        })
}

/// Runs a tool that the test needs; fails the test (never skips it) when it is missing.
pub fn run_tool(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{program}` is required for this test and could not run: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Compiles `tests/c/<source>` against the header and the shared library into `out`.
pub fn compile_c(source: &str, out: &Path) {
    let include = crate_dir().join("include");
    let tests_c = crate_dir().join("tests").join("c");
    let lib = lib_dir();
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    run_tool(
        "cc",
        &[
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            "-I",
            &include.to_string_lossy(),
            &tests_c.join(source).to_string_lossy(),
            "-o",
            &out.to_string_lossy(),
            "-L",
            &lib.to_string_lossy(),
            "-lmxnet2_api",
            &rpath,
        ],
    );
}

/// Runs a compiled test program to completion (bounded by [`LIMIT`]) and returns its output.
pub async fn run_program(program: &Path, args: &[String]) -> Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(program.parent().expect("folder"))
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(LIMIT, child)
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {LIMIT:?}", program.display()))
        .expect("the program runs")
}

/// Asserts that a test program succeeded and printed `expected`.
pub fn assert_ok(output: &Output, expected: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(expected),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port nothing listens on (bound, noted, closed).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A license server on 127.0.0.1:0 ([`License`]).
pub struct Server {
    pub server: LicenseServer,
    pub addr: SocketAddr,
    license: License,
}

impl Server {
    /// Dongle 1: serial 1234567890, user code 1234, data 5 6 7; AppSlot 1 has 2 seats and
    /// AppSlot 2 has 10; LoginTimeOut is [`LOGIN_TIMEOUT`].
    pub async fn start() -> Self {
        let config = ServerConfig {
            login_timeout: LOGIN_TIMEOUT,
            dongles: vec![DongleSection {
                number: 1,
                sernr: Some(1_234_567_890),
                user_code: Some(1234),
                limits: [(1, 2), (2, 10)].into(),
                data: vec![5, 6, 7],
                ..DongleSection::default()
            }],
            ..ServerConfig::default()
        };
        let license = License::start_simulated(&config, Arc::new(TokioClock::new())).await;
        Self {
            server: license.server().clone(),
            addr: license.addr(),
            license,
        }
    }

    /// Seats taken in an AppSlot.
    pub fn taken(&self, slot: u16) -> u32 {
        self.server.snapshot().slot(slot).map_or(0, |s| s.taken)
    }

    pub async fn stop(self) {
        self.license.stop_within(LIMIT).await;
    }
}
