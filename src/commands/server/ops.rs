//! What the `server` command runs beside the license port, shared with `demo`: the admin
//! endpoint (status page, JSON, actions, metrics) and the relay-listener run in the same
//! process, whose live state the admin status and whose metrics `/metrics` then show.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use hc_client::access::AccessConfig;
use license_server::LicenseServer;
use license_server::admin::{InProcessListener, ListenerProbe, ListenerState, ListenerStream};
use ops_http::BearerToken;
use relay_listener::{ListenerStatus, StreamState};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The relay-listener run in this process, for the admin endpoint: its state (read from
/// `status`; `relay` names the relay it dials) and its metrics.
pub fn in_process_listener(status: ListenerStatus, relay: String) -> InProcessListener {
    InProcessListener {
        metrics: Arc::new(relay_listener::metrics::registry(&status)),
        probe: listener_probe(status, relay),
    }
}

/// A probe reading `status` for the admin status.
fn listener_probe(status: ListenerStatus, relay: String) -> ListenerProbe {
    Arc::new(move || {
        let s = status.snapshot();
        ListenerState {
            relay: relay.clone(),
            connected: s.connected,
            connections: s.connections,
            reconnects: s.reconnects,
            active_streams: s.active_streams,
            accepted: s.accepted,
            rejected: s.rejected,
            failed: s.failed,
            last_error: s.last_error.clone(),
            bytes_to_relay: status.bytes().to_relay(),
            bytes_from_relay: status.bytes().from_relay(),
            recent_streams: s
                .recent_streams
                .iter()
                .map(|r| ListenerStream {
                    id: r.id.clone(),
                    client: r.client,
                    site: r.site.clone(),
                    state: match r.state {
                        StreamState::Active => "active",
                        StreamState::Ended => "ended",
                        StreamState::Rejected => "rejected",
                        StreamState::Failed => "failed",
                    }
                    .to_owned(),
                })
                .collect(),
        }
    })
}

/// How the relay-listener names its relay in the status: `host:port/hybrid-connection`.
pub fn relay_name(access: &AccessConfig) -> String {
    let endpoint = &access.connection.endpoint;
    let hc = access
        .entity_path
        .as_deref()
        .or(access.connection.entity_path.as_deref())
        .unwrap_or("?");
    format!("{}:{}/{hc}", endpoint.host, endpoint.port)
}

/// Where an in-process relay-listener reaches a license server listening on `local`: the
/// address itself, or loopback when it listens on every address (PROXY headers from loopback
/// are trusted by default).
pub fn loopback_target(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// The admin endpoint's page address, for the operator (`#token=` only when `show_token`:
/// the fragment never reaches the server or its logs).
pub fn page_url(addr: SocketAddr, token: Option<&BearerToken>, show_token: bool) -> String {
    let ip = loopback_target(addr);
    match token {
        Some(t) if show_token => format!("http://{ip}/#token={}", t.expose()),
        _ => format!("http://{ip}/"),
    }
}

/// An endpoint's bearer token: from the environment variable `env` when it is set and not
/// empty, else from the first line of `file`, else none.
///
/// # Errors
/// The token is unusable, or the file cannot be read.
pub fn bearer_token(env: &str, file: Option<&Path>) -> anyhow::Result<Option<BearerToken>> {
    match std::env::var(env) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(
            BearerToken::new(&text).map_err(|e| anyhow::anyhow!("{env}: {e}"))?,
        )),
        _ => Ok(file.map(BearerToken::from_file).transpose()?),
    }
}

/// Binds the admin endpoint (a non-loopback address needs a token) and serves the license
/// server's routes on it, with the in-process relay-listener's state and metrics if there is
/// one, until `shutdown`.
///
/// # Errors
/// The address is refused or cannot be bound.
pub async fn start_admin(
    addr: SocketAddr,
    token: Option<BearerToken>,
    server: &LicenseServer,
    listener: Option<InProcessListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    let socket: TcpListener = ops_http::bind(addr, token.as_ref()).await?;
    let local = socket.local_addr()?;
    let router = license_server::admin::router(server, listener);
    let task = tokio::spawn(async move {
        ops_http::serve(socket, router, token, shutdown).await?;
        Ok(())
    });
    Ok((local, task))
}
