//! The status page in a real headless browser (Debian's chromium through playwright-core,
//! installed by `scripts/setup-browser.sh`): a client at site `branch-a` logs in through the
//! tunnel (local-proxy → relay → the relay-listener running beside the license server, PROXY
//! v2), the page shows its session, its login with the AppSlot's name and the listener's
//! state; clicking Disconnect removes them from the page, and the server's own state confirms
//! it. Skipped (with a message) without chromium, node or playwright-core, unless
//! `DONGLE_RELAY_REQUIRE_BROWSER=1`.

// Unix only: the browser is Debian's /usr/bin/chromium driven by a Node script, which a Windows
// test executable (run under Wine) cannot start.
#![cfg(unix)]

mod license_ops;

use std::path::PathBuf;
use std::process::Stdio;

use dongle_relay::commands::server::ops;
use license_core::SlotRef;
use license_ops::{LIMIT, Ops, TOKEN, client_of, dongle_host};
use test_support::{Listener, Proxy, Relay};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
const SITE: &str = "branch-a";

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

#[tokio::test]
async fn the_page_shows_a_tunnelled_client_and_disconnects_it() {
    let module = match browser() {
        Ok(module) => module,
        Err(why) if std::env::var("DONGLE_RELAY_REQUIRE_BROWSER").as_deref() != Ok("1") => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("DONGLE_RELAY_REQUIRE_BROWSER=1 but {why}"),
    };
    hc_client::install_crypto_provider();

    // The license server with its admin endpoint and, in the same process, the relay-listener
    // that bridges the relay to it (what `dongle-relay server --relay-listener` runs).
    let relay = Relay::start_tls().await;
    let (license_addr, listener_config, relay_name, server_config) = dongle_host(&relay).await;
    let listener = Listener::connected(listener_config).await;
    let in_process = ops::in_process_listener(listener.status().clone(), relay_name);
    let ops = Ops::start_on(&server_config, license_addr, Some(TOKEN), Some(in_process)).await;
    let mut proxy = Proxy::spawn(relay.proxy_config_at(SITE)).await;

    let client = client_of(proxy.addr(), "cad-station-3");
    let slot = SlotRef::first_dongle(1);
    tokio::time::timeout(LIMIT, async {
        client.init().await.expect("init through the tunnel");
        client.login(slot).await.expect("login");
    })
    .await
    .expect("in time");
    let session = client.session_id().await.expect("session").to_string();
    let snapshot = ops.server.snapshot();
    assert_eq!(snapshot.sessions[0].site.as_deref(), Some(SITE));
    let appslot = snapshot.slot(1).expect("slot").name.clone();

    let mut node = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/status_page.js"))
        .env("PW_MODULE", &module)
        .env("CHROMIUM", CHROMIUM)
        .env("PAGE_URL", format!("http://{}/", ops.admin))
        .env("TOKEN", TOKEN)
        .env("SESSION_ID", &session)
        .env("APPSLOT", &appslot)
        .env("SITE", SITE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let mut next = async || {
        tokio::time::timeout(LIMIT, lines.next_line())
            .await
            .expect("the browser answers in time")
            .expect("read")
            .unwrap_or_else(|| "ERROR the script ended early".to_owned())
    };

    assert_eq!(
        next().await,
        "TOKEN-FORM",
        "a tab without the token asks for it"
    );
    let seen = next().await;
    let seen: serde_json::Value = serde_json::from_str(
        seen.strip_prefix("SEEN ")
            .unwrap_or_else(|| panic!("expected SEEN, got {seen}")),
    )
    .expect("json");
    assert_eq!(seen["loginAppslot"], appslot);
    assert_eq!(seen["site"], SITE);
    assert_eq!(seen["taken"], "1");
    assert_eq!(seen["listener"], "connected");
    assert_eq!(seen["hash"], "", "the token left the address bar");
    assert!(
        seen["appslots"]
            .as_array()
            .expect("names")
            .iter()
            .any(|n| n == "Demo Application")
    );
    assert_eq!(next().await, "GONE");
    let status = tokio::time::timeout(LIMIT, node.wait())
        .await
        .expect("node exits")
        .expect("wait");
    assert!(status.success(), "{status}");

    // The server agrees: the session and its seat are gone, and the client's next call fails.
    let snapshot = ops.server.snapshot();
    assert!(snapshot.sessions.is_empty(), "{:?}", snapshot.sessions);
    assert!(snapshot.logins.is_empty());
    assert_eq!(snapshot.slot(1).expect("slot").taken, 0);
    assert_eq!(
        client.refresh(slot).await,
        Err(license_core::ErrorCode::SessionPassword)
    );
    proxy.stop().await;
    drop(listener);
    ops.stop().await;
}
