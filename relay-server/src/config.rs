//! The relay's configuration: which hybrid connections it hosts, their SAS rules, TLS, limits
//! and client access lists.
//!
//! A [`RelayConfig`] is built in code (tests) or read from TOML ([`RelayConfig::from_toml_str`],
//! [`RelayConfig::from_file`]). Every table refuses unknown keys, and [`RelayConfig::validate`]
//! rejects contradictions with a message naming the key (`hybrid_connection[0].rule[1].key`),
//! before any socket is bound. Durations use the one syntax of every dongle-relay file and flag
//! (`config_syntax`: `"30s"`, `"5m"`, or a number of seconds; the older `*_secs` key names
//! are still read), sizes are in bytes (`*_bytes`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config_syntax::AccessList;
use hc_protocol::Secret;
use serde::Deserialize;

use crate::stats::RelayStats;

/// Listeners Azure allows on one hybrid connection; the 26th is refused.
pub const AZURE_MAX_LISTENERS_PER_HC: usize = 25;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error. Not a `source`: the message carries it, and an error chain would say
        /// it twice.
        error: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type (the message names the key).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or contradicts another.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, as a TOML path (`limits.max_frame_bytes`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole relay configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Address the CLI binds (the library is handed an already bound listener).
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// TLS: PEM files, a generated self-signed certificate (the default), or plain `ws://`.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Connection, message and time limits.
    #[serde(default)]
    pub limits: Limits,
    /// Client IP allow and deny lists (`[access]`): a client is served when it matches
    /// `allow` (or `allow` is empty) and does not match `deny`; others are disconnected
    /// before TLS.
    #[serde(default)]
    pub access: AccessList,
    /// Host names a token's audience (`sr`) may name; `"*"` accepts any. Empty (the default):
    /// the host the request was sent to (its `Host` header), so a token minted for another
    /// relay or namespace that shares a key is refused.
    #[serde(default)]
    pub accepted_hosts: Vec<String>,
    /// Namespace-wide SAS rules: valid for every hybrid connection (like Azure's
    /// `RootManageSharedAccessKey`).
    #[serde(default, rename = "rule")]
    pub namespace_rules: Vec<SasRule>,
    /// The hybrid connections this relay hosts.
    #[serde(default, rename = "hybrid_connection")]
    pub hybrid_connections: Vec<HybridConnectionConfig>,
    /// Live counters and readiness signals of the relay this configuration runs. Clone it
    /// before handing the configuration to [`crate::run`].
    #[serde(skip)]
    pub stats: RelayStats,
}

/// One hybrid connection (`/$hc/{name}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridConnectionConfig {
    /// The entity path, for example `license` or `site-a/license`. Matched case-insensitively.
    pub name: String,
    /// SAS rules of this hybrid connection.
    #[serde(default, rename = "rule")]
    pub rules: Vec<SasRule>,
    /// Whether senders need a token with the `Send` right (Azure's
    /// `requiresClientAuthorization`, default true). Listeners always need `Listen`.
    #[serde(default = "yes")]
    pub requires_client_authorization: bool,
}

fn yes() -> bool {
    true
}

impl HybridConnectionConfig {
    /// A hybrid connection with the given rules, requiring sender authorization.
    pub fn new(name: impl Into<String>, rules: Vec<SasRule>) -> Self {
        Self {
            name: name.into(),
            rules,
            requires_client_authorization: true,
        }
    }
}

/// A Shared Access Signature rule: key name, key and the rights a token signed with it grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SasRule {
    /// Key name (`skn` of tokens, `SharedAccessKeyName` of connection strings).
    pub name: String,
    /// The key (UTF-8 bytes are the HMAC key, as in Azure).
    pub key: Secret,
    /// Granted rights.
    pub rights: Vec<Right>,
}

impl SasRule {
    /// A rule from its parts.
    pub fn new(name: impl Into<String>, key: impl Into<Secret>, rights: &[Right]) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
            rights: rights.to_vec(),
        }
    }

    /// Whether the rule grants `right` (`Manage` grants everything).
    pub fn grants(&self, right: Right) -> bool {
        self.rights
            .iter()
            .any(|r| *r == right || *r == Right::Manage)
    }
}

/// A right of a SAS rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Right {
    /// Open a listener control channel.
    #[serde(alias = "listen")]
    Listen,
    /// Connect as a sender.
    #[serde(alias = "send")]
    Send,
    /// Everything (implies `Listen` and `Send`).
    #[serde(alias = "manage")]
    Manage,
}

impl Right {
    /// The name Azure uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "Listen",
            Self::Send => "Send",
            Self::Manage => "Manage",
        }
    }
}

/// How the relay speaks TLS. In TOML: `[tls] mode = "self-signed" | "pem-files" | "plain"`,
/// with `names` (self-signed) or `cert_file` and `key_file` (pem-files).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawTls")]
pub enum TlsConfig {
    /// Plain `ws://`, no TLS. Only for tests and loopback set-ups; must be asked for.
    Plain,
    /// Certificate chain and private key from PEM files (`mode = "pem-files"`).
    PemFiles {
        /// PEM file with the certificate chain, leaf first.
        cert_file: PathBuf,
        /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
        key_file: PathBuf,
    },
    /// A certificate generated at start (`mode = "self-signed"`); its SHA-256 fingerprint is
    /// logged so clients can pin it.
    SelfSigned {
        /// Subject alternative names (DNS names or IP addresses).
        names: Vec<String>,
    },
    /// Certificate chain and key given as PEM text (code only, for tests and the CLI).
    InMemory {
        /// PEM certificate chain.
        cert_pem: String,
        /// PEM private key.
        key_pem: Secret,
    },
}

/// The `[tls]` table as written; turned into a [`TlsConfig`] with mode-specific checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    mode: String,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    names: Option<Vec<String>>,
}

impl TryFrom<RawTls> for TlsConfig {
    type Error = String;

    fn try_from(raw: RawTls) -> Result<Self, Self::Error> {
        let only =
            |key: &str, mode: &str| format!("tls.{key} is only valid with mode = \"{mode}\"");
        match raw.mode.as_str() {
            "plain" | "self-signed" if raw.cert_file.is_some() => {
                Err(only("cert_file", "pem-files"))
            }
            "plain" | "self-signed" if raw.key_file.is_some() => Err(only("key_file", "pem-files")),
            "plain" | "pem-files" if raw.names.is_some() => Err(only("names", "self-signed")),
            "plain" => Ok(Self::Plain),
            "self-signed" => Ok(Self::SelfSigned {
                names: raw.names.unwrap_or_else(default_self_signed_names),
            }),
            "pem-files" => match (raw.cert_file, raw.key_file) {
                (Some(cert_file), Some(key_file)) => Ok(Self::PemFiles {
                    cert_file,
                    key_file,
                }),
                _ => Err(
                    "tls.cert_file and tls.key_file are required with mode = \"pem-files\"".into(),
                ),
            },
            other => Err(format!(
                "tls.mode {other:?} is not one of \"self-signed\", \"pem-files\", \"plain\""
            )),
        }
    }
}

/// Names of a default self-signed certificate.
pub fn default_self_signed_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::SelfSigned {
            names: default_self_signed_names(),
        }
    }
}

impl TlsConfig {
    /// Whether the relay serves `wss://`.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Self::Plain)
    }
}

/// Limits and timeouts. `0` disables a timeout where noted.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent client TCP connections (control channels, senders, rendezvous, handshakes).
    /// Over the limit a connection is answered `503` (a few more are answered, the rest
    /// dropped).
    pub max_connections: usize,
    /// Connections one IP may hold before it has authenticated (a valid token or rendezvous
    /// address); a newer one closes its oldest.
    pub max_unauthenticated_per_ip: usize,
    /// Slots unauthenticated connections can never take: kept for listeners and senders that
    /// have authenticated. At most half of `max_connections` is reserved, whatever this says.
    pub reserved_for_authenticated: usize,
    /// Listeners per hybrid connection (Azure: 25); one more is answered `429`.
    #[serde(rename = "max_listeners_per_hybrid_connection")]
    pub max_listeners_per_hc: usize,
    /// Largest WebSocket message of HTTP request mode (bodies, request rendezvous). Bridged
    /// connections forward frames without reassembling messages; `max_frame_size` bounds them.
    #[serde(rename = "max_message_bytes")]
    pub max_message_size: usize,
    /// Largest WebSocket frame accepted on a bridged connection.
    #[serde(rename = "max_frame_bytes")]
    pub max_frame_size: usize,
    /// Read buffer per WebSocket (allocated eagerly).
    #[serde(rename = "read_buffer_bytes")]
    pub read_buffer_size: usize,
    /// Bytes a WebSocket buffers before writing to the socket (every forwarded message is
    /// flushed anyway).
    #[serde(rename = "write_buffer_bytes")]
    pub write_buffer_size: usize,
    /// Hard cap of a WebSocket's write buffer (tungstenite's default is unbounded). Default:
    /// `write_buffer_bytes + max_message_bytes + 64 KiB`.
    #[serde(rename = "max_write_buffer_bytes")]
    pub max_write_buffer_size: Option<usize>,
    /// TLS handshake plus reading the HTTP upgrade request.
    #[serde(
        alias = "handshake_timeout_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub handshake_timeout: Duration,
    /// How long a sender waits for its listener to dial the rendezvous address; also how
    /// long that address stays valid. Then the sender gets `504`. The default stays below the
    /// 20 s our senders (and the listener's dial-back) allow a WebSocket handshake, so that a
    /// sender hears the true cause instead of timing out itself.
    #[serde(
        alias = "rendezvous_timeout_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub rendezvous_timeout: Duration,
    /// HTTP request mode: how long the listener has to answer a request (the guide's 60 s),
    /// then the client gets `504`; also bounds reading the request body and a request
    /// rendezvous.
    #[serde(deserialize_with = "config_syntax::duration::deserialize")]
    pub http_response_timeout: Duration,
    /// A bridged connection without data messages in either direction for this long is
    /// closed with 1001 (`0`: never).
    #[serde(
        alias = "idle_timeout_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub idle_timeout: Duration,
    /// A side of a bridged connection that was sent data and then sends nothing back (no
    /// pong to the relay's ping, no data) for this long is taken for dead (frozen, not
    /// reading, gone without a FIN): the bridge is closed with 1001 and a reason naming it
    /// (`0`: never).
    #[serde(deserialize_with = "config_syntax::duration::deserialize")]
    pub peer_response_timeout: Duration,
    /// Ping a control channel that was quiet this long; close it (1001) when the ping is not
    /// answered within two more intervals (`0`: never). The 2 s default drops a frozen or
    /// vanished listener within about 8 s.
    #[serde(
        alias = "control_ping_interval_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub control_ping_interval: Duration,
    /// On shutdown, how long bridged connections may drain before they are closed.
    #[serde(
        alias = "shutdown_grace_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub shutdown_grace: Duration,
    /// Listen attempts one client IP may make in a burst (hyco-ws reconnects without
    /// back-off); further attempts are answered `429` (`0`: no limit).
    pub listen_burst_per_ip: u32,
    /// Listen attempts per second one client IP regains.
    pub listen_rate_per_ip: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_unauthenticated_per_ip: 512,
            reserved_for_authenticated: 128,
            max_listeners_per_hc: AZURE_MAX_LISTENERS_PER_HC,
            max_message_size: 4 << 20,
            max_frame_size: 4 << 20,
            read_buffer_size: 32 << 10,
            write_buffer_size: 32 << 10,
            max_write_buffer_size: None,
            handshake_timeout: Duration::from_secs(10),
            rendezvous_timeout: Duration::from_secs(15),
            http_response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(3600),
            peer_response_timeout: Duration::from_secs(10),
            control_ping_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(10),
            listen_burst_per_ip: 20,
            listen_rate_per_ip: 2.0,
        }
    }
}

impl Limits {
    /// The effective write-buffer cap.
    pub fn effective_max_write_buffer(&self) -> usize {
        self.max_write_buffer_size.unwrap_or(
            self.write_buffer_size
                .saturating_add(self.max_message_size)
                .saturating_add(64 << 10),
        )
    }
}

/// The `[limits]` durations of earlier versions, spelled in seconds under `*_secs` keys.
const SECONDS_KEYS: [&str; 5] = [
    "handshake_timeout",
    "rendezvous_timeout",
    "idle_timeout",
    "control_ping_interval",
    "shutdown_grace",
];

/// Deprecation notices for the older spellings a file uses (they are still read, through a
/// serde alias): one line per key, saying what to write instead.
fn deprecated_keys(file: &toml::Table) -> Vec<String> {
    let Some(limits) = file.get("limits").and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    SECONDS_KEYS
        .iter()
        .filter_map(|key| {
            let old = format!("{key}_secs");
            let value = limits.get(&old)?;
            let secs = value
                .as_float()
                .or_else(|| value.as_integer().map(|n| n as f64))?;
            let written = Duration::try_from_secs_f64(secs).ok()?;
            Some(format!(
                "limits.{old} = {value} is deprecated; write {key} = \"{}\"",
                config_syntax::format_duration(written)
            ))
        })
        .collect()
}

impl RelayConfig {
    /// A configuration hosting `hybrid_connections` over `tls`, with default limits.
    pub fn new(tls: TlsConfig, hybrid_connections: Vec<HybridConnectionConfig>) -> Self {
        Self {
            tls,
            hybrid_connections,
            ..Self::default()
        }
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Toml`] (naming the key and line) or [`ConfigError::Invalid`].
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        if let Ok(table) = text.parse::<toml::Table>() {
            for line in deprecated_keys(&table) {
                tracing::warn!("relay configuration: {line}");
            }
        }
        Ok(config)
    }

    /// Reads, parses and validates a TOML file. Relative PEM paths are resolved against the
    /// file's directory.
    ///
    /// # Errors
    /// As [`RelayConfig::from_toml_str`], plus [`ConfigError::Read`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let mut config = Self::from_toml_str(&text).map_err(|err| match err {
            ConfigError::Toml(e) => invalid(path.display().to_string(), e.to_string()),
            other => other,
        })?;
        if let (
            TlsConfig::PemFiles {
                cert_file,
                key_file,
            },
            Some(dir),
        ) = (&mut config.tls, path.parent())
        {
            for file in [cert_file, key_file] {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// The stats handle of the relay that runs this configuration.
    pub fn stats(&self) -> RelayStats {
        self.stats.clone()
    }

    /// Checks the configuration for out-of-range values and contradictions.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hybrid_connections.is_empty() {
            return Err(invalid(
                "hybrid_connection",
                "at least one [[hybrid_connection]] is required",
            ));
        }
        validate_rules("rule", &self.namespace_rules)?;
        let mut seen: Vec<String> = Vec::new();
        for (i, hc) in self.hybrid_connections.iter().enumerate() {
            let key = format!("hybrid_connection[{i}]");
            validate_hc_name(&format!("{key}.name"), &hc.name)?;
            let canonical = hc.name.trim_matches('/').to_lowercase();
            if seen.contains(&canonical) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("hybrid connection {:?} is defined twice", hc.name),
                ));
            }
            seen.push(canonical);
            validate_rules(&format!("{key}.rule"), &hc.rules)?;
            let can_listen = hc
                .rules
                .iter()
                .chain(&self.namespace_rules)
                .any(|r| r.grants(Right::Listen));
            if !can_listen {
                return Err(invalid(
                    format!("{key}.rule"),
                    format!(
                        "no rule grants Listen on {:?}, so no listener could ever connect",
                        hc.name
                    ),
                ));
            }
        }
        for host in &self.accepted_hosts {
            if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
                return Err(invalid("accepted_hosts", format!("{host:?} is not a host")));
            }
        }
        self.limits.validate()?;
        match &self.tls {
            TlsConfig::SelfSigned { names } if names.is_empty() => {
                Err(invalid("tls.names", "at least one name is required"))
            }
            _ => Ok(()),
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.max_connections", self.max_connections),
            (
                "limits.max_unauthenticated_per_ip",
                self.max_unauthenticated_per_ip,
            ),
            (
                "limits.max_listeners_per_hybrid_connection",
                self.max_listeners_per_hc,
            ),
            ("limits.max_message_bytes", self.max_message_size),
            ("limits.max_frame_bytes", self.max_frame_size),
            ("limits.read_buffer_bytes", self.read_buffer_size),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.max_frame_size > self.max_message_size {
            return Err(invalid(
                "limits.max_frame_bytes",
                "must not exceed limits.max_message_bytes",
            ));
        }
        if self.effective_max_write_buffer() <= self.write_buffer_size {
            return Err(invalid(
                "limits.max_write_buffer_bytes",
                "must exceed limits.write_buffer_bytes",
            ));
        }
        let required = [
            ("limits.handshake_timeout", self.handshake_timeout),
            ("limits.rendezvous_timeout", self.rendezvous_timeout),
            ("limits.http_response_timeout", self.http_response_timeout),
        ];
        for (key, value) in required {
            if value.is_zero() {
                return Err(invalid(key, "must be more than 0"));
            }
        }
        if !(self.listen_rate_per_ip.is_finite() && self.listen_rate_per_ip >= 0.0) {
            return Err(invalid(
                "limits.listen_rate_per_ip",
                "must be a non-negative number",
            ));
        }
        if self.listen_burst_per_ip > 0 && self.listen_rate_per_ip == 0.0 {
            return Err(invalid(
                "limits.listen_rate_per_ip",
                "must be more than 0 while listen_burst_per_ip limits listen attempts",
            ));
        }
        Ok(())
    }
}

fn validate_hc_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let trimmed = name.trim_matches('/');
    if trimmed.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.~/".contains(c);
    if !trimmed.chars().all(ok_char) || trimmed.split('/').any(|s| s.is_empty() || s == "$hc") {
        return Err(invalid(
            key,
            format!(
                "{name:?} must be segments of letters, digits, '-', '_', '.', '~' joined by '/'"
            ),
        ));
    }
    Ok(())
}

fn validate_rules(key: &str, rules: &[SasRule]) -> Result<(), ConfigError> {
    for (i, rule) in rules.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let ok_len = |s: &str| (1..=hc_protocol::sas::MAX_KEY_LEN).contains(&s.chars().count());
        if !ok_len(&rule.name) {
            return Err(invalid(format!("{key}.name"), "must be 1..=256 characters"));
        }
        if !ok_len(rule.key.expose()) {
            return Err(invalid(format!("{key}.key"), "must be 1..=256 characters"));
        }
        if rule.rights.is_empty() {
            return Err(invalid(
                format!("{key}.rights"),
                "must name at least one of Listen, Send, Manage",
            ));
        }
        if rules[..i].iter().any(|r| r.name == rule.name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("rule {:?} is defined twice", rule.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[hybrid_connection]]
        name = "license"
        [[hybrid_connection.rule]]
        name = "listen"
        key = "k1"
        rights = ["Listen"]
    "#;

    #[test]
    fn minimal_file_gets_defaults() {
        let c = RelayConfig::from_toml_str(MINIMAL).expect("valid");
        assert_eq!(c.hybrid_connections[0].name, "license");
        assert!(c.hybrid_connections[0].requires_client_authorization);
        assert!(matches!(c.tls, TlsConfig::SelfSigned { .. }));
        assert_eq!(c.limits.max_listeners_per_hc, 25);
        assert_eq!(c.limits.rendezvous_timeout, Duration::from_secs(15));
    }

    #[test]
    fn durations_in_the_shared_syntax_or_the_older_seconds_keys() {
        let c = RelayConfig::from_toml_str(&format!(
            "{MINIMAL}\n[limits]\nidle_timeout = \"90m\"\nrendezvous_timeout = \"1500ms\"\nshutdown_grace = 4\n"
        ))
        .expect("durations");
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(5400));
        assert_eq!(c.limits.rendezvous_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.shutdown_grace, Duration::from_secs(4));
        let c = RelayConfig::from_toml_str(&format!(
            "{MINIMAL}\n[limits]\nidle_timeout_secs = 0\nrendezvous_timeout_secs = 20.5\n"
        ))
        .expect("older keys");
        assert_eq!(c.limits.idle_timeout, Duration::ZERO);
        assert_eq!(c.limits.rendezvous_timeout, Duration::from_millis(20_500));
        let file: toml::Table = "[limits]\nidle_timeout_secs = 20.5\nshutdown_grace = \"4s\"\n"
            .parse()
            .expect("toml");
        assert_eq!(
            deprecated_keys(&file),
            ["limits.idle_timeout_secs = 20.5 is deprecated; write idle_timeout = \"20s 500ms\""]
        );
        let err = RelayConfig::from_toml_str(&format!(
            "{MINIMAL}\n[limits]\nhandshake_timeout = \"soon\"\n"
        ))
        .expect_err("not a duration");
        assert!(
            err.to_string().contains("\"soon\" is not a duration"),
            "{err}"
        );
        let err = RelayConfig::from_toml_str(&format!(
            "{MINIMAL}\n[limits]\nhandshake_timeout = \"0s\"\n"
        ))
        .expect_err("zero");
        assert!(
            err.to_string().starts_with("limits.handshake_timeout"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = RelayConfig::from_toml_str(&format!("{MINIMAL}\n[limits]\nmax_conections = 3\n"))
            .expect_err("typo");
        assert!(err.to_string().contains("max_conections"), "{err}");
        let err =
            RelayConfig::from_toml_str(&format!("[tls]\nmode = \"plain\"\ncert = 1\n{MINIMAL}"))
                .expect_err("unknown tls key");
        assert!(err.to_string().contains("cert"), "{err}");
        let err =
            RelayConfig::from_toml_str(&format!("[tls]\nmode = \"plain\"\nnames = []\n{MINIMAL}"))
                .expect_err("names with plain");
        assert!(err.to_string().contains("tls.names"), "{err}");
        let err = RelayConfig::from_toml_str(&format!("[tls]\nmode = \"pem-files\"\n{MINIMAL}"))
            .expect_err("pem without files");
        assert!(err.to_string().contains("tls.cert_file"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        let no_listen = MINIMAL.replace("\"Listen\"", "\"Send\"");
        let err = RelayConfig::from_toml_str(&no_listen).expect_err("no listen");
        assert!(
            err.to_string().starts_with("hybrid_connection[0].rule"),
            "{err}"
        );
        let frame = format!("{MINIMAL}\n[limits]\nmax_frame_bytes = 10\nmax_message_bytes = 5\n");
        let err = RelayConfig::from_toml_str(&frame).expect_err("frame > message");
        assert!(
            err.to_string().starts_with("limits.max_frame_bytes"),
            "{err}"
        );
        let err = RelayConfig::from_toml_str(&format!(
            "{MINIMAL}\n[access]\nallow = [\"10.0.0.0/33\"]\n"
        ))
        .expect_err("cidr");
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn manage_grants_everything() {
        let rule = SasRule::new("m", "k", &[Right::Manage]);
        assert!(rule.grants(Right::Listen) && rule.grants(Right::Send));
        let send = SasRule::new("s", "k", &[Right::Send]);
        assert!(!send.grants(Right::Listen));
    }

    #[test]
    fn secrets_do_not_reach_debug() {
        let c = RelayConfig::from_toml_str(MINIMAL).expect("valid");
        assert!(!format!("{c:?}").contains("k1"));
    }
}
