//! The local-proxy's configuration: the library's [`ProxyConfig`], and its options
//! ([`ProxyOptions`]: the command line of `dongle-relay proxy` and the keys of its TOML file,
//! [`ProxyFile`], unknown keys refused), turned into the configuration by
//! [`ProxyOptions::into_config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use config_syntax::{Merge, parse_duration};
use hc_client::access::AccessConfig;
use hc_client::identity::SITE_HEADER;
use hc_client::options::ComponentFile;
use hc_client::pump::PumpConfig;
use hc_client::settings::SettingError;
use hc_protocol::connection_string::ConnectionString;
use serde::Deserialize;

use crate::local_tls::LocalTls;
use config_syntax::AccessList;

/// Where legacy license clients expect the license server.
pub const DEFAULT_BIND: &str = "127.0.0.1:12300";
/// Most tunnels a default proxy carries, whatever the descriptors would allow: a socket that
/// has sent nothing costs about 3 KiB and a live multiplexed tunnel about 20 KiB across proxy,
/// listener and target (measured, `docs/reliability.md`), so this stays far below the memory
/// of any machine that runs it.
pub const MAX_DEFAULT_CONNECTIONS: usize = 16 * 1024;

/// Default listen backlog: what the kernel grants (`somaxconn`).
pub fn default_backlog() -> u32 {
    hc_client::capacity::somaxconn()
}

/// Default `max_connections`: what the open-file limit holds at two descriptors per tunnel
/// (the client's socket and, in 1:1 mode, its relay connection), at most
/// [`MAX_DEFAULT_CONNECTIONS`].
pub fn default_max_connections() -> usize {
    hc_client::capacity::tunnels_for_files(2, MAX_DEFAULT_CONNECTIONS)
}

/// How local connections travel to the listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelMode {
    /// Multiplexed over a small pool of long-lived relay connections when the listener speaks
    /// `dongle-relay.mux.v1`; otherwise (a foreign listener) one relay connection per TCP
    /// connection, re-probing now and then.
    #[default]
    Auto,
    /// Multiplexed only: clients wait for a pooled connection (never 1:1).
    Mux,
    /// One relay connection per TCP connection (what IPWorks' AzureRelayProxy and every plain
    /// Hybrid Connections peer expect).
    Single,
    /// One relay connection per TCP connection, each starting with Azure Relay Bridge's
    /// preamble, for an `azbridge -T` listener.
    Azbridge,
}

impl TunnelMode {
    /// The names accepted on the command line and in the file.
    pub const NAMES: [&'static str; 4] = ["auto", "mux", "single", "azbridge"];
}

impl std::fmt::Display for TunnelMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Mux => "mux",
            Self::Single => "single",
            Self::Azbridge => "azbridge",
        })
    }
}

impl std::str::FromStr for TunnelMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "mux" => Ok(Self::Mux),
            "single" | "1:1" => Ok(Self::Single),
            "azbridge" => Ok(Self::Azbridge),
            other => Err(format!(
                "unknown mode {other:?} (expected auto, mux, single or azbridge)"
            )),
        }
    }
}

/// Default number of pooled relay connections in `auto`/`mux` mode.
pub const DEFAULT_POOL_SIZE: usize = 2;

/// Everything a local-proxy needs (the listening socket is handed to `run`).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Relay, hybrid connection, credentials, TLS trust, egress, dial timeouts, token TTL.
    pub access: AccessConfig,
    /// Most live tunnels at once; further clients are closed at once. Default
    /// [`default_max_connections`]. A tunnel stops counting as soon as its client closed.
    pub max_connections: usize,
    /// Most live tunnels of one client address (default: `max_connections`). Whatever this
    /// says, when more than half the tunnels are in use an address gets no more than its fair
    /// share (see `hc_client::slots`).
    pub max_connections_per_client: Option<usize>,
    /// Open the relay side of a tunnel only once the client has sent something (the license
    /// protocol is client-speaks-first), so sockets that never send cost nothing beyond the
    /// proxy. Default true; turn off for server-speaks-first protocols.
    pub open_on_first_byte: bool,
    /// TCP keepalive on local connections (default 60 s).
    pub tcp_keepalive: Option<Duration>,
    /// Which clients may connect.
    pub access_list: AccessList,
    /// TLS for local clients.
    pub local_tls: Option<LocalTls>,
    /// Local TLS handshake limit.
    pub local_tls_timeout: Duration,
    /// Site name sent to the listener (`X-Dongle-Relay-Site`).
    pub site: Option<String>,
    /// Per-tunnel pump settings (idle timeout, pings, frame size).
    pub pump: PumpConfig,
    /// How long tunnels may drain after shutdown before they are closed.
    pub shutdown_grace: Duration,
    /// Multiplexed, 1:1 or azbridge (default: auto).
    pub mode: TunnelMode,
    /// Pooled relay connections in `auto`/`mux` mode (default 2).
    pub pool_size: usize,
    /// WebSocket ping interval on pooled connections (keep-alive, dead-peer detection).
    pub pool_ping: Duration,
    /// How long a pooled connection that failed over to another relay replica serves there
    /// before it returns to its own (see [`crate::pool`]); default 10 s.
    pub pool_rehome: Duration,
    /// Port name sent in `azbridge` mode (default: the local port number, as `azbridge -L`).
    pub azbridge_port_name: Option<String>,
    /// 1:1 tunnels kept open before any client comes ([`crate::preopen`]); 0 (the default)
    /// turns pre-opening off.
    pub preopen: usize,
    /// How long a pre-opened tunnel waits for a client before it is replaced (default 60 s).
    pub preopen_max_age: Duration,
    /// Pre-open towards a listener that is not ours too (each parked tunnel then holds a
    /// connection to its target, and the listener does not learn the client); default false.
    pub preopen_foreign: bool,
}

/// Most pre-opened tunnels a proxy keeps.
pub const MAX_PREOPEN: usize = 32;
/// The longest and shortest `preopen_max_age`.
pub const PREOPEN_AGES: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(300);

impl ProxyConfig {
    /// The `X-Dongle-Relay-Site` header every sender WebSocket carries, if a site is set.
    pub fn site_headers(&self) -> Vec<(String, String)> {
        self.site
            .iter()
            .map(|site| (SITE_HEADER.to_owned(), site.clone()))
            .collect()
    }

    /// Defaults for everything but the connection string.
    pub fn new(connection: ConnectionString) -> Self {
        Self {
            access: AccessConfig::new(connection),
            max_connections: default_max_connections(),
            max_connections_per_client: None,
            open_on_first_byte: true,
            tcp_keepalive: Some(Duration::from_secs(60)),
            access_list: AccessList::default(),
            local_tls: None,
            local_tls_timeout: Duration::from_secs(10),
            site: None,
            pump: PumpConfig::default(),
            shutdown_grace: Duration::from_secs(10),
            mode: TunnelMode::Auto,
            pool_size: DEFAULT_POOL_SIZE,
            pool_ping: Duration::from_secs(30),
            pool_rehome: crate::pool::REHOME_AFTER,
            azbridge_port_name: None,
            preopen: 0,
            preopen_max_age: Duration::from_secs(60),
            preopen_foreign: false,
        }
    }
}

/// `[local_tls]`: TLS for local clients; on the command line `--tls-cert` and `--tls-key`.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, Merge, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[merge(strategy = merge::option::overwrite_none)]
pub struct LocalTlsSection {
    /// Serve local clients over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(
        long = "tls-cert",
        id = "tls_cert",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long = "tls-key",
        id = "tls_key",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,
}

/// The options of `dongle-relay proxy` besides relay access
/// ([`RelayOptions`](hc_client::options::RelayOptions)): its command line (kebab-case flags) and
/// its file's keys (snake_case), one definition. Every field is optional;
/// [`ProxyOptions::into_config`] supplies the defaults.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, Merge, PartialEq, Eq)]
#[merge(strategy = merge::option::overwrite_none)]
pub struct ProxyOptions {
    /// Local address license clients connect to [default: 127.0.0.1:12300].
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
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
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub idle_timeout: Option<Duration>,
    /// TCP keepalive on local connections; `0` turns it off [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub tcp_keepalive: Option<Duration>,
    /// WebSocket ping interval per tunnel [default: none].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub keepalive_interval: Option<Duration>,
    /// Allow only these clients (IP or CIDR); repeatable [default: everyone].
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    #[merge(strategy = merge::vec::overwrite_empty)]
    pub allow: Vec<String>,
    /// Refuse these clients (IP or CIDR); repeatable; deny wins over allow.
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    #[merge(strategy = merge::vec::overwrite_empty)]
    pub deny: Vec<String>,
    /// TLS for local clients (`[local_tls]`, `--tls-cert`/`--tls-key`).
    #[command(flatten)]
    #[serde(default)]
    #[merge(strategy = Merge::merge)]
    pub local_tls: LocalTlsSection,
    /// Site name sent to the listener with each connection (`X-Dongle-Relay-Site`).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// How long open tunnels may finish after SIGTERM [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
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
    /// 1:1 tunnels to keep open before clients come, so a call on the 1:1 path skips the
    /// relay handshakes (modes single and auto; our listener holds no target connection for
    /// them); at most 32 [default: 0, off].
    #[arg(long, value_name = "N")]
    pub preopen: Option<usize>,
    /// How long a pre-opened tunnel waits for a client before it is replaced, 1s to 5m
    /// [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub preopen_max_age: Option<Duration>,
    /// Pre-open towards a listener that is not dongle-relay's too: each parked tunnel then
    /// holds a connection to its license server, and the listener sees the proxy instead of
    /// the client [default: false].
    #[arg(long, value_name = "BOOL")]
    pub preopen_foreign: Option<bool>,
}

/// The `proxy` configuration file: relay-access keys and [`ProxyOptions`] in one table. Every
/// key is optional; command-line flags win.
pub type ProxyFile = ComponentFile<ProxyOptions>;

/// What `dongle-relay proxy` runs: the proxy's configuration and its local socket.
#[derive(Debug, Clone)]
pub struct ProxySetup {
    /// The local-proxy.
    pub config: ProxyConfig,
    /// The local address clients connect to.
    pub bind: SocketAddr,
    /// Listen backlog of the local socket.
    pub backlog: u32,
}

impl ProxyOptions {
    /// The local-proxy's configuration: these (merged) options over the defaults, with
    /// `access` (from [`RelayOptions::access`](hc_client::options::RelayOptions::access)).
    ///
    /// # Errors
    /// [`SettingError`] naming the key.
    pub fn into_config(self, access: AccessConfig) -> Result<ProxySetup, SettingError> {
        let mut config = ProxyConfig::new(access.connection.clone());
        config.access = access;
        self.preopen_into(&mut config)?;
        let invalid = |key: &str, reason: String| SettingError::new(key, reason);
        let bind = self.bind.as_deref().unwrap_or(DEFAULT_BIND);
        let bind: SocketAddr = bind
            .parse()
            .map_err(|_| invalid("bind", format!("{bind:?} is not ADDR:PORT")))?;
        let backlog = self.backlog.unwrap_or_else(default_backlog);
        if let Some(n) = self.max_connections {
            if n == 0 {
                return Err(invalid("max_connections", "must be at least 1".into()));
            }
            config.max_connections = n;
        }
        if let Some(n) = self.max_connections_per_client {
            if n == 0 {
                return Err(invalid(
                    "max_connections_per_client",
                    "must be at least 1".into(),
                ));
            }
            config.max_connections_per_client = Some(n);
        }
        if let Some(on) = self.open_on_first_byte {
            config.open_on_first_byte = on;
        }
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        if let Some(idle) = self.idle_timeout {
            config.pump.idle_timeout = nonzero(idle);
        }
        config.pump.ping_interval = self.keepalive_interval.and_then(nonzero);
        if let Some(k) = self.tcp_keepalive {
            config.tcp_keepalive = nonzero(k);
        }
        let nets = |key: &str, list: &[String]| {
            list.iter()
                .map(|n| config_syntax::parse_net(n).map_err(|e| invalid(key, e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        };
        config.access_list.allow = nets("allow", &self.allow)?;
        config.access_list.deny = nets("deny", &self.deny)?;
        config.local_tls = match (self.local_tls.cert, self.local_tls.key) {
            (Some(cert), Some(key)) => Some(LocalTls { cert, key }),
            (None, None) => None,
            _ => return Err(invalid("local_tls", "give both cert and key".into())),
        };
        config.site = self.site;
        if let Some(g) = self.shutdown_grace {
            config.shutdown_grace = g;
        }
        if let Some(mode) = self.mode {
            config.mode = mode;
        }
        if let Some(n) = self.pool_size {
            if !(1..=64).contains(&n) {
                return Err(invalid("pool_size", "must be 1 to 64".into()));
            }
            config.pool_size = n;
        }
        config.azbridge_port_name = self.azbridge_port_name;
        Ok(ProxySetup {
            config,
            bind,
            backlog,
        })
    }
}

impl ProxyOptions {
    /// The pre-opening settings ([`crate::preopen`]), checked against the mode.
    fn preopen_into(&self, config: &mut ProxyConfig) -> Result<(), SettingError> {
        if let Some(n) = self.preopen {
            if n > MAX_PREOPEN {
                let reason = format!("must be 0 to {MAX_PREOPEN}");
                return Err(SettingError::new("preopen", reason));
            }
            let mode = self.mode.unwrap_or(config.mode);
            if n > 0 && matches!(mode, TunnelMode::Mux | TunnelMode::Azbridge) {
                let reason = format!(
                    "pre-opened tunnels are 1:1 tunnels: mode {mode} has none (use single or auto)"
                );
                return Err(SettingError::new("preopen", reason));
            }
            config.preopen = n;
        }
        if let Some(age) = self.preopen_max_age {
            if !PREOPEN_AGES.contains(&age) {
                let reason = "must be 1s to 5m".to_owned();
                return Err(SettingError::new("preopen_max_age", reason));
            }
            config.preopen_max_age = age;
        }
        if let Some(on) = self.preopen_foreign {
            config.preopen_foreign = on;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_unknown_keys_are_named() {
        let example = include_str!("../../deploy/proxy.example.toml");
        let file = ProxyFile::parse(example).expect("example parses");
        assert_eq!(file.bind.as_deref(), Some(DEFAULT_BIND));
        assert_eq!(file.max_connections, None);
        let err = ProxyFile::parse("max_conections = 3").expect_err("typo");
        assert!(err.to_string().contains("max_conections"), "{err}");
        let err = ProxyFile::parse("[local_tls]\ncertificate = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[test]
    fn preopen_is_bounded_and_only_for_1_to_1_modes() {
        let access = || {
            AccessConfig::new(
                "Endpoint=sb://r.test/;SharedAccessKeyName=s;SharedAccessKey=k;EntityPath=h"
                    .parse()
                    .expect("connection string"),
            )
        };
        let parse = |text: &str| {
            let file = ProxyFile::parse(text).expect("file");
            file.options.into_config(access())
        };
        let on = parse("mode = \"single\"\npreopen = 4\npreopen_max_age = \"2m\"").expect("ok");
        assert_eq!(on.config.preopen, 4);
        assert_eq!(on.config.preopen_max_age, Duration::from_secs(120));
        assert!(!on.config.preopen_foreign);
        assert_eq!(parse("").expect("defaults").config.preopen, 0);
        for (text, key) in [
            ("preopen = 33", "preopen"),
            ("mode = \"mux\"\npreopen = 1", "preopen"),
            ("mode = \"azbridge\"\npreopen = 1", "preopen"),
            ("preopen_max_age = \"0s\"", "preopen_max_age"),
            ("preopen_max_age = \"6m\"", "preopen_max_age"),
        ] {
            assert_eq!(parse(text).expect_err(text).key, key, "{text}");
        }
        // Off is allowed in every mode.
        assert!(parse("mode = \"mux\"\npreopen = 0").is_ok());
    }

    #[test]
    fn local_tls_from_flags_or_the_file_and_both_halves_needed() {
        let access = || {
            AccessConfig::new(
                "Endpoint=sb://r.test/;SharedAccessKeyName=s;SharedAccessKey=k;EntityPath=h"
                    .parse()
                    .expect("connection string"),
            )
        };
        let file =
            ProxyFile::parse("[local_tls]\ncert = \"a.pem\"\nkey = \"a.key\"").expect("file");
        let merged = config_syntax::layered(ProxyOptions::default(), file.options.clone());
        let tls = merged.into_config(access()).expect("file").config.local_tls;
        assert_eq!(tls.map(|t| t.cert), Some(PathBuf::from("a.pem")));
        let flags = ProxyOptions {
            local_tls: LocalTlsSection {
                cert: Some("b.pem".into()),
                key: Some("b.key".into()),
            },
            ..ProxyOptions::default()
        };
        let merged = config_syntax::layered(flags, file.options);
        let tls = merged
            .into_config(access())
            .expect("flags")
            .config
            .local_tls;
        assert_eq!(tls.map(|t| t.key), Some(PathBuf::from("b.key")));
        let half = ProxyFile::parse("[local_tls]\ncert = \"a.pem\"").expect("file");
        let err = half
            .options
            .clone()
            .into_config(access())
            .expect_err("half");
        assert_eq!(err.key, "local_tls");
    }
}
