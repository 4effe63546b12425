//! The `listen` subcommand: the relay-listener on the dongle host. Also defines [`RelayArgs`],
//! the relay-access options shared with `proxy`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hc_client::access::AccessConfig;
use hc_client::dial::DialTimeouts;
use hc_client::settings::{self, EgressSection, TlsSection, parse_duration};
use hc_protocol::Secret;
use relay_listener::identity::{IdentityMode, Ipv4Net};
use relay_listener::{ListenerConfig, ListenerFile};
use tokio_util::sync::CancellationToken;

use crate::metrics_endpoint::{self, MetricsArgs, MetricsSettings};

/// Environment variable holding the connection string (keeps the key off the command line).
pub const CONNECTION_STRING_ENV: &str = "DONGLE_RELAY_CONNECTION_STRING";
/// Environment variable holding the egress proxy's password.
pub const PROXY_PASSWORD_ENV: &str = "DONGLE_RELAY_PROXY_PASSWORD";

fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// Options for reaching the relay, shared by `listen` and `proxy`.
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Azure-style connection string:
    /// `Endpoint=sb://HOST[:PORT]/;SharedAccessKeyName=NAME;SharedAccessKey=KEY;EntityPath=HC`
    /// (or `SharedAccessSignature=TOKEN` instead of the key). Prefer the environment variable:
    /// command lines are visible to other users.
    #[arg(long, env = CONNECTION_STRING_ENV, hide_env_values = true, value_name = "STRING", value_parser = secret)]
    pub connection_string: Option<Secret>,
    /// Hybrid connection name, when the connection string has no `EntityPath`.
    #[arg(long, value_name = "NAME")]
    pub hybrid_connection: Option<String>,
    /// Also trust the CA certificates in this PEM file for the relay's certificate
    /// (default: the public web PKI roots only).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the relay certificate with this SHA-256 fingerprint (hex, colons optional;
    /// `dongle-relay relay` prints it). Repeatable. Handshake signatures are still verified.
    #[arg(long = "pin-sha256", value_name = "FINGERPRINT")]
    pub pins: Vec<String>,
    /// Reach the relay through this SOCKS5 proxy (`host:port`).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "http_proxy")]
    pub socks5: Option<String>,
    /// Reach the relay through this HTTP proxy's CONNECT (`host:port`).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_proxy: Option<String>,
    /// User name for the SOCKS5/HTTP proxy; the password comes from
    /// `DONGLE_RELAY_PROXY_PASSWORD`.
    #[arg(long, env = "DONGLE_RELAY_PROXY_USER", value_name = "USER")]
    pub proxy_user: Option<String>,
    /// Lifetime of the SAS tokens signed with the key [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: Option<Duration>,
    /// TCP connect timeout towards the relay, proxy included [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// TLS + WebSocket handshake timeout [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
}

/// The relay-access values a configuration file may hold.
pub struct FileAccess<'a> {
    /// `connection_string`.
    pub connection_string: Option<&'a Secret>,
    /// `hybrid_connection`.
    pub hybrid_connection: Option<&'a String>,
    /// `token_ttl`.
    pub token_ttl: Option<Duration>,
    /// `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `handshake_timeout`.
    pub handshake_timeout: Option<Duration>,
    /// `[tls]`.
    pub tls: &'a TlsSection,
    /// `[egress]`.
    pub egress: &'a EgressSection,
}

impl RelayArgs {
    /// Merges the command line over the file into relay access settings.
    ///
    /// # Errors
    /// Any invalid or missing setting, named.
    pub fn access(&self, file: FileAccess<'_>) -> anyhow::Result<AccessConfig> {
        let connection =
            settings::connection_string(self.connection_string.as_ref(), file.connection_string)?;
        let mut access = AccessConfig::new(connection);
        access.entity_path = self
            .hybrid_connection
            .clone()
            .or(file.hybrid_connection.cloned());
        access.trust = file.tls.to_trust(self.ca_file.clone(), &self.pins)?;
        let password = std::env::var(PROXY_PASSWORD_ENV).ok().map(Secret::new);
        access.egress = file.egress.to_egress(
            self.socks5.clone(),
            self.http_proxy.clone(),
            self.proxy_user.clone(),
            password,
        )?;
        let defaults = DialTimeouts::default();
        access.timeouts = DialTimeouts {
            connect: self
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(defaults.connect),
            handshake: self
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(defaults.handshake),
        };
        if let Some(ttl) = self.token_ttl.or(file.token_ttl) {
            access.token_ttl = ttl;
        }
        Ok(access)
    }
}

/// Reads and parses a TOML configuration file.
///
/// # Errors
/// The file cannot be read or has an invalid or unknown key (named in the message).
pub fn read_file<T>(
    path: Option<&PathBuf>,
    parse: fn(&str) -> Result<T, toml::de::Error>,
) -> anyhow::Result<Option<T>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let parsed =
        parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    Ok(Some(parsed))
}

fn identity_mode(text: &str) -> Result<IdentityMode, String> {
    text.parse().map_err(|e| format!("{e}"))
}

fn ipv4_range(text: &str) -> Result<Ipv4Net, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 CIDR range such as 127.64.0.0/10"))
}

/// `Some(d)` unless `d` is zero (a zero duration turns the feature off).
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Options of `dongle-relay listen`.
#[derive(clap::Args, Debug)]
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
    /// Close tunnelled connections idle this long [default: never].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Most tunnelled connections at once; more are rejected with 429 [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_streams: Option<u64>,
    /// How long open connections may finish after SIGTERM [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// How the target learns the real client: `none`; `proxy-v2` (a PROXY protocol v2 header
    /// with the client's address and site, for our license server); `loopback` (one loopback
    /// source address per client, for servers that count seats per IP; Linux only). Without
    /// proxy-v2 or loopback every client reaches the target from this host's one address
    /// [default: none].
    #[arg(long, value_name = "MODE", value_parser = identity_mode)]
    pub identity: Option<IdentityMode>,
    /// Site name for senders that send none (`X-Dongle-Relay-Site`) [default: none].
    #[arg(long, value_name = "NAME")]
    pub default_site: Option<String>,
    /// Source addresses of `--identity loopback` [default: 127.64.0.0/10].
    #[arg(long, value_name = "CIDR", value_parser = ipv4_range)]
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
    let access = args.relay.access(FileAccess {
        connection_string: file.connection_string.as_ref(),
        hybrid_connection: file.hybrid_connection.as_ref(),
        token_ttl: file.token_ttl,
        connect_timeout: file.connect_timeout,
        handshake_timeout: file.handshake_timeout,
        tls: &file.tls,
        egress: &file.egress,
    })?;
    let mut config = ListenerConfig::new(access.connection.clone());
    config.access = access;
    if let Some(target) = args.target.or(file.target) {
        config.target = target;
    }
    if let Some(t) = args.target_timeout.or(file.target_timeout) {
        config.target_timeout = t;
    }
    if let Some(k) = args.keepalive_interval.or(file.keepalive_interval) {
        config.control_ping = nonzero(k);
    }
    config.pump.idle_timeout = args.idle_timeout.or(file.idle_timeout).and_then(nonzero);
    if let Some(n) = args.max_streams.or(file.max_streams) {
        config.max_streams = n;
    }
    if let Some(g) = args.shutdown_grace.or(file.shutdown_grace) {
        config.shutdown_grace = g;
    }
    if let Some(mode) = args.identity.or(file.identity) {
        config.identity.mode = mode;
    }
    config.identity.default_site = args.default_site.or(file.default_site);
    if let Some(range) = args.loopback_range.or(file.loopback_range) {
        config.identity.loopback_range = range;
    }
    config.mux = !args.no_mux && file.mux.unwrap_or(true);
    config.azbridge_port_names = if args.azbridge_port_names.is_empty() {
        file.azbridge_port_names.unwrap_or_default()
    } else {
        args.azbridge_port_names
    };
    for name in &config.azbridge_port_names {
        hc_client::azbridge::preamble(name)
            .map_err(|e| anyhow::anyhow!("azbridge_port_names: {e}"))?;
    }
    // Fail before running: the hybrid connection name and TLS trust must be usable.
    relay_listener::RelayListener::new(config.clone())?;
    Ok(Loaded { config, metrics })
}

/// How long stopping waits for the service notifications and the metrics endpoint.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Runs the relay-listener until SIGINT/SIGTERM.
///
/// # Errors
/// Whatever stopped it.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let target = loaded.config.target.clone();
    let listener = relay_listener::RelayListener::new(loaded.config)?;
    let status = listener.status();
    let metrics = match loaded.metrics {
        Some(settings) => {
            let token = settings.token.is_some();
            let router = metrics_endpoint::router(
                relay_listener::metrics::registry(&status),
                Arc::new(status.clone()),
            );
            let running = metrics_endpoint::start(settings, router).await?;
            println!("{}", metrics_endpoint::banner(running.addr, token));
            Some(running)
        }
        None => None,
    };
    // READY once the main loop runs (not once the relay answers: reaching it is the loop's
    // job); watchdog pings while the loop beats.
    let supervision = crate::service::Service::from_env().supervise(
        Arc::new(status),
        format!("relay-listener bridging to {target}"),
        shutdown.clone(),
    );
    let ran = listener.run(shutdown.clone()).await;
    shutdown.cancel();
    supervision.finish(STOP_LIMIT).await;
    if let Some(metrics) = metrics {
        metrics.finish(STOP_LIMIT).await;
    }
    ran?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use relay_listener::IdentityMode;

    const CS: &str =
        "Endpoint=sb://relay.test/;SharedAccessKeyName=listen;SharedAccessKey=k;EntityPath=license";

    fn parse(args: &[&str]) -> anyhow::Result<Loaded> {
        let base = ["dongle-relay", "listen", "--connection-string", CS];
        let cli = crate::cli::Cli::try_parse_from(base.iter().chain(args.iter()))?;
        match cli.command {
            crate::cli::Command::Listen(a) => load(a),
            _ => anyhow::bail!("not listen"),
        }
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
