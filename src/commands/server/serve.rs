//! Running the license server once its configuration is loaded: bind the port, say what it
//! serves (address, public key, dongles, seat persistence), start the in-process
//! relay-listener and the admin endpoint when configured, and serve until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use license_core::protocol::ServerIdentity;
use license_server::LicenseServer;
use license_server::config::ServerConfig;
use relay_listener::RelayListener;
use tokio_util::sync::CancellationToken;

use super::{Loaded, STOP_LIMIT, ops};
use crate::commands::tasks::Tasks;

/// Runs the command.
///
/// # Errors
/// The port cannot be bound, the key file cannot be used.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &loaded.config;
    if loaded.print_key {
        let identity = match &config.key_file {
            Some(path) => ServerIdentity::load_or_create(path)?,
            None => anyhow::bail!("--print-key needs a key file"),
        };
        println!("{}", identity.public_key());
        return Ok(());
    }
    let addr = SocketAddr::new(config.bind, config.port);
    // The backlog follows somaxconn: bursts of one-call connections queue in the kernel.
    let listener = license_server::server::bind_listener(addr)
        .with_context(|| format!("cannot listen on {addr}"))?;
    let server = LicenseServer::new(config)?;
    for warning in &config.warnings {
        tracing::warn!("configuration: {warning}");
    }
    let local = listener.local_addr().unwrap_or(addr);
    announce(&server, config, local);
    let mut tasks = Tasks::default();
    start_ops(loaded, &server, local, &shutdown, &mut tasks).await?;
    // READY once the accept loop beats; watchdog pings while it keeps beating.
    let supervision = crate::service::Service::from_env().supervise(
        Arc::new(server.clone()),
        format!("license server listening on {local}"),
        shutdown.clone(),
    );
    let served = server.serve(listener, shutdown.clone()).await;
    shutdown.cancel();
    supervision.finish(STOP_LIMIT).await;
    tasks.join_within(STOP_LIMIT).await;
    served?;
    Ok(())
}

/// Says what the server serves: where, with which key, which dongles, whose PROXY headers it
/// takes and whether seats are persisted.
fn announce(server: &LicenseServer, config: &ServerConfig, local: SocketAddr) {
    println!("license server listening on {local}");
    if local.ip().is_loopback() {
        // The vendor's server listens on every address; ours defaults to loopback (the relay
        // listener beside it is the usual client). Say so, or a LAN client's -204 is a mystery.
        println!(
            "  loopback only: clients on other machines cannot reach it; to open it to the LAN \
             set Bind=0.0.0.0 in [Option] (or --bind 0.0.0.0) and allow port {} in the firewall",
            local.port()
        );
    }
    println!(
        "server public key (pin it with serverkey= / --pin-key): {}",
        server.public_key()
    );
    for dongle in server.snapshot().dongles {
        let slots: Vec<String> = dongle
            .slots
            .iter()
            .map(|s| format!("{} {} ({} seats)", s.slot, s.name, s.limit))
            .collect();
        println!(
            "dongle {} ({}, serial {}): {}",
            dongle.name,
            dongle.kind,
            dongle
                .serial
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            slots.join(", ")
        );
    }
    println!(
        "PROXY v2 headers (client and site from a relay-listener) accepted from: {}",
        server.trusted_proxies()
    );
    print_store(server, config);
}

/// Starts what runs beside the license port when configured: the admin endpoint and the
/// in-process relay-listener. The listener is built first (the admin endpoint shows its
/// state) and runs once the admin endpoint is bound (it may forward HTTP-mode requests there).
async fn start_ops(
    loaded: Loaded,
    server: &LicenseServer,
    local: SocketAddr,
    shutdown: &CancellationToken,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let mut relay_listener = None;
    let in_process = match loaded.listener {
        Some(mut listener_config) => {
            let target = ops::loopback_target(local);
            listener_config.target = target.to_string();
            let relay = ops::relay_name(&listener_config.access);
            let built = RelayListener::new(*listener_config)?;
            let status = built.status();
            println!("relay-listener in this process: {relay} -> {target} (PROXY v2)");
            relay_listener = Some(built);
            Some(ops::in_process_listener(status, relay))
        }
        None => None,
    };
    if let Some(admin) = loaded.admin {
        let auth = if admin.token.is_some() {
            "bearer token required"
        } else {
            "no token: anyone on this host can use it"
        };
        let (admin_addr, task) = ops::start_admin(
            admin.addr,
            admin.token,
            server,
            in_process,
            shutdown.clone(),
        )
        .await?;
        tasks.push("admin endpoint", task);
        println!(
            "admin endpoint (status page, /api/status, /metrics): {} ({auth})",
            ops::page_url(admin_addr, None, false)
        );
        if loaded.relay_admin {
            let target = ops::loopback_target(admin_addr).to_string();
            relay_listener = relay_listener.map(|l| l.with_http_target(&target));
            println!("admin endpoint also served through the relay (HTTP mode, token required)");
        }
    }
    if let Some(relay_listener) = relay_listener {
        tasks.spawn("relay-listener", relay_listener.run(shutdown.clone()));
    }
    Ok(())
}

/// One line on seat persistence: where, what was restored, or why not.
fn print_store(server: &LicenseServer, config: &ServerConfig) {
    match (
        server.store_status(),
        server.store_error(),
        &config.state_db,
    ) {
        (Some(s), _, _) => println!(
            "seats persisted in {} ({}; restored {} session(s), {} login(s))",
            s.path,
            match s.opened {
                license_server::store::OpenedAs::Existing => "existing",
                license_server::store::OpenedAs::Created => "created",
                license_server::store::OpenedAs::Replaced => "unusable file moved aside, new",
            },
            s.restored_sessions,
            s.restored_logins
        ),
        (None, Some(e), _) => println!("seats NOT persisted: {e}"),
        (None, None, _) => println!("seats not persisted (no StateDb= / --state-db)"),
    }
}
