//! The relay-access settings' sections and checks shared by `dongle-relay listen` and
//! `dongle-relay proxy` (the options themselves are [`crate::options::RelayOptions`]): `[tls]`
//! trust of the relay's certificate, `[egress]` proxy, the connection string, plain `ws://`.

use hc_protocol::Secret;
use serde::Deserialize;
use std::path::PathBuf;

use crate::egress::{Egress, ProxyAuth};
use crate::trust::{Fingerprint, TrustConfig};

/// A setting's value is invalid; the message names the setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {reason}")]
pub struct SettingError {
    /// The setting (file key or flag).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl SettingError {
    /// An error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// `[tls]`: how the relay's certificate is trusted; on the command line `--ca-file` and
/// `--pin-sha256` (one definition: flattened into the command line, a section of the file).
/// Merged field by field: a CA file of a higher layer replaces a lower layer's; the pins of all
/// layers are trusted together.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, PartialEq, Eq, config_syntax::Merge)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Trust the public web PKI roots (default true; file only).
    #[arg(skip)]
    #[merge(strategy = merge::option::overwrite_none)]
    pub public_roots: Option<bool>,
    /// Also trust the CA certificates in this PEM file for the relay's certificate
    /// (default: the public web PKI roots only).
    #[arg(long, value_name = "PEM")]
    #[merge(strategy = merge::option::overwrite_none)]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the relay certificate with this SHA-256 fingerprint (hex, colons optional;
    /// `dongle-relay relay` prints it). Repeatable. Handshake signatures are still verified.
    #[arg(long = "pin-sha256", value_name = "FINGERPRINT")]
    #[serde(default)]
    #[merge(strategy = merge::vec::append)]
    pub pin_sha256: Vec<String>,
}

impl TlsSection {
    /// The trust configuration these (merged) settings describe.
    ///
    /// # Errors
    /// [`SettingError`] naming a malformed fingerprint.
    pub fn to_trust(&self) -> Result<TrustConfig, SettingError> {
        let pins = self
            .pin_sha256
            .iter()
            .map(|pin| {
                pin.parse().map_err(|e: crate::trust::BadFingerprint| {
                    SettingError::new("pin_sha256", e.to_string())
                })
            })
            .collect::<Result<Vec<Fingerprint>, _>>()?;
        Ok(TrustConfig {
            public_roots: self.public_roots.unwrap_or(true),
            ca_file: self.ca_file.clone(),
            pins,
        })
    }
}

/// `[egress]`: an optional proxy between this site and the relay; on the command line
/// `--socks5`, `--http-proxy` and `--proxy-user` (the password only from the file or
/// `DONGLE_RELAY_PROXY_PASSWORD`: command lines are visible to other users). Merged as one: a
/// proxy of a higher layer replaces a lower layer's proxy of either kind.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// Reach the relay through this SOCKS5 proxy (`host:port`).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "http_proxy")]
    pub socks5: Option<String>,
    /// Reach the relay through this HTTP proxy's CONNECT (`host:port`).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_proxy: Option<String>,
    /// User name for the SOCKS5/HTTP proxy; the password comes from
    /// `DONGLE_RELAY_PROXY_PASSWORD`.
    #[arg(
        long = "proxy-user",
        env = "DONGLE_RELAY_PROXY_USER",
        value_name = "USER"
    )]
    pub user: Option<String>,
    /// Proxy password (prefer the `DONGLE_RELAY_PROXY_PASSWORD` environment variable).
    #[arg(skip)]
    pub password: Option<Secret>,
}

impl config_syntax::Merge for EgressSection {
    fn merge(&mut self, lower: Self) {
        if self.socks5.is_none() && self.http_proxy.is_none() {
            self.socks5 = lower.socks5;
            self.http_proxy = lower.http_proxy;
        }
        self.user = self.user.take().or(lower.user);
        self.password = self.password.take().or(lower.password);
    }
}

impl EgressSection {
    /// Merges command-line values over the file's and builds the egress.
    ///
    /// # Errors
    /// [`SettingError`] when both proxy kinds are given, or a password without a user.
    pub fn to_egress(
        &self,
        socks5: Option<String>,
        http_proxy: Option<String>,
        user: Option<String>,
        password: Option<Secret>,
    ) -> Result<Egress, SettingError> {
        // A proxy given on the command line replaces the file's proxy of either kind.
        let (socks5, http_proxy) = if socks5.is_some() || http_proxy.is_some() {
            (socks5, http_proxy)
        } else {
            (self.socks5.clone(), self.http_proxy.clone())
        };
        let user = user.or_else(|| self.user.clone());
        let password = password.or_else(|| self.password.clone());
        let auth = match (user, password) {
            (Some(user), password) => Some(ProxyAuth {
                user,
                password: password.unwrap_or_default(),
            }),
            (None, Some(_)) => {
                return Err(SettingError::new(
                    "egress.password",
                    "a password needs a user",
                ));
            }
            (None, None) => None,
        };
        let check = |key: &str, addr: &str| {
            if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                Ok(())
            } else {
                Err(SettingError::new(key, format!("{addr:?} is not host:port")))
            }
        };
        match (socks5, http_proxy) {
            (Some(_), Some(_)) => Err(SettingError::new(
                "egress",
                "give either a SOCKS5 or an HTTP proxy, not both",
            )),
            (Some(addr), None) => {
                check("egress.socks5", &addr)?;
                Ok(Egress::Socks5 { addr, auth })
            }
            (None, Some(addr)) => {
                check("egress.http_proxy", &addr)?;
                Ok(Egress::HttpConnect { addr, auth })
            }
            (None, None) if auth.is_some() => Err(SettingError::new(
                "egress.user",
                "proxy credentials given but no proxy",
            )),
            (None, None) => Ok(Egress::Direct),
        }
    }
}

/// The connection string from the command line (or its environment variable), else from the
/// file. Parse errors name the key, never the secret.
///
/// # Errors
/// [`SettingError`] when none is given or it does not parse.
pub fn connection_string(
    flag: Option<&Secret>,
    file: Option<&Secret>,
) -> Result<hc_protocol::ConnectionString, SettingError> {
    let Some(text) = flag.or(file) else {
        return Err(SettingError::new(
            "connection_string",
            "none given: use --connection-string, DONGLE_RELAY_CONNECTION_STRING or connection_string in the config file",
        ));
    };
    text.expose()
        .parse()
        .map_err(|e: hc_protocol::ConnectionStringError| {
            SettingError::new("connection_string", e.to_string())
        })
}

/// Refuses a plain `ws://` relay beyond this machine unless `allow_non_loopback` (the token
/// and every byte would cross the network in clear). Returns whether the caller must warn:
/// plain `ws://` was allowed to a remote host.
///
/// # Errors
/// [`SettingError`] for `ws://` to a host that is not loopback, not forced.
pub fn check_plain_ws(
    endpoint: &hc_protocol::RelayEndpoint,
    allow_non_loopback: bool,
) -> Result<bool, SettingError> {
    if endpoint.tls || endpoint.is_loopback() {
        return Ok(false);
    }
    if allow_non_loopback {
        return Ok(true);
    }
    Err(SettingError::new(
        "connection_string",
        format!(
            "Endpoint=ws://{} is plain WebSocket to another machine: the token would travel in \
             clear. Use sb:// or wss:// (TLS), or force it with --insecure-plain-ws-non-loopback",
            endpoint.authority()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ws_only_to_loopback_unless_forced() {
        let at = |s: &str| hc_protocol::RelayEndpoint::parse(s).expect("endpoint");
        for local in [
            "ws://127.0.0.1:80/",
            "ws://localhost/",
            "ws://[::1]:9/",
            "ws://127.1.2.3/",
        ] {
            assert_eq!(check_plain_ws(&at(local), false), Ok(false), "{local}");
        }
        assert_eq!(check_plain_ws(&at("sb://relay.example/"), false), Ok(false));
        let remote = at("ws://relay.example:9443/");
        let err = check_plain_ws(&remote, false).expect_err("remote ws://");
        assert!(err.reason.contains("in clear"), "{err}");
        assert_eq!(check_plain_ws(&remote, true), Ok(true));
        assert!(check_plain_ws(&at("ws://10.0.0.1/"), false).is_err());
    }

    #[test]
    fn egress_merging_and_errors() {
        let file = EgressSection {
            socks5: Some("proxy:1080".into()),
            ..EgressSection::default()
        };
        assert_eq!(
            file.to_egress(None, None, None, None),
            Ok(Egress::Socks5 {
                addr: "proxy:1080".into(),
                auth: None
            })
        );
        let flag = file
            .to_egress(
                None,
                Some("web:3128".into()),
                Some("u".into()),
                Some(Secret::new("p")),
            )
            .expect("flag wins");
        assert!(
            matches!(flag, Egress::HttpConnect { ref addr, auth: Some(_) } if addr == "web:3128")
        );
        assert!(!format!("{flag:?}").contains("\"p\""));
        let both = EgressSection {
            http_proxy: Some("web:3128".into()),
            ..file
        };
        assert!(both.to_egress(None, None, None, None).is_err());
        let bad = EgressSection::default().to_egress(Some("noport".into()), None, None, None);
        assert_eq!(bad.expect_err("no port").key, "egress.socks5");
    }

    #[test]
    fn tls_section_parses_pins_and_names_bad_ones() {
        let section: TlsSection =
            toml::from_str(&format!("pin_sha256 = [\"{}\"]", "0A".repeat(32))).expect("toml");
        let trust = section.to_trust().expect("trust");
        assert_eq!(trust.pins.len(), 1);
        let mut bad = section.clone();
        bad.pin_sha256.push("xyz".into());
        let err = bad.to_trust().expect_err("bad pin");
        assert_eq!(err.key, "pin_sha256");
        let unknown = toml::from_str::<TlsSection>("pin = []").expect_err("unknown key");
        assert!(unknown.to_string().contains("pin"), "{unknown}");
    }
}
