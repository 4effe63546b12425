//! The relay-listener's configuration: the library's [`ListenerConfig`] and the TOML file of
//! `dongle-relay listen --config` ([`ListenerFile`], unknown keys refused).

use std::time::Duration;

use hc_client::access::AccessConfig;
use hc_client::pump::PumpConfig;
use hc_client::settings::{AccessKeys, EgressSection, TlsSection};
use hc_protocol::Secret;
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

/// The `listen` configuration file. Every key is optional; command-line flags win.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// `Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`.
    pub connection_string: Option<Secret>,
    /// The hybrid connection, when the connection string has no `EntityPath`.
    pub hybrid_connection: Option<String>,
    /// TCP target `host:port`.
    pub target: Option<String>,
    /// Target connect timeout (`5s`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub target_timeout: Option<Duration>,
    /// Control-channel ping interval (`30s`; `0` turns pings off).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub keepalive_interval: Option<Duration>,
    /// Close streams idle this long (`5m`; `0` turns it off).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub idle_timeout: Option<Duration>,
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
    /// Most live streams (default: what the open-file limit holds, at most 16384).
    pub max_streams: Option<u64>,
    /// Most live streams of one client, site and address (default: `max_streams`).
    pub max_streams_per_client: Option<u64>,
    /// Drain time on shutdown (`5s`).
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub shutdown_grace: Option<Duration>,
    /// How the target learns the real client: `none`, `proxy-v2` or `loopback`.
    pub identity: Option<IdentityMode>,
    /// Site name for senders that send none.
    pub default_site: Option<String>,
    /// Source addresses of the loopback identity mode (`127.64.0.0/10`).
    #[serde(default, deserialize_with = "de_opt_ipv4net")]
    pub loopback_range: Option<Ipv4Net>,
    /// Accept multiplexed pooled connections from our local-proxies (default true).
    pub mux: Option<bool>,
    /// Serve Azure Relay Bridge senders: the port names they may ask for.
    pub azbridge_port_names: Option<Vec<String>>,
    /// Forward HTTP-mode requests to this `host:port` (the admin endpoint; its token is still
    /// required).
    pub http_target: Option<String>,
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

impl ListenerFile {
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
