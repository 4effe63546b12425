//! The relay-access options every component that dials the relay shares (`listen`, `proxy`,
//! and `server` for its in-process relay-listener): one definition, [`RelayOptions`], that is
//! at once the command line (`clap::Args`), the top-level keys of a component's TOML file and
//! the unit of the layered merge (see `config_syntax::layers`), validated by
//! [`RelayOptions::access`]. [`ComponentFile`] is a component's whole file: these keys and the
//! component's own, in one table.
//!
//! The file's `[tls]` and `[egress]` sections have flat flags (`--ca-file`, `--pin-sha256`,
//! `--socks5`, `--http-proxy`, `--proxy-user`): the sections are file-only fields and the flags
//! command-line-only fields, combined in [`RelayOptions::access`] (a pinned certificate of either
//! is trusted; a proxy given on the command line replaces the file's proxy of either kind).

use std::path::PathBuf;
use std::time::Duration;

use config_syntax::{Merge, parse_duration};
use hc_protocol::{RelayEndpoint, Secret};
use serde::Deserialize;

use crate::access::AccessConfig;
use crate::dial::DialTimeouts;
use crate::settings::{self, EgressSection, SettingError, TlsSection};

/// Environment variable holding the connection string (keeps the key off the command line).
pub const CONNECTION_STRING_ENV: &str = "DONGLE_RELAY_CONNECTION_STRING";
/// Environment variable holding the egress proxy's password (there is no flag: command lines
/// are visible to other users).
pub const PROXY_PASSWORD_ENV: &str = "DONGLE_RELAY_PROXY_PASSWORD";

/// Parses a secret option: the text as given, kept out of `Debug` output.
///
/// # Errors
/// None; the signature is clap's.
pub fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// Options for reaching the relay. Flags are kebab-case, file keys snake_case.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, Merge)]
#[merge(strategy = merge::option::overwrite_none)]
pub struct RelayOptions {
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
    #[serde(skip)]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the relay certificate with this SHA-256 fingerprint (hex, colons optional;
    /// `dongle-relay relay` prints it). Repeatable. Handshake signatures are still verified.
    #[arg(long = "pin-sha256", value_name = "FINGERPRINT")]
    #[serde(skip)]
    #[merge(strategy = merge::vec::append)]
    pub pins: Vec<String>,
    /// Reach the relay through this SOCKS5 proxy (`host:port`).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "http_proxy")]
    #[serde(skip)]
    pub socks5: Option<String>,
    /// Reach the relay through this HTTP proxy's CONNECT (`host:port`).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip)]
    pub http_proxy: Option<String>,
    /// User name for the SOCKS5/HTTP proxy; the password comes from
    /// `DONGLE_RELAY_PROXY_PASSWORD`.
    #[arg(long, env = "DONGLE_RELAY_PROXY_USER", value_name = "USER")]
    #[serde(skip)]
    pub proxy_user: Option<String>,
    /// Another relay serving the same hybrid connection, with the connection string's
    /// credentials (`sb://relay-b.example.net/`; repeatable): a listener keeps a control
    /// channel to every relay, a proxy spreads its connections over them and fails over
    /// [default: the file's `relays`, else only the connection string's endpoint].
    #[arg(long = "relay", value_name = "ENDPOINT")]
    #[serde(default)]
    #[merge(strategy = merge::vec::overwrite_empty)]
    pub relays: Vec<String>,
    /// How often relay host names are resolved again: a name with several addresses (a
    /// Kubernetes headless Service, DNS round robin) is one relay replica per address, and
    /// replicas that are added, removed or move are followed without a restart (also soon
    /// after a replica could not be reached) [default: the file's `resolve_interval`, else 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub resolve_interval: Option<Duration>,
    /// Lifetime of the SAS tokens signed with the key [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub token_ttl: Option<Duration>,
    /// TCP connect timeout towards the relay, proxy included [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub connect_timeout: Option<Duration>,
    /// TLS + WebSocket handshake timeout [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    pub handshake_timeout: Option<Duration>,
    /// Accept `Endpoint=ws://…` (no TLS) to a relay that is not on this machine. The token
    /// and all data then cross the network in clear; refused without this flag.
    #[arg(long)]
    #[serde(skip)]
    #[merge(strategy = merge::bool::overwrite_false)]
    pub insecure_plain_ws_non_loopback: bool,
    /// `[tls]`: trust of the relay's certificate (file only; the flags are `--ca-file` and
    /// `--pin-sha256`).
    #[arg(skip)]
    #[serde(default)]
    #[merge(strategy = config_syntax::layers::overwrite_default)]
    pub tls: TlsSection,
    /// `[egress]`: a proxy on the way to the relay (file only; the flags are `--socks5`,
    /// `--http-proxy` and `--proxy-user`).
    #[arg(skip)]
    #[serde(default)]
    #[merge(strategy = config_syntax::layers::overwrite_default)]
    pub egress: EgressSection,
}

impl RelayOptions {
    /// The relay access these (merged) options describe. Warns when plain `ws://` to another
    /// machine was forced.
    ///
    /// # Errors
    /// [`SettingError`] naming the missing or invalid key.
    pub fn access(&self) -> Result<AccessConfig, SettingError> {
        let connection = settings::connection_string(self.connection_string.as_ref(), None)?;
        if settings::check_plain_ws(&connection.endpoint, self.insecure_plain_ws_non_loopback)? {
            tracing::warn!(
                relay = %connection.endpoint.authority(),
                "plain ws:// to another machine (forced): the token and all data cross the network in clear"
            );
        }
        let mut access = AccessConfig::new(connection);
        access.entity_path = self.hybrid_connection.clone();
        access.trust = self.tls.to_trust(self.ca_file.clone(), &self.pins)?;
        let password = std::env::var(PROXY_PASSWORD_ENV).ok().map(Secret::new);
        access.egress = self.egress.to_egress(
            self.socks5.clone(),
            self.http_proxy.clone(),
            self.proxy_user.clone(),
            password,
        )?;
        let defaults = DialTimeouts::default();
        access.timeouts = DialTimeouts {
            connect: self.connect_timeout.unwrap_or(defaults.connect),
            handshake: self.handshake_timeout.unwrap_or(defaults.handshake),
        };
        if let Some(ttl) = self.token_ttl {
            access.token_ttl = ttl;
        }
        if let Some(interval) = self.resolve_interval {
            access.resolve_interval = interval;
        }
        access.relays = self
            .relays
            .iter()
            .map(|r| {
                RelayEndpoint::parse(r).map_err(|e| SettingError::new("relays", e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(access)
    }
}

/// A component's configuration file: the relay-access keys and the component's own options
/// `O`, in one table (it dereferences to `O`).
#[derive(Debug, Clone, Default)]
pub struct ComponentFile<O> {
    /// The relay-access keys.
    pub relay: RelayOptions,
    /// The component's own keys.
    pub options: O,
}

impl<O: serde::de::DeserializeOwned> ComponentFile<O> {
    /// Parses a configuration file's text; errors name the key (and line, for bad values).
    ///
    /// # Errors
    /// The TOML error, or the first key neither part knows.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let (relay, options) = config_syntax::layers::from_toml_pair(text)?;
        Ok(Self { relay, options })
    }
}

impl<O> std::ops::Deref for ComponentFile<O> {
    type Target = O;

    fn deref(&self) -> &O {
        &self.options
    }
}

impl<O> std::ops::DerefMut for ComponentFile<O> {
    fn deref_mut(&mut self) -> &mut O {
        &mut self.options
    }
}
