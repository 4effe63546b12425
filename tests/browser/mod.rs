//! The headless browser of the page tests (`tests/status_page.rs`, `tests/hq_view.rs`):
//! Debian's chromium driven by the Node scripts beside this file through playwright-core
//! (installed by `scripts/setup-browser.sh`). A test without them is skipped with a message,
//! unless `CI` is set or `DONGLE_RELAY_REQUIRE_BROWSER=1`: then it fails.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// playwright-core's folder, or why the test cannot run.
fn browser() -> Result<PathBuf, String> {
    if !std::path::Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    let modules = std::env::var("DONGLE_RELAY_BROWSER_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/browser/node_modules")
        });
    let module = modules.join("playwright-core");
    if !module.exists() {
        return Err(format!(
            "{} is missing (bash scripts/setup-browser.sh)",
            module.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(module),
        _ => Err("node is missing".to_owned()),
    }
}

/// playwright-core's folder; `None` (the test is skipped) when the browser cannot run here,
/// unless CI or `DONGLE_RELAY_REQUIRE_BROWSER=1` requires it (then the test fails).
pub fn browser_or_skip() -> Option<PathBuf> {
    let required = std::env::var("DONGLE_RELAY_REQUIRE_BROWSER").as_deref() == Ok("1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    match browser() {
        Ok(module) => Some(module),
        Err(why) if !required => {
            eprintln!("skipped: {why}");
            None
        }
        Err(why) => panic!("the browser test is required here (CI) but {why}"),
    }
}

/// `node tests/browser/<script>` driving the page at `page` with `token`, its standard output
/// read line by line.
pub fn node(
    script: &str,
    module: &Path,
    page: SocketAddr,
    token: &str,
    env: &[(&str, &str)],
) -> Child {
    Command::new("node")
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/browser")
                .join(script),
        )
        .env("PW_MODULE", module)
        .env("CHROMIUM", CHROMIUM)
        .env("PAGE_URL", format!("http://{page}/"))
        .env("TOKEN", token)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node")
}
