//! Relay access on the command line, shared by the commands that dial the relay (`listen`,
//! `proxy`, and `server` for its in-process relay-listener): the [`RelayArgs`] options, their
//! merging over a configuration file's relay-access keys into an [`AccessConfig`], and the
//! reading of those TOML files ([`read_file`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use config_syntax::parse_duration;
use hc_client::access::AccessConfig;
use hc_client::dial::DialTimeouts;
use hc_client::settings::{self, AccessKeys};
use hc_protocol::{RelayEndpoint, Secret};

/// Environment variable holding the connection string (keeps the key off the command line).
pub const CONNECTION_STRING_ENV: &str = "DONGLE_RELAY_CONNECTION_STRING";
/// Environment variable holding the egress proxy's password.
pub const PROXY_PASSWORD_ENV: &str = "DONGLE_RELAY_PROXY_PASSWORD";

/// Parses a secret option: the text as given, kept out of `Debug` output.
pub(crate) fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// Options for reaching the relay, shared by `listen` and `proxy`.
#[derive(clap::Args, Debug, Default)]
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
    /// Another relay serving the same hybrid connection, with the connection string's
    /// credentials (`sb://relay-b.example.net/`; repeatable): a listener keeps a control
    /// channel to every relay, a proxy spreads its connections over them and fails over
    /// [default: the file's `relays`, else only the connection string's endpoint].
    #[arg(long = "relay", value_name = "ENDPOINT")]
    pub relays: Vec<String>,
    /// How often relay host names are resolved again: a name with several addresses (a
    /// Kubernetes headless Service, DNS round robin) is one relay replica per address, and
    /// replicas that are added, removed or move are followed without a restart (also soon
    /// after a replica could not be reached) [default: the file's `resolve_interval`, else 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub resolve_interval: Option<Duration>,
    /// Lifetime of the SAS tokens signed with the key [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: Option<Duration>,
    /// TCP connect timeout towards the relay, proxy included [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// TLS + WebSocket handshake timeout [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Accept `Endpoint=ws://…` (no TLS) to a relay that is not on this machine. The token
    /// and all data then cross the network in clear; refused without this flag.
    #[arg(long)]
    pub insecure_plain_ws_non_loopback: bool,
}

impl RelayArgs {
    /// Merges the command line over the file into relay access settings.
    ///
    /// # Errors
    /// Any invalid or missing setting, named.
    pub fn access(&self, file: AccessKeys<'_>) -> anyhow::Result<AccessConfig> {
        let connection =
            settings::connection_string(self.connection_string.as_ref(), file.connection_string)?;
        if settings::check_plain_ws(&connection.endpoint, self.insecure_plain_ws_non_loopback)? {
            tracing::warn!(
                relay = %connection.endpoint.authority(),
                "plain ws:// to another machine (forced): the token and all data cross the network in clear"
            );
        }
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
        if let Some(interval) = self.resolve_interval.or(file.resolve_interval) {
            access.resolve_interval = interval;
        }
        let relays = if self.relays.is_empty() {
            file.relays.unwrap_or_default()
        } else {
            &self.relays[..]
        };
        access.relays = relays
            .iter()
            .map(|r| RelayEndpoint::parse(r).map_err(|e| anyhow::anyhow!("relays: {e}")))
            .collect::<anyhow::Result<_>>()?;
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
