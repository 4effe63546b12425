//! The license server's admin endpoint (`dongle-relay server --admin`): the JSON status with
//! and without the token, actions that take effect at once, `/metrics` with the right values,
//! the health check, and the refusal to serve off loopback without a token.

mod license_ops;

use license_core::{ErrorCode, SlotRef};
use license_ops::{LIMIT, Ops, ServerProcess, TOKEN, config};
use serde_json::json;
use tokio::process::Command;

const DEMO_APP: SlotRef = SlotRef {
    dng_nr: 1,
    user_code: 0,
    slot: 1,
};

#[tokio::test]
async fn the_status_needs_the_token_and_shows_everything() {
    let ops = Ops::start(&config(), Some(TOKEN), None).await;
    let client = ops.client("cad-station-3");
    client.init().await.expect("init");
    client.login(DEMO_APP).await.expect("login");
    let id = client.session_id().await.expect("id").to_string();

    let none = ops.get("/api/status", None).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.headers["www-authenticate"],
        "Bearer realm=\"dongle-relay\""
    );
    let wrong = ops
        .get("/api/status", Some("admin-token-for-tests-012345678X"))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.json().expect("json")["error"].is_string());
    assert!(!wrong.text().contains(TOKEN), "the token is never echoed");

    let s = ops.status().await;
    let dongle = &s["dongles"][0];
    assert_eq!(dongle["name"], "SimDongle");
    assert_eq!(dongle["serial"], 1_234_567_890);
    assert_eq!(dongle["kind"], "simulated");
    assert_eq!(dongle["presence"]["state"], "present");
    assert_eq!(
        dongle["slots"][0],
        json!({"slot": 1, "name": "Demo Application", "limit": 3, "taken": 1, "peak": 1})
    );
    let session = &s["sessions"][0];
    assert_eq!(session["id"], id);
    assert_eq!(session["client_name"], "cad-station-3");
    assert!(
        session["client_addr"]
            .as_str()
            .expect("addr")
            .starts_with("127.0.0.1:")
    );
    assert!(session["started_ms"].as_u64().expect("started") > 0);
    assert!(session["last_access_ms"].as_u64() >= session["started_ms"].as_u64());
    let login = &s["logins"][0];
    assert_eq!(login["session"], id);
    assert_eq!(login["slot_name"], "Demo Application");
    assert_eq!(login["dongle"], "SimDongle");
    assert_eq!(login["identity"], format!("session {id}"));
    assert!(login["last_refresh_ms"].as_u64().expect("refresh") > 0);
    assert_eq!(s["relay_listener"], json!({"in_process": false}));
    assert_eq!(s["store"]["enabled"], false);
    assert_eq!(s["server"]["live"], true);
    assert_eq!(s["server"]["listening"], ops.license.to_string());
    assert_eq!(
        s["server"]["public_key"],
        ops.server.public_key().to_string()
    );

    // The page and the health check are public; the metrics are not.
    let page = ops.get("/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("data-testid=\"sessions-table\""));
    assert!(
        !page.text().contains("http"),
        "no external resource: {}",
        page.text()
    );
    assert_eq!(ops.get("/app.js", None).await.status, 200);
    assert_eq!(ops.get("/token.js", None).await.status, 200);
    let health = ops.get("/healthz", None).await;
    assert_eq!(
        (health.status.as_u16(), health.json().expect("json")),
        (200, json!({"live": true}))
    );
    assert_eq!(ops.get("/metrics", None).await.status, 401);
    ops.stop().await;
}

#[tokio::test]
async fn disconnect_and_logout_take_effect_at_once() {
    let ops = Ops::start(&config(), Some(TOKEN), None).await;
    let a = ops.client("a");
    let b = ops.client("b");
    for c in [&a, &b] {
        c.init().await.expect("init");
        c.login(DEMO_APP).await.expect("login");
    }
    let a_id = a.session_id().await.expect("a").to_string();
    let b_id = b.session_id().await.expect("b").to_string();
    let disconnect = format!("/api/sessions/{a_id}/disconnect");

    assert_eq!(ops.post(&disconnect, None, None).await.status, 401);
    assert_eq!(
        ops.server.snapshot().sessions.len(),
        2,
        "nothing happened without the token"
    );
    let done = ops.post(&disconnect, Some(TOKEN), None).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json().expect("json"), json!({"disconnected": a_id}));
    // At once: the snapshot, the seat count and the client's next call.
    let snapshot = ops.server.snapshot();
    assert_eq!(snapshot.sessions.len(), 1);
    assert_eq!(snapshot.slot(1).expect("slot").taken, 1);
    assert_eq!(a.refresh(DEMO_APP).await, Err(ErrorCode::SessionPassword));
    let again = ops.post(&disconnect, Some(TOKEN), None).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json().expect("json")["code"], -105);
    assert_eq!(
        ops.post("/api/sessions/nothex/disconnect", Some(TOKEN), None)
            .await
            .status,
        400
    );

    let body = json!({"session": b_id, "dongle_key": "sim:1234567890", "slot": 1});
    assert_eq!(
        ops.post("/api/logins/logout", None, Some(&body))
            .await
            .status,
        401
    );
    let done = ops
        .post("/api/logins/logout", Some(TOKEN), Some(&body))
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(ops.server.snapshot().slot(1).expect("slot").taken, 0);
    assert_eq!(ops.server.snapshot().sessions.len(), 1, "the session stays");
    assert_eq!(b.logout(DEMO_APP).await, Err(ErrorCode::NotLoggedIn));
    let missing = ops
        .post("/api/logins/logout", Some(TOKEN), Some(&body))
        .await;
    assert_eq!(
        (
            missing.status.as_u16(),
            missing.json().expect("json")["code"].clone()
        ),
        (404, json!(-11))
    );
    let bad = ops
        .post(
            "/api/logins/logout",
            Some(TOKEN),
            Some(&json!({"session": 1})),
        )
        .await;
    assert_eq!(bad.status, 400);

    let metrics = ops.get("/metrics", Some(TOKEN)).await.text();
    for line in [
        "license_admin_actions_total{action=\"disconnect\"} 1",
        "license_admin_actions_total{action=\"logout\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    ops.stop().await;
}

#[tokio::test]
async fn metrics_count_seats_requests_and_errors() {
    let ops = Ops::start(&config(), Some(TOKEN), None).await;
    let clients = [ops.client("a"), ops.client("b")];
    for c in &clients {
        c.init().await.expect("init");
        c.login(DEMO_APP).await.expect("login");
    }
    clients[0].refresh(DEMO_APP).await.expect("refresh");
    let unnamed = SlotRef {
        slot: 2,
        ..DEMO_APP
    };
    assert_eq!(
        clients[1].logout(unnamed).await,
        Err(ErrorCode::NotLoggedIn)
    );

    let answer = ops.get("/metrics", Some(TOKEN)).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    let text = answer.text();
    let slot1 = "dongle=\"SimDongle\",dongle_key=\"sim:1234567890\",slot=\"1\",appslot=\"Demo Application\"";
    let slot2 =
        "dongle=\"SimDongle\",dongle_key=\"sim:1234567890\",slot=\"2\",appslot=\"AppSlot2\"";
    for line in [
        format!("license_seats_taken{{{slot1}}} 2"),
        format!("license_seats_limit{{{slot1}}} 3"),
        format!("license_seats_peak{{{slot1}}} 2"),
        format!("license_seats_taken{{{slot2}}} 0"),
        format!("license_seats_limit{{{slot2}}} 10"),
        "license_sessions 2".to_owned(),
        "license_logins 2".to_owned(),
        "license_dongles_present 1".to_owned(),
        "license_requests_total{command=\"init\"} 2".to_owned(),
        "license_requests_total{command=\"login\"} 3".to_owned(),
        "license_requests_total{command=\"logout\"} 1".to_owned(),
        "license_errors_total{code=\"-11\"} 1".to_owned(),
        "license_connections_total 6".to_owned(),
        "license_proxy_headers_total{result=\"accepted\"} 0".to_owned(),
        "# TYPE license_seats_taken gauge".to_owned(),
        "# TYPE license_errors counter".to_owned(),
        "# EOF".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    assert!(
        !text.contains("license_store_"),
        "no state database configured"
    );
    ops.stop().await;
}

#[tokio::test]
async fn an_in_process_listener_is_reported_and_off_loopback_needs_a_token() {
    let status = relay_listener::ListenerStatus::default();
    let in_process = dongle_relay::commands::server::ops::in_process_listener(
        status,
        "relay.example:443/license".to_owned(),
    );
    let ops = Ops::start(&config(), None, Some(in_process)).await;
    let listener =
        ops.get("/api/status", None).await.json().expect("json")["relay_listener"].clone();
    assert_eq!(listener["in_process"], true);
    assert_eq!(listener["connected"], false);
    assert_eq!(listener["relay"], "relay.example:443/license");
    // Its metrics join the license server's in the one exposition.
    let metrics = ops.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for line in [
        "license_sessions 0",
        "listener_connected 0",
        "listener_streams_total{result=\"accepted\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    ops.stop().await;

    let server = license_server::LicenseServer::new(&config()).expect("server");
    let refused = dongle_relay::commands::server::ops::start_admin(
        "0.0.0.0:0".parse().expect("addr"),
        None,
        &server,
        None,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect_err("refused");
    assert!(
        refused.to_string().contains("without a bearer token"),
        "{refused}"
    );

    // The command refuses before binding anything.
    let out = tokio::time::timeout(
        LIMIT,
        Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
            .args([
                "server",
                "--ephemeral-key",
                "--port",
                "0",
                "--admin",
                "0.0.0.0:0",
            ])
            .env_remove(dongle_relay::commands::server::ADMIN_TOKEN_ENV)
            .output(),
    )
    .await
    .expect("in time")
    .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a bearer token"), "{stderr}");
}

/// `dongle-relay server --relay-connection-string … --relay-pin-sha256 … --admin`: one process
/// runs the license server and the relay-listener; a client at another site logs in through
/// the tunnel, and the admin JSON shows it with its site and the listener's live state.
#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn the_server_command_runs_the_relay_listener_in_process() {
    hc_client::install_crypto_provider();
    let relay = test_support::Relay::start_tls().await;
    let admin_port = {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        socket.local_addr().expect("addr").port()
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_dongle-relay"));
    command
        .args(["--log", "warn", "server", "--ephemeral-key", "--port", "0"])
        .args(["--admin", &format!("127.0.0.1:{admin_port}")])
        .args(["--relay-pin-sha256", &relay.cert().sha256_fingerprint])
        .env(
            dongle_relay::commands::server::LISTENER_CONNECTION_STRING_ENV,
            relay.listen_connection().to_secret_string().expose(),
        )
        .env(dongle_relay::commands::server::ADMIN_TOKEN_ENV, TOKEN);
    let mut server = ServerProcess::start(command).await;
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("relay-listener in this process:")),
        "{:?}",
        server.banner
    );
    // No Bind=: the banner says the server is loopback-only and how to open it.
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("loopback only") && l.contains("Bind=0.0.0.0")),
        "{:?}",
        server.banner
    );
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let status = async || {
        ops_http::client::call(
            admin,
            http::Method::GET,
            "/api/status",
            Some(TOKEN),
            None,
            LIMIT,
        )
        .await
        .expect("answer")
        .json()
        .expect("json")
    };
    // The control channel opens in the background: wait (bounded) for it.
    let mut listener = serde_json::Value::Null;
    for _ in 0..300 {
        listener = status().await["relay_listener"].clone();
        if listener["connected"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(listener["in_process"], true);
    assert_eq!(listener["connected"], true, "{listener}");

    let mut proxy = test_support::Proxy::spawn(relay.proxy_config_at("branch-b")).await;
    let client = license_ops::client_of(proxy.addr(), "remote-pc");
    tokio::time::timeout(LIMIT, async {
        client.init().await.expect("init through the tunnel");
        client.login(DEMO_APP).await.expect("login");
    })
    .await
    .expect("in time");
    let s = status().await;
    assert_eq!(s["sessions"][0]["site"], "branch-b");
    assert_eq!(s["sessions"][0]["client_name"], "remote-pc");
    assert_eq!(s["dongles"][0]["slots"][0]["taken"], 1);
    assert!(
        s["relay_listener"]["accepted"].as_u64() >= Some(2),
        "{}",
        s["relay_listener"]
    );
    assert_eq!(
        s["server"]["proxy_headers"]["accepted"],
        s["relay_listener"]["accepted"]
    );
    // The in-process listener's series are in the server's /metrics, beside the license ones.
    let metrics = ops_http::client::call(
        admin,
        http::Method::GET,
        "/metrics",
        Some(TOKEN),
        None,
        LIMIT,
    )
    .await
    .expect("metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let accepted = format!(
        "listener_streams_total{{result=\"accepted\"}} {}",
        s["relay_listener"]["accepted"]
    );
    for line in [
        "listener_connected 1",
        accepted.as_str(),
        "license_logins 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    proxy.stop().await;
    server.child.start_kill().expect("kill");
    let _ = server.child.wait().await;
}
