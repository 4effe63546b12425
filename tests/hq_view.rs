//! One view across dongle hosts (issue 18, item 4): two license servers with usage history —
//! "Paris", whose admin endpoint is reachable only through the relay's HTTP request mode (its
//! in-process relay-listener forwards to it, as `dongle-relay server --relay-admin` runs it),
//! and "Berlin", reached directly — and a real `dongle-relay hq` process configured with both
//! (and, in the second test, a third host that is down). Scripted logins and a refusal; then
//! `GET /api/hosts` of the headquarters shows each host's seats in use and usage summary and
//! the combined table; a host whose token is wrong (401), whose relay Send key is wrong (the
//! relay's 401) or that is down is an error row while the others still show; the view's own token is required (401 without or with a wrong one).

#[cfg(unix)]
mod browser;
mod license_ops;

use std::net::SocketAddr;
use std::path::Path;

use dongle_relay::commands::hq::HQ_TOKEN_ENV;
use dongle_relay::commands::server::ops;
use http::Method;
use license_ops::{DEMO_SLOT as SLOT, LIMIT, Ops, ServerProcess, client_of, dongle_host};
use ops_http::client::{Answer, call};
use relay_listener::RelayListener;
use test_support::relay::{HC, SEND_KEY};
use test_support::{Listener, Relay};
use tokio::process::Command;

const PARIS_TOKEN: &str = "paris-admin-token-0123456789";
const BERLIN_TOKEN: &str = "berlin-admin-token-0123456789";
const HQ_TOKEN: &str = "headquarters-token-0123456789";

/// The two dongle hosts, running.
struct Hosts {
    relay: Relay,
    paris: Ops,
    _paris_listener: Listener,
    berlin: Ops,
    _dir: tempfile::TempDir,
}

impl Hosts {
    /// Paris behind the relay (HTTP mode to its admin endpoint), Berlin direct; both keep
    /// usage history in a state database.
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let relay = Relay::start_tls().await;
        let (license_addr, listener_config, relay_name, mut paris_config) =
            dongle_host(&relay).await;
        paris_config.state_db = Some(dir.path().join("paris.db"));
        let built = RelayListener::new(listener_config).expect("listener");
        let in_process = ops::in_process_listener(built.status(), relay_name);
        let paris = Ops::start_on(
            &paris_config,
            license_addr,
            Some(PARIS_TOKEN),
            Some(in_process),
        )
        .await;
        let paris_listener = Listener::run(built.with_http_target(&paris.admin.to_string()));
        paris_listener.status().wait_for(|s| s.connected).await;

        let mut berlin_config = license_ops::config();
        berlin_config.state_db = Some(dir.path().join("berlin.db"));
        let berlin = Ops::start(&berlin_config, Some(BERLIN_TOKEN), None).await;
        Self {
            relay,
            paris,
            _paris_listener: paris_listener,
            berlin,
            _dir: dir,
        }
    }

    /// `logins` clients log in to AppSlot 1 (3 seats) at `server`; returns how many got one.
    async fn log_in(
        server: SocketAddr,
        logins: usize,
        name: &str,
    ) -> (usize, Vec<license_client::RemoteApi>) {
        let mut granted = 0;
        let mut clients = Vec::new();
        for n in 0..logins {
            let client = client_of(server, &format!("{name}-{n}"));
            client.init().await.expect("init");
            if client.login(SLOT).await.is_ok() {
                granted += 1;
            }
            clients.push(client);
        }
        (granted, clients)
    }

    /// A headquarters configuration in `dir` for Paris (through the relay) and Berlin (with
    /// `berlin_token` in its token file), and Lyon at `down` (nothing listens there) if given.
    fn hq_config(
        &self,
        dir: &Path,
        berlin_token: &str,
        down: Option<SocketAddr>,
    ) -> std::path::PathBuf {
        std::fs::write(dir.join("lyon.token"), "lyon-admin-token-0123456789").expect("write");
        let extra = down.map_or_else(String::new, |down| {
            format!("\n[[host]]\nname = \"Lyon\"\nurl = \"http://{down}\"\ntoken_file = \"lyon.token\"\n")
        });
        std::fs::write(dir.join("paris.token"), PARIS_TOKEN).expect("write");
        std::fs::write(dir.join("berlin.token"), berlin_token).expect("write");
        std::fs::write(
            dir.join("paris-send.txt"),
            format!(
                "Endpoint=sb://127.0.0.1:{}/;SharedAccessKeyName=send;SharedAccessKey={SEND_KEY};EntityPath={HC}\n",
                self.relay.port()
            ),
        )
        .expect("write");
        let file = dir.join("hq.toml");
        std::fs::write(
            &file,
            format!(
                r#"timeout = "5s"

[[host]]
name = "Berlin"
url = "http://{berlin}"
token_file = "berlin.token"

[[host]]
name = "Paris"
connection_string_file = "paris-send.txt"
token_file = "paris.token"
tls.pin_sha256 = ["{pin}"]
{extra}"#,
                berlin = self.berlin.admin,
                pin = self.relay.cert().sha256_fingerprint,
            ),
        )
        .expect("write");
        file
    }
}

/// `dongle-relay hq --config file --bind 127.0.0.1:0`, once it serves; its address.
async fn hq(file: &Path) -> (ServerProcess, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dongle-relay"));
    command
        .args(["--log", "warn", "hq", "--bind", "127.0.0.1:0", "--config"])
        .arg(file)
        .env(HQ_TOKEN_ENV, HQ_TOKEN);
    let process = ServerProcess::start_until(command, "headquarters view").await;
    let line = process.line("headquarters view");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (process, addr)
}

async fn get(hq: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    call(hq, Method::GET, path, token, None, LIMIT)
        .await
        .expect("answer")
}

async fn hosts_view(hq: SocketAddr, query: &str) -> serde_json::Value {
    let answer = get(hq, &format!("/api/hosts{query}"), Some(HQ_TOKEN)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json().expect("json")
}

fn host<'a>(view: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    view["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {view}"))
}

fn combined<'a>(view: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    view["combined"]
        .as_array()
        .expect("combined")
        .iter()
        .find(|r| r["host"] == name && r["slot"] == 1)
        .unwrap_or_else(|| panic!("no combined row of {name} in {view}"))
}

#[tokio::test]
// Long: one scenario (two hosts, scripted usage, then every check of the view on that state).
async fn one_view_shows_a_direct_and_a_relayed_host_and_needs_its_token() {
    tokio::time::timeout(LIMIT * 2, async {
        let hosts = Hosts::start().await;
        // Berlin: four clients for three seats (one refused); Paris: two logins.
        let (berlin_granted, _berlin_clients) =
            Hosts::log_in(hosts.berlin.license, 4, "berlin").await;
        let (paris_granted, _paris_clients) = Hosts::log_in(hosts.paris.license, 2, "paris").await;
        assert_eq!((berlin_granted, paris_granted), (3, 2));
        assert!(hosts.berlin.server.flush_store(LIMIT) && hosts.paris.server.flush_store(LIMIT));

        let dir = tempfile::tempdir().expect("tempdir");
        let file = hosts.hq_config(dir.path(), BERLIN_TOKEN, None);
        let (_process, addr) = hq(&file).await;

        let view = hosts_view(addr, "").await;
        let berlin = host(&view, "Berlin");
        assert_eq!(berlin["reachable"], true, "{berlin}");
        assert_eq!(berlin["via"], format!("http://{}/", hosts.berlin.admin));
        assert_eq!(berlin["slots"][0]["name"], "Demo Application");
        assert_eq!(
            (&berlin["slots"][0]["taken"], &berlin["slots"][0]["limit"]),
            (&3.into(), &3.into())
        );
        let usage = &berlin["usage"]["slots"][0];
        assert_eq!(
            (&usage["peak"], &usage["refusals"]),
            (&3.into(), &1.into()),
            "{berlin}"
        );
        assert!(
            berlin["series"]["times"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        );

        let paris = host(&view, "Paris");
        assert_eq!(paris["reachable"], true, "{paris}");
        assert!(
            paris["via"].as_str().is_some_and(
                |v| v.starts_with("relay https://127.0.0.1:") && v.ends_with("/license/")
            ),
            "{paris}"
        );
        assert_eq!(paris["listener_connected"], true);
        assert_eq!(paris["slots"][0]["taken"], 2);
        let usage = &paris["usage"]["slots"][0];
        assert_eq!(
            (&usage["peak"], &usage["refusals"]),
            (&2.into(), &0.into()),
            "{paris}"
        );

        // The combined table: both hosts' AppSlot 1, now and over the period.
        let row = combined(&view, "Berlin");
        assert_eq!(
            (&row["taken"], &row["peak"], &row["refusals"], &row["limit"]),
            (&3.into(), &3.into(), &1.into(), &3.into())
        );
        let row = combined(&view, "Paris");
        assert_eq!(
            (&row["taken"], &row["peak"], &row["refusals"]),
            (&2.into(), &2.into(), &0.into())
        );
        // The hosts' AppSlot 2 (10 seats, unused) is in the table too.
        assert_eq!(view["combined"].as_array().map(Vec::len), Some(4), "{view}");

        // The period goes to every host as it is; each says what is wrong with it.
        let bad = hosts_view(addr, "?from=yesterday").await;
        for name in ["Berlin", "Paris"] {
            let h = host(&bad, name);
            assert_eq!(h["reachable"], true);
            assert!(
                h["usage_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("from=\"yesterday\"")),
                "{h}"
            );
        }

        // The view's own token: required, and only its own.
        let none = get(addr, "/api/hosts", None).await;
        assert_eq!(none.status, 401);
        assert_eq!(
            get(addr, "/api/hosts", Some(BERLIN_TOKEN)).await.status,
            401,
            "a host's token is not the view's"
        );
        // The page itself holds no data and loads without it, from this endpoint only.
        let page = get(addr, "/", None).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("data-testid=\"combined-table\""));
        assert_eq!(
            get(addr, "/vendor/uplot/uPlot.iife.min.js", None)
                .await
                .status,
            200
        );
        assert_eq!(get(addr, "/hq.js", None).await.status, 200);
        assert_eq!(get(addr, "/token.js", None).await.status, 200);
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_host_with_a_wrong_token_or_down_is_an_error_row_and_the_others_still_show() {
    tokio::time::timeout(LIMIT * 2, async {
        let hosts = Hosts::start().await;
        let (paris_granted, _clients) = Hosts::log_in(hosts.paris.license, 1, "paris").await;
        assert_eq!(paris_granted, 1);
        let down = test_support::targets::dead_port().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = hosts.hq_config(dir.path(), "not-berlins-token-0123456789", Some(down));
        // Paris again, with a Send key the relay does not know: the relay refuses it (401).
        std::fs::write(
            dir.path().join("wrong-send.txt"),
            format!(
                "Endpoint=sb://127.0.0.1:{}/;SharedAccessKeyName=send;SharedAccessKey=not-the-key;EntityPath={HC}\n",
                hosts.relay.port()
            ),
        )
        .expect("write");
        let mut toml = std::fs::read_to_string(&file).expect("read");
        toml.push_str(&format!(
            "\n[[host]]\nname = \"Paris, wrong Send key\"\nconnection_string_file = \"wrong-send.txt\"\n\
             token_file = \"paris.token\"\ntls.pin_sha256 = [\"{}\"]\n",
            hosts.relay.cert().sha256_fingerprint
        ));
        std::fs::write(&file, toml).expect("write");
        let (_process, addr) = hq(&file).await;

        let view = hosts_view(addr, "").await;
        let berlin = host(&view, "Berlin");
        assert_eq!(berlin["reachable"], false, "{berlin}");
        assert_eq!(berlin["error_status"], 401, "{berlin}");
        assert!(
            berlin["error"]
                .as_str()
                .is_some_and(|e| e.contains("bearer token")),
            "{berlin}"
        );
        let lyon = host(&view, "Lyon");
        assert_eq!(lyon["reachable"], false, "{lyon}");
        assert!(
            lyon["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{lyon}"
        );
        let paris = host(&view, "Paris");
        assert_eq!(paris["reachable"], true, "{paris}");
        assert_eq!(paris["slots"][0]["taken"], 1);
        let refused = host(&view, "Paris, wrong Send key");
        assert_eq!(
            (&refused["reachable"], &refused["error_status"]),
            (&false.into(), &401.into()),
            "{refused}"
        );
        // Only the host that answered is in the combined table.
        let rows: Vec<_> = view["combined"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["host"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(rows, ["Paris", "Paris"], "{view}");
    })
    .await
    .expect("within the limit");
}

/// The page in headless Chromium: a section per host (the host that is down says why), each
/// answering host's seats and its drawn chart, the combined table with Berlin's refusal, under
/// the page's strict CSP without a violation or a script error. Unix only: the browser is
/// Debian's chromium driven by Node (see `tests/browser/mod.rs`).
#[cfg(unix)]
#[tokio::test]
// Long: one browser session, checked step by step on the page it loaded.
async fn the_page_shows_every_host_and_the_one_that_is_down() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let Some(module) = browser::browser_or_skip() else {
        return;
    };
    let hosts = tokio::time::timeout(LIMIT, Hosts::start())
        .await
        .expect("the hosts start in time");
    let (line, status) = tokio::time::timeout(LIMIT * 3, async {
        let (berlin_granted, _berlin) = Hosts::log_in(hosts.berlin.license, 4, "berlin").await;
        let (paris_granted, _paris) = Hosts::log_in(hosts.paris.license, 1, "paris").await;
        assert_eq!((berlin_granted, paris_granted), (3, 1));
        assert!(hosts.berlin.server.flush_store(LIMIT) && hosts.paris.server.flush_store(LIMIT));
        let down = test_support::targets::dead_port().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = hosts.hq_config(dir.path(), BERLIN_TOKEN, Some(down));
        let (_process, addr) = hq(&file).await;
        // docs/hq-view.png is this screenshot (DONGLE_RELAY_HQ_SCREENSHOT=$PWD/docs/hq-view.png).
        let screenshot = std::env::var("DONGLE_RELAY_HQ_SCREENSHOT")
            .unwrap_or_else(|_| dir.path().join("hq-view.png").display().to_string());
        let mut node = browser::node(
            "hq_page.js",
            &module,
            addr,
            HQ_TOKEN,
            &[("HOSTS", "3"), ("CHARTS", "2"), ("SCREENSHOT", &screenshot)],
        );
        let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
        let line = lines
            .next_line()
            .await
            .expect("read")
            .unwrap_or_else(|| "ERROR the script ended early".to_owned());
        (line, node.wait().await.expect("wait"))
    })
    .await
    .expect("the browser answers in time");
    let seen: serde_json::Value = serde_json::from_str(
        line.strip_prefix("HQ ")
            .unwrap_or_else(|| panic!("expected HQ, got {line}")),
    )
    .expect("json");
    assert!(status.success(), "{status}");
    let section = |name: &str| {
        seen["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("no section {name} in {seen}"))
            .clone()
    };
    let berlin = section("Berlin");
    assert_eq!(
        (&berlin["reachable"], &berlin["taken"], &berlin["chart"]),
        (&"true".into(), &serde_json::json!(["3", "0"]), &true.into()),
        "{seen}"
    );
    let paris = section("Paris");
    assert_eq!(
        (&paris["reachable"], &paris["taken"], &paris["chart"]),
        (&"true".into(), &serde_json::json!(["1", "0"]), &true.into()),
        "{seen}"
    );
    let lyon = section("Lyon");
    assert_eq!(lyon["reachable"], "false", "{seen}");
    assert!(
        lyon["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Unreachable: ")),
        "{seen}"
    );
    let berlin_row = seen["combined"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["host"] == "Berlin" && r["slot"] == "1")
        .unwrap_or_else(|| panic!("no Berlin row in {seen}"))
        .clone();
    assert_eq!(
        berlin_row,
        serde_json::json!({"host": "Berlin", "slot": "1", "taken": "3", "peak": "3", "refusals": "1"})
    );
    assert_eq!(seen["combined"].as_array().map(Vec::len), Some(4), "{seen}");
    assert_eq!(seen["summary"], "3 host(s), 1 unreachable");
    assert_eq!(seen["hash"], "", "the token left the address bar");
    assert_eq!(seen["violations"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
}
