//! The local-proxy's configuration: the library's [`ProxyConfig`] and the TOML file of
//! `dongle-relay proxy --config` ([`ProxyFile`], unknown keys refused).

use std::path::PathBuf;
use std::time::Duration;

use hc_client::access::AccessConfig;
use hc_client::pump::PumpConfig;
use hc_client::settings::{AccessKeys, EgressSection, TlsSection};
use hc_protocol::Secret;
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
}

impl ProxyConfig {
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
        }
    }
}

/// `[local_tls]`: TLS for local clients.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalTlsSection {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// The `proxy` configuration file. Every key is optional; command-line flags win.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProxyFile {
    /// `Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…` (Send right).
    pub connection_string: Option<Secret>,
    /// The hybrid connection, when the connection string has no `EntityPath`.
    pub hybrid_connection: Option<String>,
    /// Local address to listen on (`127.0.0.1:12300`).
    pub bind: Option<String>,
    /// Listen backlog (default: the kernel's `somaxconn`).
    pub backlog: Option<u32>,
    /// Most live tunnels at once (default: what the open-file limit holds, at most 16384).
    pub max_connections: Option<usize>,
    /// Most live tunnels of one client address (default: `max_connections`).
    pub max_connections_per_client: Option<usize>,
    /// Open the relay side only once the client has sent something (default true).
    pub open_on_first_byte: Option<bool>,
    /// Close tunnels idle this long (`5m`; `0` turns it off).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub idle_timeout: Option<Duration>,
    /// TCP keepalive on local connections (`60s`; `0` turns it off).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub tcp_keepalive: Option<Duration>,
    /// WebSocket ping interval per tunnel (default: none).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub keepalive_interval: Option<Duration>,
    /// Allowed clients (CIDR or addresses); empty allows all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Denied clients (CIDR or addresses); deny wins.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Site name sent to the listener.
    pub site: Option<String>,
    /// Token lifetime (`1h`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub token_ttl: Option<Duration>,
    /// Relay TCP connect timeout (`10s`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub connect_timeout: Option<Duration>,
    /// TLS + WebSocket handshake timeout (`20s`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub handshake_timeout: Option<Duration>,
    /// Drain time on shutdown (`10s`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub shutdown_grace: Option<Duration>,
    /// `auto` (default), `mux`, `single` or `azbridge`.
    pub mode: Option<TunnelMode>,
    /// Pooled relay connections in `auto`/`mux` mode (2).
    pub pool_size: Option<usize>,
    /// Port name sent in `azbridge` mode.
    pub azbridge_port_name: Option<String>,
    /// TLS for local clients.
    #[serde(default)]
    pub local_tls: LocalTlsSection,
    /// More relays serving the same hybrid connection (replicas, or another Azure namespace):
    /// `["sb://relay-b.example.net/"]`, same credentials as the connection string's.
    pub relays: Option<Vec<String>>,
    /// How often relay host names are resolved again, so that replicas behind one name
    /// (added, removed, moved) are followed (`30s`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub resolve_interval: Option<Duration>,
    /// Trust of the relay's certificate.
    #[serde(default)]
    pub tls: TlsSection,
    /// Proxy on the way to the relay.
    #[serde(default)]
    pub egress: EgressSection,
}

impl ProxyFile {
    /// Parses a configuration file's text; errors name the key and line.
    ///
    /// # Errors
    /// The TOML error.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The relay-access keys, for merging under the command line's.
    pub fn access_keys(&self) -> AccessKeys<'_> {
        AccessKeys {
            connection_string: self.connection_string.as_ref(),
            hybrid_connection: self.hybrid_connection.as_ref(),
            token_ttl: self.token_ttl,
            connect_timeout: self.connect_timeout,
            handshake_timeout: self.handshake_timeout,
            tls: &self.tls,
            egress: &self.egress,
            relays: self.relays.as_deref(),
            resolve_interval: self.resolve_interval,
        }
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
}
