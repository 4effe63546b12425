//! The `listen` subcommand: the relay-listener on the dongle host. Its options are defined once,
//! in `relay_listener::ListenerOptions` and `hc_client::options::RelayOptions`;
//! [`listener_config`] layers the command line over the file and validates the result;
//! `server` uses it for the relay-listener it runs in process.

use std::path::PathBuf;
use std::sync::Arc;

use config_syntax::layered;
use relay_listener::{ListenerConfig, ListenerFile, ListenerOptions};
use tokio_util::sync::CancellationToken;

use super::access::{RelayArgs, read_file};
use super::supervised::Supervised;
use crate::metrics_endpoint::{MetricsArgs, MetricsSettings};

/// Options of `dongle-relay listen`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// TOML configuration file (see deploy/listener.example.toml); flags and environment
    /// variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Relay access.
    #[command(flatten)]
    pub relay: RelayArgs,
    /// The relay-listener's own options.
    #[command(flatten)]
    pub options: ListenerOptions,
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

/// The relay-listener's configuration: the options of `args` over `file` (`config` and
/// `metrics` are not read here), checked as far as it can be without a network.
///
/// # Errors
/// Configuration errors, naming the key.
pub fn listener_config(args: &Args, file: ListenerFile) -> anyhow::Result<ListenerConfig> {
    let access = layered(args.relay.clone(), file.relay).access()?;
    let config = layered(args.options.clone(), file.options).into_config(access)?;
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
