//! The relay-listener's configuration: the library's [`ListenerConfig`], and its options
//! ([`ListenerOptions`]: the command line of `dongle-relay listen` and the keys of its TOML file,
//! [`ListenerFile`], unknown keys refused), turned into the configuration by
//! [`ListenerOptions::into_config`].

use std::time::Duration;

use config_syntax::{Merge, parse_duration};
use hc_client::access::AccessConfig;
use hc_client::options::ComponentFile;
use hc_client::pump::PumpConfig;
use hc_client::settings::SettingError;
use hc_protocol::connection_string::ConnectionString;
use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer};

use crate::identity::{IdentityConfig, IdentityMode};

/// The license server's default address on the dongle host.
pub const DEFAULT_TARGET: &str = "127.0.0.1:12300";

/// Most streams a default listener carries, whatever the descriptors would allow.
pub const MAX_DEFAULT_STREAMS: usize = 16 * 1024;

/// Default `max_streams`: what the open-file limit holds at two descriptors per stream (the
/// target connection and, for 1:1 senders, the rendezvous WebSocket), at most
/// [`MAX_DEFAULT_STREAMS`].
pub fn default_max_streams() -> u64 {
    u64::try_from(hc_client::capacity::tunnels_for_files(
        2,
        MAX_DEFAULT_STREAMS,
    ))
    .unwrap_or(1024)
}

/// Everything a relay-listener needs.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Relay, hybrid connection, credentials, TLS trust, egress, dial timeouts, token TTL.
    pub access: AccessConfig,
    /// The TCP target (`host:port`), default [`DEFAULT_TARGET`].
    pub target: String,
    /// How long connecting to the target may take before the sender is rejected with 502.
    pub target_timeout: Duration,
    /// TCP keepalive on target connections.
    pub target_keepalive: Option<Duration>,
    /// Ping interval on the control channel (None: no pings). Default 30 s.
    pub control_ping: Option<Duration>,
    /// Per-stream pump settings (idle timeout, pings, frame size).
    pub pump: PumpConfig,
    /// Most live streams at once (1:1 rendezvous and multiplexed streams); more are rejected
    /// with 429 (1:1) or reset (multiplexed). A stream stops counting once its target closed.
    pub max_streams: u64,
    /// Most live streams of one client (site and address); default `max_streams`. Under
    /// contention a client gets no more than its fair share anyway (`hc_client::slots`).
    pub max_streams_per_client: Option<u64>,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// How long streams may drain after shutdown before they are closed.
    pub shutdown_grace: Duration,
    /// How the target learns the real client (default: it does not).
    pub identity: IdentityConfig,
    /// Accept pooled connections (`dongle-relay.mux.v1`, many streams each). Default true;
    /// false makes the listener answer them like a plain Hybrid Connections peer, and proxies
    /// fall back to one relay connection per TCP connection.
    pub mux: bool,
    /// When not empty, every 1:1 rendezvous must start with Azure Relay Bridge's preamble
    /// naming one of these ports (`azbridge -L` senders; see `hc_client::azbridge`).
    pub azbridge_port_names: Vec<String>,
    /// Where HTTP-mode requests (`https://relay/{hc}/…`) go: a plain-HTTP `host:port` on this
    /// host, the admin endpoint (see [`crate::http_mode`]). None (the default): they are
    /// answered 404.
    pub http_target: Option<String>,
}

impl ListenerConfig {
    /// Defaults for everything but the connection string.
    pub fn new(connection: ConnectionString) -> Self {
        Self {
            access: AccessConfig::new(connection),
            target: DEFAULT_TARGET.to_owned(),
            target_timeout: Duration::from_secs(5),
            target_keepalive: Some(Duration::from_secs(60)),
            control_ping: Some(Duration::from_secs(30)),
            pump: PumpConfig::default(),
            max_streams: default_max_streams(),
            max_streams_per_client: None,
            reconnect_max: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            identity: IdentityConfig::default(),
            mux: true,
            azbridge_port_names: Vec::new(),
            http_target: None,
        }
    }
}

/// The options of `dongle-relay listen` besides relay access ([`RelayOptions`](hc_client::options::RelayOptions)): its
/// command line (kebab-case flags) and its file's keys (snake_case), one definition. Every
/// field is optional; [`ListenerOptions::into_config`] supplies the defaults.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, Merge, PartialEq, Eq)]
#[merge(strategy = merge::option::overwrite_none)]
pub struct ListenerOptions {
    /// The TCP target each tunnelled connection is bridged to: the license server
    /// [default: 127.0.0.1:12300].
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// How long connecting to the target may take before the sender is rejected with 502
    /// [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub target_timeout: Option<Duration>,
    /// Ping interval on the control channel; `0` turns pings off [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub keepalive_interval: Option<Duration>,
    /// Close tunnelled connections idle this long; `0` turns it off [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
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
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub shutdown_grace: Option<Duration>,
    /// How the target learns the real client: `none`; `proxy-v2` (a PROXY protocol v2 header
    /// with the client's address and site, for our license server); `loopback` (one loopback
    /// source address per client, for servers that count seats per IP; Linux and Windows).
    /// Without proxy-v2 or loopback every client reaches the target from this host's one
    /// address [default: none].
    #[arg(long, value_name = "MODE", value_parser = |s: &str| s.parse::<IdentityMode>())]
    pub identity: Option<IdentityMode>,
    /// Site name for senders that send none (`X-Dongle-Relay-Site`) [default: none].
    #[arg(long, value_name = "NAME")]
    pub default_site: Option<String>,
    /// Source addresses of `--identity loopback` [default: 127.64.0.0/10].
    #[arg(long, value_name = "CIDR", value_parser = config_syntax::ip::parse_ipv4_net)]
    #[serde(default, deserialize_with = "de_opt_ipv4net")]
    pub loopback_range: Option<Ipv4Net>,
    /// Refuse multiplexed pooled connections (`dongle-relay.mux.v1`): proxies then open one
    /// relay connection per TCP connection [default: multiplexing on]. In the file: `mux =
    /// false`.
    #[arg(long = "no-mux", num_args = 0, default_missing_value = "false")]
    pub mux: Option<bool>,
    /// Serve Azure Relay Bridge senders (`azbridge -L`): every 1:1 connection must start with
    /// azbridge's preamble naming one of these ports. Repeatable; with exactly one name, any
    /// numeric port name is accepted too (as azbridge does).
    #[arg(long = "azbridge-port-name", value_name = "NAME")]
    pub azbridge_port_names: Option<Vec<String>>,
    /// Forward HTTP-mode requests (`https://RELAY/HC/PATH` with a Send token) to this plain
    /// HTTP address on this host, without `/HC`: the license server's admin endpoint (status
    /// page, /api/status, /metrics), whose bearer token is still required [default: none, such
    /// requests are answered 404].
    #[arg(long, value_name = "HOST:PORT")]
    pub http_target: Option<String>,
}

/// The `listen` configuration file: relay-access keys and [`ListenerOptions`] in one table.
/// Every key is optional; command-line flags win.
pub type ListenerFile = ComponentFile<ListenerOptions>;

impl ListenerOptions {
    /// The relay-listener's configuration: these (merged) options over the defaults, with
    /// `access` (from [`RelayOptions::access`](hc_client::options::RelayOptions::access)).
    ///
    /// # Errors
    /// [`SettingError`] naming the key.
    pub fn into_config(self, access: AccessConfig) -> Result<ListenerConfig, SettingError> {
        let mut config = ListenerConfig::new(access.connection.clone());
        config.access = access;
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        if let Some(target) = self.target {
            config.target = target;
        }
        if let Some(t) = self.target_timeout {
            config.target_timeout = t;
        }
        if let Some(k) = self.keepalive_interval {
            config.control_ping = nonzero(k);
        }
        if let Some(idle) = self.idle_timeout {
            config.pump.idle_timeout = nonzero(idle);
        }
        if let Some(n) = self.max_streams {
            config.max_streams = n;
        }
        config.max_streams_per_client = self.max_streams_per_client;
        if let Some(g) = self.shutdown_grace {
            config.shutdown_grace = g;
        }
        if let Some(mode) = self.identity {
            config.identity.mode = mode;
        }
        config.identity.default_site = self.default_site;
        if let Some(range) = self.loopback_range {
            config.identity.loopback_range = range;
        }
        config.mux = self.mux.unwrap_or(true);
        config.azbridge_port_names = self.azbridge_port_names.unwrap_or_default();
        for name in &config.azbridge_port_names {
            hc_client::azbridge::preamble(name)
                .map_err(|e| SettingError::new("azbridge_port_names", e.to_string()))?;
        }
        config.http_target = self.http_target;
        Ok(config)
    }
}

/// Reads `"127.64.0.0/10"`.
fn de_opt_ipv4net<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Net>, D::Error> {
    let text = String::deserialize(d)?;
    config_syntax::ip::parse_ipv4_net(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_unknown_keys_are_named() {
        let example = include_str!("../../deploy/listener.example.toml");
        let file = ListenerFile::parse(example).expect("example parses");
        assert_eq!(file.target.as_deref(), Some(DEFAULT_TARGET));
        let err = ListenerFile::parse("targte = \"x:1\"").expect_err("typo");
        assert!(err.to_string().contains("targte"), "{err}");
        let err = ListenerFile::parse("[tls]\npins = []").expect_err("typo in section");
        assert!(err.to_string().contains("pins"), "{err}");
        let err = ListenerFile::parse("idle_timeout = \"soon\"").expect_err("bad duration");
        assert!(err.to_string().contains("idle_timeout"), "{err}");
        assert!(!format!("{file:?}").contains("SharedAccessKey="));
        assert_eq!(file.identity, Some(IdentityMode::None));
    }

    #[test]
    fn identity_keys_parse_and_bad_values_are_named() {
        let file = ListenerFile::parse(
            "identity = \"proxy-v2\"\ndefault_site = \"hq\"\nloopback_range = \"127.80.0.0/16\"",
        )
        .expect("parses");
        assert_eq!(file.identity, Some(IdentityMode::ProxyV2));
        assert_eq!(file.default_site.as_deref(), Some("hq"));
        assert_eq!(
            file.loopback_range.map(|n| n.to_string()).as_deref(),
            Some("127.80.0.0/16")
        );
        let err = ListenerFile::parse("identity = \"proxy-v1\"").expect_err("bad mode");
        assert!(err.to_string().contains("identity"), "{err}");
        let err = ListenerFile::parse("loopback_range = \"127.0.0.1\"").expect_err("bad range");
        assert!(err.to_string().contains("loopback_range"), "{err}");
    }
}
