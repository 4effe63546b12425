//! The `demo` subcommand: the whole product on one machine with nothing configured. It starts
//! the [`stack`] (relay, license server with a simulated dongle, relay-listener, local-proxy on
//! `127.0.0.1:12300`), walks a legacy license client through init, login, refresh, status,
//! logout and release *through the proxy*, printing every step with the seats left, checks
//! that a seat was taken and returned, and stops everything — or, with `--keep-running`,
//! prints the addresses for other clients and waits for Ctrl-C.

pub mod stack;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hc_protocol::ConnectionString;
use hc_protocol::connection_string::Credentials;
use license_client::{ClientConfig, RemoteApi, Step, StepReport, walkthrough};
use license_core::SlotRef;
use license_core::engine::StatusSnapshot;
use license_server::ServerConfig;
use tokio_util::sync::CancellationToken;

use self::stack::{DemoStack, StackOptions};

/// The AppSlot the scripted client uses (the default dongle's "Demo Application", 3 seats).
const SLOT: u16 = 1;
/// The scripted session.
const STEPS: [Step; 6] = [
    Step::Init,
    Step::Login,
    Step::Refresh,
    Step::Status,
    Step::Logout,
    Step::Release,
];

const DEMO_HELP: &str = "\
Starts, in this one process and on loopback only:\n\
  - the self-hosted relay (TLS with a self-signed certificate generated now, SAS keys\n\
    generated now, on a free port of 127.0.0.1);\n\
  - the license server with a simulated dongle (serial 1234567890, AppSlot 1 \"Demo\n\
    Application\" with 3 seats), trusting PROXY headers from loopback;\n\
  - the relay-listener, pinning the relay's certificate, bridging to the license server\n\
    with a PROXY v2 header naming each client and its site;\n\
  - a local-proxy on 127.0.0.1:12300 (--port) for site \"demo-site\" (--site);\n\
  - the license server's admin endpoint on 127.0.0.1 (--admin-port; a free port by\n\
    default): status page with Disconnect/Logout, /api/status, /metrics, with a bearer\n\
    token generated now (printed with --keep-running).\n\
Then a scripted legacy client talks to 127.0.0.1:12300 - through proxy, relay and\n\
listener - and runs init, login, refresh, status, logout, release, printing each return\n\
value or error code and the seats left. Exit status 0 when every step succeeded and the\n\
seat was taken and returned.\n\
\n\
--keep-running leaves everything up afterwards and prints the addresses, so other clients\n\
(`dongle-relay client --server 127.0.0.1:12300`, a real legacy client, another\n\
`dongle-relay proxy` with the printed connection string) can use it; Ctrl-C stops it.\n\
Nothing is written to disk. See docs/demo.md.";

/// Options of `dongle-relay demo`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = DEMO_HELP)]
pub struct Args {
    /// Port of the local-proxy on 127.0.0.1, where license clients connect; 0 picks a free one.
    #[arg(long, short = 'p', default_value_t = license_core::DEFAULT_PORT)]
    pub port: u16,
    /// Site name the local-proxy reports (shown by the license server).
    #[arg(long, default_value = "demo-site", value_name = "NAME")]
    pub site: String,
    /// After the walkthrough, keep everything running and print the addresses until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// With --keep-running: print connection strings with their keys (they are secrets).
    #[arg(long, requires = "keep_running")]
    pub show_keys: bool,
    /// Port of the license server's admin endpoint (status page, JSON, metrics) on 127.0.0.1;
    /// 0 picks a free one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub admin_port: u16,
}

/// The validated configuration of `demo`.
#[derive(Debug)]
pub struct Loaded {
    options: StackOptions,
    keep_running: bool,
    show_keys: bool,
}

/// Reads and validates the options (no files are read).
///
/// # Errors
/// An unusable site name.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let site = args.site.trim().to_owned();
    anyhow::ensure!(
        relay_listener::identity::sanitize_site(&site).as_deref() == Some(site.as_str()),
        "--site {:?}: 1 to 64 bytes without control characters",
        args.site
    );
    let server = ServerConfig {
        key_file: None,
        ..ServerConfig::default()
    };
    Ok(Loaded {
        options: StackOptions {
            proxy_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)),
            site,
            server,
            admin_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, args.admin_port)),
        },
        keep_running: args.keep_running,
        show_keys: args.show_keys,
    })
}

/// Runs the command.
///
/// # Errors
/// A component that cannot start, a failed step, or Ctrl-C during the walkthrough.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    println!(
        "dongle-relay demo: relay, license server, relay-listener and local-proxy on this machine"
    );
    let stack = tokio::select! {
        s = DemoStack::start(loaded.options) => s?,
        () = shutdown.cancelled() => anyhow::bail!("interrupted"),
    };
    print_stack(&stack);
    let outcome = tokio::select! {
        r = client_walkthrough(&stack) => r,
        () = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
    if outcome.is_ok() && loaded.keep_running {
        print_addresses(&stack, loaded.show_keys);
        // Under a service manager: READY now that clients may use it, watchdog pings while
        // the license server's loop beats.
        let supervision = crate::service::Service::from_env().supervise(
            std::sync::Arc::new(stack.server.clone()),
            format!("demo running; license clients: {}", stack.proxy_addr),
            shutdown.clone(),
        );
        shutdown.cancelled().await;
        println!("stopping");
        supervision.finish(Duration::from_secs(5)).await;
    }
    stack.stop().await;
    outcome
}

fn print_stack(stack: &DemoStack) {
    let snapshot = stack.server.snapshot();
    let dongles: Vec<String> = snapshot
        .dongles
        .iter()
        .map(|d| {
            let slots: Vec<String> = d
                .slots
                .iter()
                .map(|s| format!("AppSlot {} \"{}\" ({} seats)", s.slot, s.name, s.limit))
                .collect();
            format!(
                "dongle {} ({}, serial {}): {}",
                d.name,
                d.kind,
                d.serial.map_or_else(|| "?".to_owned(), |s| s.to_string()),
                slots.join(", ")
            )
        })
        .collect();
    println!(
        "  relay           wss://{} (TLS, self-signed; SHA-256 {})",
        stack.relay_addr, stack.fingerprint
    );
    println!(
        "  license server  {} ({}; PROXY headers trusted from {})",
        stack.license_addr,
        dongles.join("; "),
        stack.server.trusted_proxies()
    );
    println!(
        "  relay-listener  connected to the relay; bridges to {} with PROXY v2 (client + site)",
        stack.license_addr
    );
    println!(
        "  local-proxy     {} (site \"{}\")",
        stack.proxy_addr, stack.site
    );
    println!(
        "  admin endpoint  http://{}/ (status page, /api/status, /metrics; bearer token \
         generated now)",
        stack.admin_addr
    );
    println!();
    println!(
        "legacy client -> {} -> local-proxy -> relay (TLS) -> relay-listener -> license server",
        stack.proxy_addr
    );
}

/// The seats of AppSlot [`SLOT`] as the server counts them: (taken, limit).
fn seats(snapshot: &StatusSnapshot) -> (u32, u32) {
    snapshot.slot(SLOT).map_or((0, 0), |s| (s.taken, s.limit))
}

/// Runs the scripted client through the proxy and checks a seat was taken and returned.
async fn client_walkthrough(stack: &DemoStack) -> anyhow::Result<()> {
    let mut config =
        ClientConfig::for_server(stack.proxy_addr.ip().to_string(), stack.proxy_addr.port());
    // The server's key is known here: pinning it proves the answers come from it, end to end
    // through proxy, relay and listener.
    config.pinned_key = Some(stack.server.public_key());
    config.client_name = "demo-client".to_owned();
    config.io_timeout = Duration::from_secs(15);
    config.connect_timeout = Duration::from_secs(5);
    let api = RemoteApi::new(config);
    let at = SlotRef::first_dongle(SLOT);
    let mut taken_after = Vec::new();
    let mut holder = None;
    let reports = walkthrough(&api, at, &STEPS, Duration::ZERO, |report: &StepReport| {
        let snapshot = stack.server.snapshot();
        let (taken, limit) = seats(&snapshot);
        println!(
            "{report}\n           server: {taken} of {limit} seat(s) taken, {} free",
            limit.saturating_sub(taken)
        );
        if report.step == Step::Login
            && let Some(session) = snapshot.sessions.first()
        {
            holder = Some((session.client_addr, session.site.clone()));
        }
        taken_after.push((report.step, taken));
    })
    .await;
    println!();
    let failed: Vec<&StepReport> = reports.iter().filter(|r| r.result.is_err()).collect();
    if !failed.is_empty() {
        let steps: Vec<String> = failed.iter().map(|r| r.to_string()).collect();
        anyhow::bail!("{} step(s) failed:\n  {}", failed.len(), steps.join("\n  "));
    }
    let taken = |step: Step| {
        taken_after
            .iter()
            .find(|(s, _)| *s == step)
            .map_or(u32::MAX, |(_, t)| *t)
    };
    anyhow::ensure!(
        taken(Step::Login) == 1 && taken(Step::Logout) == 0,
        "the seat count is wrong: {} taken after login, {} after logout (expected 1 and 0)",
        taken(Step::Login),
        taken(Step::Logout)
    );
    let (_, limit) = seats(&stack.server.snapshot());
    println!(
        "ok: a seat of AppSlot {SLOT} was taken through the tunnel ({limit} -> {} free) and \
         returned ({limit} free)",
        limit.saturating_sub(1)
    );
    if let Some((addr, site)) = holder {
        println!(
            "    the license server saw the client as {addr} at site {} (PROXY v2 header \
             from the relay-listener)",
            site.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// The `--keep-running` banner.
fn print_addresses(stack: &DemoStack, show_keys: bool) {
    let shown = |cs: &ConnectionString| {
        if show_keys {
            return cs.to_secret_string().expose().to_owned();
        }
        let mut hidden = cs.clone();
        if let Credentials::Key { key, .. } = &mut hidden.credentials {
            *key = hc_protocol::Secret::new("<key: run with --show-keys>");
        }
        hidden.to_secret_string().expose().to_owned()
    };
    println!();
    println!(
        "Running until Ctrl-C. Point license clients at {}:",
        stack.proxy_addr
    );
    println!(
        "  dongle-relay client --server {} --pin-key {} init login status logout release",
        stack.proxy_addr,
        stack.server.public_key()
    );
    println!("license server (direct, no tunnel): {}", stack.license_addr);
    println!(
        "status page (sessions, logins, Disconnect/Logout, relay-listener; refreshes itself):"
    );
    println!(
        "  {}",
        crate::commands::server::ops::page_url(stack.admin_addr, Some(&stack.admin_token), true)
    );
    println!(
        "  curl -H 'Authorization: Bearer {}' http://{}/api/status",
        stack.admin_token.expose(),
        stack.admin_addr
    );
    println!("relay: wss://{}", stack.relay_addr);
    println!("  TLS certificate SHA-256 (pin it): {}", stack.fingerprint);
    println!("  local-proxy connection string (another site):");
    println!("    {}", shown(&stack.send_connection));
    println!("  relay-listener connection string:");
    println!("    {}", shown(&stack.listen_connection));
    println!(
        "another site on this machine:\n  DONGLE_RELAY_CONNECTION_STRING='{}' \\\n    dongle-relay proxy --pin-sha256 {} --bind 127.0.0.1:12301 --site branch-b",
        shown(&stack.send_connection),
        stack.fingerprint
    );
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Loaded> {
        load(crate::commands::parse_args(args)?)
    }

    #[test]
    fn defaults_need_no_files_and_options_are_checked() {
        let d = parse(&[]).expect("defaults");
        assert_eq!(
            d.options.proxy_addr,
            "127.0.0.1:12300".parse().expect("addr")
        );
        assert_eq!(d.options.site, "demo-site");
        assert_eq!(d.options.server.key_file, None, "nothing is written");
        assert!(!d.keep_running);
        let l = parse(&[
            "--port",
            "0",
            "--site",
            "branch-a",
            "--keep-running",
            "--show-keys",
        ])
        .expect("parse");
        assert_eq!(l.options.proxy_addr.port(), 0);
        assert_eq!(l.options.site, "branch-a");
        assert!(l.keep_running && l.show_keys);
        assert!(
            parse(&["--show-keys"]).is_err(),
            "--show-keys needs --keep-running"
        );
        assert!(parse(&["--site", ""]).is_err());
        assert!(parse(&["--site", &"x".repeat(65)]).is_err());
    }
}
