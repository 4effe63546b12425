//! The demo's stack: every component of the product in one process, wired the way the sites
//! are in production but on loopback — the self-hosted relay as `loopback-stack` plans it
//! (TLS, self-signed certificate, generated SAS keys), the license server (simulated dongle, ephemeral key, PROXY headers
//! trusted from loopback), the relay-listener (pinning the relay's certificate, identity mode
//! PROXY v2), the license server's admin endpoint (status page, JSON, metrics, with a token
//! generated now; it shows the relay-listener's state) and one local-proxy for a named site.
//! Start waits on each component's readiness signal; stop cancels them all and waits a bounded
//! time.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use hc_protocol::ConnectionString;
use license_server::{LicenseServer, ServerConfig};
use local_proxy::{LocalProxy, ProxyStatus};
use loopback_stack::LoopbackRelay;
use ops_http::BearerToken;
use relay_listener::{IdentityMode, ListenerStatus, RelayListener};
use relay_server::quickstart::{DEFAULT_HC, QuickstartKeys};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::server::ops;
use crate::commands::tasks::Tasks;

/// How long the relay-listener may take to open its control channel.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);
/// How long stopping may take before the remaining tasks are abandoned.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Drain time of each component at stop (the demo's calls are finished by then).
const GRACE: Duration = Duration::from_secs(1);

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where the local-proxy accepts license clients (`127.0.0.1:12300`, or port 0).
    pub proxy_addr: SocketAddr,
    /// The local-proxy's site name.
    pub site: String,
    /// The license server's configuration (its bind address and port are ignored: it listens
    /// on `127.0.0.1:0`).
    pub server: ServerConfig,
    /// Where the admin endpoint listens (`127.0.0.1:0` picks a free port).
    pub admin_addr: SocketAddr,
}

/// The running stack.
pub struct DemoStack {
    /// The relay's address.
    pub relay_addr: SocketAddr,
    /// SHA-256 fingerprint of the relay's self-signed certificate (`AB:CD:…`).
    pub fingerprint: String,
    /// Connection string with the Listen key (for relay-listeners).
    pub listen_connection: ConnectionString,
    /// Connection string with the Send key (for local-proxies).
    pub send_connection: ConnectionString,
    /// The license server's address.
    pub license_addr: SocketAddr,
    /// The license server (snapshot, public key, PROXY header counters).
    pub server: LicenseServer,
    /// The relay-listener's live state.
    pub listener: ListenerStatus,
    /// The admin endpoint's address.
    pub admin_addr: SocketAddr,
    /// The admin endpoint's token (generated at start).
    pub admin_token: BearerToken,
    /// Where license clients connect.
    pub proxy_addr: SocketAddr,
    /// The local-proxy's live counters.
    pub proxy: ProxyStatus,
    /// The local-proxy's site.
    pub site: String,
    shutdown: CancellationToken,
    tasks: Tasks,
}

impl DemoStack {
    /// Starts everything and returns once the relay-listener is connected and the local-proxy
    /// accepts clients.
    ///
    /// # Errors
    /// A port that cannot be bound (the proxy's port first, so a taken 12300 fails before
    /// anything starts), a component that does not come up in time.
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let proxy_socket = local_proxy::bind(options.proxy_addr, 128).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!(
                    "{} is already in use (a license server or another proxy?); run \
                     `dongle-relay demo --port 0` to use a free port",
                    options.proxy_addr
                )
            } else {
                anyhow::anyhow!("cannot listen on {}: {e}", options.proxy_addr)
            }
        })?;
        let proxy_addr = proxy_socket.local_addr().context("proxy address")?;
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        let started = Self::start_rest(&options, proxy_socket, proxy_addr, &shutdown, &mut tasks);
        match started.await {
            Ok(parts) => Ok(Self {
                shutdown,
                tasks,
                site: options.site,
                proxy_addr,
                ..parts
            }),
            Err(e) => {
                stop_tasks(&shutdown, tasks).await;
                Err(e)
            }
        }
    }

    /// Relay, license server, listener, proxy; `tasks` collects what was spawned so a failure
    /// half-way can still stop it.
    async fn start_rest(
        options: &StackOptions,
        proxy_socket: TcpListener,
        proxy_addr: SocketAddr,
        shutdown: &CancellationToken,
        tasks: &mut Tasks,
    ) -> anyhow::Result<Self> {
        let relay = start_relay(shutdown, tasks).await?;
        let (license_addr, server) = start_license(options, shutdown, tasks).await?;
        let listener = start_listener(&relay, license_addr, shutdown, tasks).await?;

        // The admin endpoint: the license server's status page with the listener's state.
        let admin_token = BearerToken::generate();
        let in_process = ops::in_process_listener(
            listener.clone(),
            ops::relay_name(&relay.access(relay.listen_connection())),
        );
        let (admin_addr, admin) = ops::start_admin(
            options.admin_addr,
            Some(admin_token.clone()),
            &server,
            Some(in_process),
            shutdown.clone(),
        )
        .await
        .context("admin endpoint")?;
        tasks.push("admin endpoint", admin);

        // The local-proxy of one site.
        let mut proxy_config = relay.proxy_config();
        proxy_config.site = Some(options.site.clone());
        proxy_config.shutdown_grace = GRACE;
        let local_proxy = LocalProxy::new(proxy_config).context("local-proxy")?;
        let proxy = local_proxy.status();
        tasks.spawn(
            "local-proxy",
            local_proxy.run(proxy_socket, shutdown.clone()),
        );

        Ok(Self {
            relay_addr: relay.addr(),
            fingerprint: relay.cert().sha256_fingerprint.clone(),
            listen_connection: relay.listen_connection(),
            send_connection: relay.send_connection(),
            license_addr,
            server,
            listener,
            admin_addr,
            admin_token,
            proxy_addr,
            proxy,
            site: String::new(),
            shutdown: shutdown.clone(),
            tasks: Tasks::default(),
        })
    }

    /// Stops every component (the proxy first, the relay last) and waits up to 10 s.
    pub async fn stop(self) {
        stop_tasks(&self.shutdown, self.tasks).await;
    }
}

/// Cancels `shutdown` and waits for `tasks` within [`STOP_LIMIT`], logging failures. They all
/// stop at once; the wait takes the last started first (the proxy, the relay last).
async fn stop_tasks(shutdown: &CancellationToken, tasks: Tasks) {
    shutdown.cancel();
    tasks.join_within(STOP_LIMIT).await;
}

/// The relay as `loopback-stack` plans it (TLS with a certificate generated now, the built-in
/// hybrid connection and generated keys); returns once it serves.
async fn start_relay(
    shutdown: &CancellationToken,
    tasks: &mut Tasks,
) -> anyhow::Result<LoopbackRelay> {
    let relay_socket = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the relay on 127.0.0.1")?;
    let addr = relay_socket.local_addr().context("relay address")?;
    let plan = LoopbackRelay::new(addr.port(), DEFAULT_HC, QuickstartKeys::default())
        .context("self-signed certificate")?;
    let mut relay_config = plan.relay_config();
    relay_config.limits.shutdown_grace = GRACE;
    let relay_stats = relay_config.stats();
    tasks.spawn(
        "relay",
        relay_server::run(relay_config, relay_socket, shutdown.clone()),
    );
    relay_stats.wait_serving().await;
    Ok(plan)
}

/// The license server, on loopback: the listener's PROXY headers come from loopback.
async fn start_license(
    options: &StackOptions,
    shutdown: &CancellationToken,
    tasks: &mut Tasks,
) -> anyhow::Result<(SocketAddr, LicenseServer)> {
    let license_socket = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the license server on 127.0.0.1")?;
    let license_addr = license_socket
        .local_addr()
        .context("license server address")?;
    let server = LicenseServer::new(&options.server).context("license server")?;
    tasks.spawn("license server", {
        let server = server.clone();
        let token = shutdown.clone();
        async move { server.serve(license_socket, token).await }
    });
    Ok((license_addr, server))
}

/// The relay-listener: bridges to the license server with a PROXY v2 header per connection
/// (client address and site); returns once its control channel is open.
async fn start_listener(
    relay: &LoopbackRelay,
    license_addr: SocketAddr,
    shutdown: &CancellationToken,
    tasks: &mut Tasks,
) -> anyhow::Result<ListenerStatus> {
    let mut listener_config = relay.listener_config(&license_addr.to_string());
    listener_config.identity.mode = IdentityMode::ProxyV2;
    listener_config.reconnect_max = Duration::from_secs(2);
    listener_config.shutdown_grace = GRACE;
    let relay_listener = RelayListener::new(listener_config).context("relay-listener")?;
    let listener = relay_listener.status();
    tasks.spawn("relay-listener", relay_listener.run(shutdown.clone()));
    if tokio::time::timeout(CONNECT_LIMIT, listener.wait_for(|s| s.connected))
        .await
        .is_err()
    {
        let why = listener
            .snapshot()
            .last_error
            .unwrap_or_else(|| "no error reported".to_owned());
        anyhow::bail!(
            "the relay-listener did not connect to the relay within {CONNECT_LIMIT:?}: {why}"
        );
    }
    Ok(listener)
}
