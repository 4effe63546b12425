//! The relay-access options every component that dials the relay shares (`listen`, `proxy`,
//! and `server` for its in-process relay-listener): one definition, [`RelayOptions`], that is
//! at once the command line (`clap::Args`), the top-level keys of a component's TOML file and
//! the unit of the layered merge (see `config_syntax::layers`), validated by
//! [`RelayOptions::access`]. [`ComponentFile`] is a component's whole file: these keys and the
//! component's own, in one table.
//!
//! The file's `[egress]` section is also the flags `--socks5`, `--http-proxy`, `--proxy-user`
//! (one definition, [`EgressSection`]), and its `[tls]` section the flags `--ca-file` and
//! `--pin-sha256` ([`TlsSection`]; a certificate pinned by any layer is trusted).

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
    /// `[tls]` / `--ca-file`, `--pin-sha256`: trust of the relay's certificate.
    #[command(flatten)]
    #[serde(default)]
    #[merge(strategy = Merge::merge)]
    pub tls: TlsSection,
    /// `[egress]` / `--socks5`, `--http-proxy`, `--proxy-user`: a proxy on the way to the
    /// relay.
    #[command(flatten)]
    #[serde(default)]
    #[merge(strategy = Merge::merge)]
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
        access.trust = self.tls.to_trust()?;
        let password = std::env::var(PROXY_PASSWORD_ENV).ok().map(Secret::new);
        access.egress = self.egress.to_egress(None, None, None, password)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Egress;
    use config_syntax::layered;

    const CS: &str =
        "Endpoint=sb://relay.test/;SharedAccessKeyName=send;SharedAccessKey=k;EntityPath=license";

    /// A component without options of its own.
    #[derive(Debug, Clone, Default, Deserialize)]
    struct NoOwnKeys {}

    #[test]
    fn flags_over_the_file_section_by_section() {
        let file = ComponentFile::<NoOwnKeys>::parse(&format!(
            "connection_string = \"{CS}\"\ntoken_ttl = \"2h\"\nrelays = [\"sb://b.test/\"]\n\
             [egress]\nsocks5 = \"socks:1080\"\nuser = \"u\"\n[tls]\npin_sha256 = [\"{}\"]\n",
            "0A".repeat(32)
        ))
        .expect("file");
        let access = layered(RelayOptions::default(), file.relay.clone())
            .access()
            .expect("file alone");
        assert!(matches!(access.egress, Egress::Socks5 { ref addr, .. } if addr == "socks:1080"));
        assert_eq!(access.token_ttl, Duration::from_secs(7200));
        assert_eq!(access.relays.len(), 1);

        let flags = RelayOptions {
            token_ttl: Some(Duration::from_secs(60)),
            tls: TlsSection {
                pin_sha256: vec!["0B".repeat(32)],
                ..TlsSection::default()
            },
            egress: EgressSection {
                http_proxy: Some("web:3128".into()),
                ..EgressSection::default()
            },
            ..RelayOptions::default()
        };
        let access = layered(flags, file.relay).access().expect("flags win");
        // A proxy on the command line replaces the file's of either kind; the user stays.
        assert!(matches!(
            access.egress,
            Egress::HttpConnect { ref addr, auth: Some(ref auth) } if addr == "web:3128" && auth.user == "u"
        ));
        assert_eq!(access.token_ttl, Duration::from_secs(60));
        assert_eq!(
            access.trust.pins.len(),
            2,
            "pins of file and flags are both trusted"
        );
    }
}
