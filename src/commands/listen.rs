//! The `listen` subcommand: the relay-listener on the dongle host. [`listener_config`] merges
//! its flags over its file; `server` uses it for the relay-listener it runs in process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use config_syntax::parse_duration;
use relay_listener::identity::{IdentityMode, Ipv4Net};
use relay_listener::{ListenerConfig, ListenerFile};
use tokio_util::sync::CancellationToken;

use super::access::{RelayArgs, read_file};
use super::supervised::Supervised;
use crate::metrics_endpoint::{MetricsArgs, MetricsSettings};

fn identity_mode(text: &str) -> Result<IdentityMode, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// `Some(d)` unless `d` is zero (a zero duration turns the feature off).
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Options of `dongle-relay listen`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// TOML configuration file (see deploy/listener.example.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Relay access.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// The TCP target each tunnelled connection is bridged to: the license server
    /// [default: 127.0.0.1:12300].
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// How long connecting to the target may take before the sender is rejected with 502
    /// [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub target_timeout: Option<Duration>,
    /// Ping interval on the control channel; `0` turns pings off [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_interval: Option<Duration>,
    /// Close tunnelled connections idle this long; `0` turns it off [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Most live tunnelled connections at once; more are rejected with 429 [default: what the
    /// open-file limit holds at two descriptors a stream, at most 16384].
    #[arg(long, value_name = "N")]
    pub max_streams: Option<u64>,
    /// Most live tunnelled connections of one client (site and address) [default:
    /// --max-streams]; under contention a client gets no more than its fair share anyway.
    #[arg(long, value_name = "N")]
    pub max_streams_per_client: Option<u64>,
    /// How long open connections may finish after SIGTERM [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// How the target learns the real client: `none`; `proxy-v2` (a PROXY protocol v2 header
    /// with the client's address and site, for our license server); `loopback` (one loopback
    /// source address per client, for servers that count seats per IP; Linux and Windows). Without
    /// proxy-v2 or loopback every client reaches the target from this host's one address
    /// [default: none].
    #[arg(long, value_name = "MODE", value_parser = identity_mode)]
    pub identity: Option<IdentityMode>,
    /// Site name for senders that send none (`X-Dongle-Relay-Site`) [default: none].
    #[arg(long, value_name = "NAME")]
    pub default_site: Option<String>,
    /// Source addresses of `--identity loopback` [default: 127.64.0.0/10].
    #[arg(long, value_name = "CIDR", value_parser = config_syntax::ip::parse_ipv4_net)]
    pub loopback_range: Option<Ipv4Net>,
    /// Refuse multiplexed pooled connections (`dongle-relay.mux.v1`): proxies then open one
    /// relay connection per TCP connection [default: multiplexing on].
    #[arg(long)]
    pub no_mux: bool,
    /// Serve Azure Relay Bridge senders (`azbridge -L`): every 1:1 connection must start with
    /// azbridge's preamble naming one of these ports. Repeatable; with exactly one name, any
    /// numeric port name is accepted too (as azbridge does).
    #[arg(long = "azbridge-port-name", value_name = "NAME")]
    pub azbridge_port_names: Vec<String>,
    /// Forward HTTP-mode requests (`https://RELAY/HC/PATH` with a Send token) to this plain
    /// HTTP address on this host, without `/HC`: the license server's admin endpoint (status
    /// page, /api/status, /metrics), whose bearer token is still required [default: none, such
    /// requests are answered 404].
    #[arg(long, value_name = "HOST:PORT")]
    pub http_target: Option<String>,
    /// Prometheus metrics and health check.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// The validated configuration of `listen`.
pub struct Loaded {
    config: ListenerConfig,
    metrics: Option<MetricsSettings>,
}

/// Reads and validates the configuration.
///
/// # Errors
/// Configuration errors, naming the file and key.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let metrics = args.metrics.settings()?;
    let file = read_file(args.config.as_ref(), ListenerFile::parse)?.unwrap_or_default();
    let config = listener_config(&args, file)?;
    Ok(Loaded { config, metrics })
}

/// The relay-listener's configuration: `file` with the options of `args` over it (`config`
/// and `metrics` are not read here), checked as far as it can be without a network.
///
/// # Errors
/// Configuration errors, naming the key.
pub fn listener_config(args: &Args, file: ListenerFile) -> anyhow::Result<ListenerConfig> {
    let access = args.relay.access(file.access_keys())?;
    let mut config = ListenerConfig::new(access.connection.clone());
    config.access = access;
    if let Some(target) = args.target.clone().or(file.target) {
        config.target = target;
    }
    if let Some(t) = args.target_timeout.or(file.target_timeout) {
        config.target_timeout = t;
    }
    if let Some(k) = args.keepalive_interval.or(file.keepalive_interval) {
        config.control_ping = nonzero(k);
    }
    if let Some(idle) = args.idle_timeout.or(file.idle_timeout) {
        config.pump.idle_timeout = nonzero(idle);
    }
    if let Some(n) = args.max_streams.or(file.max_streams) {
        config.max_streams = n;
    }
    if let Some(n) = args.max_streams_per_client.or(file.max_streams_per_client) {
        config.max_streams_per_client = Some(n);
    }
    if let Some(g) = args.shutdown_grace.or(file.shutdown_grace) {
        config.shutdown_grace = g;
    }
    if let Some(mode) = args.identity.or(file.identity) {
        config.identity.mode = mode;
    }
    config.identity.default_site = args.default_site.clone().or(file.default_site);
    if let Some(range) = args.loopback_range.or(file.loopback_range) {
        config.identity.loopback_range = range;
    }
    config.mux = !args.no_mux && file.mux.unwrap_or(true);
    config.azbridge_port_names = if args.azbridge_port_names.is_empty() {
        file.azbridge_port_names.unwrap_or_default()
    } else {
        args.azbridge_port_names.clone()
    };
    config.http_target = args.http_target.clone().or(file.http_target);
    for name in &config.azbridge_port_names {
        hc_client::azbridge::preamble(name)
            .map_err(|e| anyhow::anyhow!("azbridge_port_names: {e}"))?;
    }
    // Fail before running: the hybrid connection name and TLS trust must be usable.
    relay_listener::RelayListener::new(config.clone())?;
    Ok(config)
}

/// Runs the relay-listener until SIGINT/SIGTERM.
///
/// # Errors
/// Whatever stopped it.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let target = loaded.config.target.clone();
    let listener = relay_listener::RelayListener::new(loaded.config)?;
    let status = listener.status();
    // READY once the main loop runs (not once the relay answers: reaching it is the loop's
    // job); watchdog pings while the loop beats.
    let supervised = Supervised {
        registry: relay_listener::metrics::registry(&status),
        liveness: Arc::new(status),
        status: format!("relay-listener bridging to {target}"),
    };
    let ran = supervised
        .run(loaded.metrics, shutdown.clone(), listener.run(shutdown))
        .await?;
    ran?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_listener::IdentityMode;

    const CS: &str =
        "Endpoint=sb://relay.test/;SharedAccessKeyName=listen;SharedAccessKey=k;EntityPath=license";

    fn parse(args: &[&str]) -> anyhow::Result<Loaded> {
        let argv = [&["--connection-string", CS], args].concat();
        load(crate::commands::parse_args(&argv)?)
    }

    #[test]
    fn identity_options_from_file_and_flags() {
        let l = parse(&[]).expect("defaults");
        assert_eq!(l.config.identity, relay_listener::IdentityConfig::default());

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("listener.toml");
        std::fs::write(
            &file,
            "identity = \"loopback\"\ndefault_site = \"hq\"\nloopback_range = \"127.80.0.0/16\"\n",
        )
        .expect("write");
        let path = file.to_str().expect("utf-8");
        let l = parse(&["--config", path]).expect("file");
        assert_eq!(l.config.identity.mode, IdentityMode::Loopback);
        assert_eq!(l.config.identity.default_site.as_deref(), Some("hq"));
        assert_eq!(
            l.config.identity.loopback_range.to_string(),
            "127.80.0.0/16"
        );

        let l = parse(&[
            "--config",
            path,
            "--identity",
            "proxy-v2",
            "--default-site",
            "dongle-host",
        ])
        .expect("flags win");
        assert_eq!(l.config.identity.mode, IdentityMode::ProxyV2);
        assert_eq!(
            l.config.identity.default_site.as_deref(),
            Some("dongle-host")
        );

        let err = parse(&["--identity", "proxy-v3"])
            .err()
            .expect("bad mode")
            .to_string();
        assert!(err.contains("proxy-v3"), "{err}");
        assert_eq!(parse(&[]).expect("defaults").config.http_target, None);
        let l = parse(&[
            "--relay",
            "sb://relay-b.test/",
            "--relay",
            "wss://c.test:8443",
        ])
        .expect("relays");
        assert_eq!(l.config.access.replicas().len(), 3);
        let err = parse(&["--relay", "ftp://x"]).err().expect("bad relay");
        assert!(format!("{err:#}").contains("relays"), "{err:#}");
        let l = parse(&["--http-target", "127.0.0.1:12380"]).expect("http target");
        assert_eq!(l.config.http_target.as_deref(), Some("127.0.0.1:12380"));
        let l = parse(&["--no-mux", "--azbridge-port-name", "license"]).expect("mux flags");
        assert!(!l.config.mux);
        assert_eq!(l.config.azbridge_port_names, ["license"]);
        assert!(parse(&[]).expect("defaults").config.mux);
        let err = parse(&["--loopback-range", "10.0.0.0/8"])
            .err()
            .expect("bad range")
            .to_string();
        assert!(err.contains("127.0.0.0/8"), "{err}");
    }
}
