//! The `proxy` subcommand: the local-proxy at a client site. Its options are defined once, in
//! `local_proxy::ProxyOptions` and `hc_client::options::RelayOptions`; [`load`] layers the
//! command line over the file and validates the result.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use config_syntax::layered;
use local_proxy::{ProxyConfig, ProxyFile, ProxyOptions, ProxySetup};
use tokio_util::sync::CancellationToken;

use super::access::{RelayArgs, read_file};
use super::supervised::Supervised;
use crate::metrics_endpoint::{MetricsArgs, MetricsSettings};

/// Options of `dongle-relay proxy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TOML configuration file (see deploy/proxy.example.toml); flags and environment
    /// variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Relay access.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// The local-proxy's own options.
    #[command(flatten)]
    pub options: ProxyOptions,
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
    let access = layered(args.relay, file.relay).access()?;
    let ProxySetup {
        config,
        bind,
        backlog,
    } = layered(args.options, file.options).into_config(access)?;
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
