//! The `proxy` subcommand: the local-proxy at a client site.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use config_syntax::parse_duration;
use config_syntax::parse_net;
use local_proxy::config::{DEFAULT_BIND, LocalTlsSection, default_backlog};
use local_proxy::local_tls::LocalTls;
use local_proxy::{ProxyConfig, ProxyFile, TunnelMode};
use tokio_util::sync::CancellationToken;

use super::access::{RelayArgs, read_file};
use super::supervised::Supervised;
use crate::metrics_endpoint::{MetricsArgs, MetricsSettings};

/// Options of `dongle-relay proxy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TOML configuration file (see deploy/proxy.example.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Relay access.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// Local address license clients connect to [default: 127.0.0.1:12300].
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<SocketAddr>,
    /// Listen backlog of the local socket [default: the kernel's net.core.somaxconn].
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,
    /// Most live tunnels at once; further clients are closed immediately [default: what the
    /// open-file limit holds at two descriptors a tunnel, at most 16384].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most live tunnels of one client address [default: --max-connections]; under
    /// contention an address gets no more than its fair share anyway.
    #[arg(long, value_name = "N")]
    pub max_connections_per_client: Option<usize>,
    /// Open the relay side of a tunnel only once the client has sent something (`false` for
    /// server-speaks-first protocols) [default: true].
    #[arg(long, value_name = "BOOL")]
    pub open_on_first_byte: Option<bool>,
    /// Close tunnels idle this long; `0` turns it off [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// TCP keepalive on local connections; `0` turns it off [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub tcp_keepalive: Option<Duration>,
    /// WebSocket ping interval per tunnel [default: none].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_interval: Option<Duration>,
    /// Allow only these clients (IP or CIDR); repeatable [default: everyone].
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Refuse these clients (IP or CIDR); repeatable; deny wins over allow.
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<String>,
    /// Serve local clients over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Site name sent to the listener with each connection (`X-Dongle-Relay-Site`).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// How long open tunnels may finish after SIGTERM [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// How connections travel: `auto` (multiplexed over a few pooled relay connections when
    /// the listener is ours, else one relay connection each), `mux` (multiplexed only),
    /// `single` (one relay connection per TCP connection, as plain Hybrid Connections peers
    /// expect), `azbridge` (single, with Azure Relay Bridge's preamble for `azbridge -T`)
    /// [default: auto].
    #[arg(long, value_name = "MODE", value_parser = |s: &str| s.parse::<TunnelMode>())]
    pub mode: Option<TunnelMode>,
    /// Pooled relay connections in auto/mux mode [default: 2].
    #[arg(long, value_name = "N")]
    pub pool_size: Option<usize>,
    /// Port name sent in azbridge mode (the `-T relay:NAME/host:port` of the azbridge
    /// listener) [default: the local port number, as `azbridge -L`].
    #[arg(long, value_name = "NAME")]
    pub azbridge_port_name: Option<String>,
    /// Prometheus metrics and health check.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// The validated configuration of `proxy`.
pub struct Loaded {
    config: ProxyConfig,
    bind: SocketAddr,
    backlog: u32,
    metrics: Option<MetricsSettings>,
}

/// Reads and validates the configuration.
///
/// # Errors
/// Configuration errors, naming the file and key.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let metrics = args.metrics.settings()?;
    let file = read_file(args.config.as_ref(), ProxyFile::parse)?.unwrap_or_default();
    let access = args.relay.access(file.access_keys())?;
    let mut config = ProxyConfig::new(access.connection.clone());
    config.access = access;
    let bind = match (args.bind, &file.bind) {
        (Some(b), _) => b,
        (None, Some(b)) => b
            .parse()
            .map_err(|_| anyhow::anyhow!("bind: {b:?} is not ADDR:PORT"))?,
        (None, None) => DEFAULT_BIND.parse().context("default bind address")?,
    };
    let backlog = args
        .backlog
        .or(file.backlog)
        .unwrap_or_else(default_backlog);
    if let Some(n) = args.max_connections.or(file.max_connections) {
        anyhow::ensure!(n > 0, "max_connections: must be at least 1");
        config.max_connections = n;
    }
    if let Some(n) = args
        .max_connections_per_client
        .or(file.max_connections_per_client)
    {
        anyhow::ensure!(n > 0, "max_connections_per_client: must be at least 1");
        config.max_connections_per_client = Some(n);
    }
    if let Some(on) = args.open_on_first_byte.or(file.open_on_first_byte) {
        config.open_on_first_byte = on;
    }
    if let Some(idle) = args.idle_timeout.or(file.idle_timeout) {
        config.pump.idle_timeout = (!idle.is_zero()).then_some(idle);
    }
    config.pump.ping_interval = args
        .keepalive_interval
        .or(file.keepalive_interval)
        .filter(|d| !d.is_zero());
    if let Some(k) = args.tcp_keepalive.or(file.tcp_keepalive) {
        config.tcp_keepalive = (!k.is_zero()).then_some(k);
    }
    let nets = |key: &str, list: &[String]| -> anyhow::Result<Vec<config_syntax::ip::IpNet>> {
        list.iter()
            .map(|n| parse_net(n).map_err(|e| anyhow::anyhow!("{key}: {e}")))
            .collect()
    };
    let allow = if args.allow.is_empty() {
        &file.allow
    } else {
        &args.allow
    };
    let deny = if args.deny.is_empty() {
        &file.deny
    } else {
        &args.deny
    };
    config.access_list.allow = nets("allow", allow)?;
    config.access_list.deny = nets("deny", deny)?;
    config.local_tls = match (args.tls_cert, args.tls_key, file.local_tls) {
        (Some(cert), Some(key), _) => Some(LocalTls { cert, key }),
        (
            None,
            None,
            LocalTlsSection {
                cert: Some(cert),
                key: Some(key),
            },
        ) => Some(LocalTls { cert, key }),
        (
            None,
            None,
            LocalTlsSection {
                cert: None,
                key: None,
            },
        ) => None,
        _ => anyhow::bail!("local_tls: give both cert and key"),
    };
    config.site = args.site.or(file.site);
    if let Some(g) = args.shutdown_grace.or(file.shutdown_grace) {
        config.shutdown_grace = g;
    }
    if let Some(mode) = args.mode.or(file.mode) {
        config.mode = mode;
    }
    if let Some(n) = args.pool_size.or(file.pool_size) {
        anyhow::ensure!((1..=64).contains(&n), "pool_size: must be 1 to 64");
        config.pool_size = n;
    }
    config.azbridge_port_name = args.azbridge_port_name.or(file.azbridge_port_name);
    // Fail before binding: hybrid connection name, relay trust and local TLS must be usable.
    local_proxy::LocalProxy::new(config.clone())?;
    Ok(Loaded {
        config,
        bind,
        backlog,
        metrics,
    })
}

/// Binds the local socket and runs the local-proxy until SIGINT/SIGTERM.
///
/// # Errors
/// The socket cannot be bound, or whatever stopped the proxy.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = local_proxy::bind(loaded.bind, loaded.backlog)
        .with_context(|| format!("cannot listen on {}", loaded.bind))?;
    let local = listener.local_addr().unwrap_or(loaded.bind);
    let proxy = local_proxy::LocalProxy::new(loaded.config)?;
    let status = proxy.status();
    // READY once the accept loop runs; watchdog pings while it beats.
    let supervised = Supervised {
        registry: local_proxy::metrics::registry(&status),
        liveness: Arc::new(status),
        status: format!("local-proxy listening on {local}"),
    };
    let ran = supervised
        .run(
            loaded.metrics,
            shutdown.clone(),
            proxy.run(listener, shutdown),
        )
        .await?;
    ran?;
    Ok(())
}
