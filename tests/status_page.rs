//! The status page in a real headless browser (Debian's chromium through playwright-core,
//! installed by `scripts/setup-browser.sh`): a client at site `branch-a` logs in through the
//! tunnel (local-proxy → relay → the relay-listener running beside the license server, PROXY
//! v2), the page shows its session, its login with the AppSlot's name and the listener's
//! state; clicking Disconnect removes them from the page, and the server's own state confirms
//! it. The usage charts (issue 18) are drawn from a week of history: a screenshot shows the
//! seats and refusals in the series colour, rising and falling, and the page's strict
//! Content-Security-Policy reported no violation. Skipped (with a message) without chromium,
//! node or playwright-core, unless `CI` is set or `DONGLE_RELAY_REQUIRE_BROWSER=1`: then they
//! fail.

// Unix only: the browser is Debian's /usr/bin/chromium driven by a Node script, which a Windows
// test executable (run under Wine) cannot start.
#![cfg(unix)]

mod browser;
mod license_ops;

use std::path::PathBuf;
use std::time::Duration;

use browser::{browser_or_skip, node};
use dongle_relay::commands::server::ops;
use license_core::SlotRef;
use license_ops::{LIMIT, Ops, TOKEN, client_of, dongle_host};
use license_server::store::{UsageEvent, UsageKind};
use test_support::{Listener, Proxy, Relay};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const SITE: &str = "branch-a";

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn the_page_shows_a_tunnelled_client_and_disconnects_it() {
    let Some(module) = browser_or_skip() else {
        return;
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

    let mut node = node(
        "status_page.js",
        &module,
        ops.admin,
        TOKEN,
        &[
            ("SESSION_ID", &session),
            ("APPSLOT", &appslot),
            ("SITE", SITE),
        ],
    );
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

const HOUR_MS: u64 = 3_600_000;

/// The usage charts, from a week of history (written into the server's store as its seat
/// observer would): every working day three sites take the three seats of AppSlot 1, Berlin is
/// refused once a day and Paris every other day; AppSlot 2 has one seat in use for five hours.
#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn the_page_charts_a_week_of_usage() {
    let Some(module) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = license_ops::config();
    config.state_db = Some(dir.path().join("state.db"));
    let ops = Ops::start(&config, Some(TOKEN), None).await;
    let store = ops.server.store().expect("state database").clone();
    let snapshot = ops.server.snapshot();
    let dongle = snapshot.dongles[0].key.clone();
    let now = license_core::clock::system_unix_millis();
    let event = |at_ms: u64, kind: UsageKind, slot: u16, site: Option<&str>, taken: u32| {
        let s = snapshot.slot(slot).expect("slot");
        UsageEvent {
            at_ms,
            kind,
            dongle_key: dongle.clone(),
            slot,
            slot_name: s.name.clone(),
            session: 1,
            client_addr: "192.0.2.1:40000".to_owned(),
            site: site.map(str::to_owned),
            code: (kind == UsageKind::Refused).then_some(-31),
            taken,
            limit: s.limit,
        }
    };
    let (berlin, paris) = (Some("berlin"), Some("paris"));
    for day in 0..6 {
        let t = now - 7 * 24 * HOUR_MS + day * 24 * HOUR_MS;
        let at = |hours: f64| t + (hours * HOUR_MS as f64) as u64;
        let mut script = vec![
            event(at(0.0), UsageKind::Login, 1, berlin, 1),
            event(at(1.0), UsageKind::Login, 1, paris, 2),
            event(at(1.0), UsageKind::Login, 2, berlin, 1),
            event(at(2.0), UsageKind::Login, 1, None, 3),
            event(at(2.5), UsageKind::Refused, 1, berlin, 3),
            event(at(5.0), UsageKind::Logout, 1, None, 2),
            event(at(6.0), UsageKind::Logout, 2, berlin, 0),
            event(at(8.0), UsageKind::Logout, 1, berlin, 1),
            event(at(9.0), UsageKind::Logout, 1, paris, 0),
        ];
        if day % 2 == 0 {
            script.push(event(at(3.0), UsageKind::Refused, 1, paris, 3));
        }
        script.sort_by_key(|e| e.at_ms);
        for e in script {
            store.record_usage(e);
        }
    }
    assert!(ops.server.flush_store(LIMIT), "history written");

    // The series the charts draw.
    let answer = ops
        .get("/api/usage?report=series&from=2000-01-01", Some(TOKEN))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let series = answer.json().expect("json");
    let cad = &series["slots"][0];
    let peak = cad["peak"].as_array().expect("peak");
    assert_eq!(
        peak.iter().filter_map(serde_json::Value::as_u64).max(),
        Some(3)
    );
    let refused_at = |site: &str| -> u64 {
        cad["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .filter(|s| s["site"] == site)
            .flat_map(|s| s["refusals"].as_array().expect("refusals").iter())
            .filter_map(serde_json::Value::as_u64)
            .sum()
    };
    assert_eq!((refused_at("berlin"), refused_at("paris")), (6, 3));

    // docs/usage-charts.png is this screenshot (DONGLE_RELAY_USAGE_SCREENSHOT=docs/usage-charts.png).
    let screenshot = std::env::var("DONGLE_RELAY_USAGE_SCREENSHOT")
        .map_or_else(|_| dir.path().join("usage-charts.png"), PathBuf::from);
    let shot = screenshot.display().to_string();
    let mut node = node(
        "usage_charts.js",
        &module,
        ops.admin,
        TOKEN,
        &[("SCREENSHOT", &shot)],
    );
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(LIMIT + Duration::from_secs(30), lines.next_line())
        .await
        .expect("the browser answers in time")
        .expect("read")
        .unwrap_or_else(|| "ERROR the script ended early".to_owned());
    let seen: serde_json::Value = serde_json::from_str(
        line.strip_prefix("CHARTS ")
            .unwrap_or_else(|| panic!("expected CHARTS, got {line}")),
    )
    .expect("json");
    let status = tokio::time::timeout(LIMIT, node.wait())
        .await
        .expect("node exits")
        .expect("wait");
    assert!(status.success(), "{status}");

    // The page is served under a CSP that allows only its own scripts and styles, and it
    // broke none of it; an inline style added afterwards is reported, so a violation would
    // have been seen.
    let csp = seen["csp"].as_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(seen["violations"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["control"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // Both charts drew their first series: many pixels of its colour, spread over more than a
    // quarter of the chart's height (the seats rise and fall; refusals come and go).
    for chart in ["seats", "refusals"] {
        let c = &seen[chart];
        let (count, top, bottom, height) = (
            c["count"].as_i64().expect("count"),
            c["top"].as_i64().expect("top"),
            c["bottom"].as_i64().expect("bottom"),
            c["height"].as_i64().expect("height"),
        );
        assert!(count > 300, "{chart}: {c}");
        assert!(bottom - top > height / 4, "{chart}: {c}");
    }
    assert_eq!(
        seen["titles"],
        serde_json::json!(["Demo Application (AppSlot 1)", "AppSlot2 (AppSlot 2)"])
    );
    assert_eq!(
        seen["legend"],
        serde_json::json!(["Time", "in use", "limit"])
    );
    assert!(screenshot.exists());
    ops.stop().await;
}
