//! The relay's configuration: which hybrid connections it hosts, their SAS rules, TLS, limits
//! and client access lists.
//!
//! A [`RelayConfig`] is built in code (tests) or read from TOML ([`RelayConfig::from_toml_str`],
//! [`RelayConfig::from_file`]). Every table refuses unknown keys, and [`RelayConfig::validate`]
//! rejects contradictions with a message naming the key (`hybrid_connection[0].rule[1].key`),
//! before any socket is bound. Durations use the one syntax of every dongle-relay file and flag
//! (`config_syntax`: `"30s"`, `"5m"`, or a number of seconds; the older `*_secs` key names
//! are still read), sizes are in bytes (`*_bytes`).
//!
//! The file is read into two parts of one table: the keys that are also flags
//! ([`RelayOptions`]: `bind`, `[tls]`), layered under the command line's
//! ([`RelayConfig::from_file_under`]), and the deployment description (this module's
//! [`RelayConfig`] keys). Concepts: `options` (the flag-and-key options), `tls`, `limits`,
//! `rules` (hybrid connections and SAS rules).

mod limits;
mod options;
mod rules;
mod tls;

use limits::deprecated_keys;
pub use limits::{AZURE_MAX_LISTENERS_PER_HC, Limits};
pub use options::RelayOptions;
pub use rules::{HybridConnectionConfig, Right, SasRule};
use rules::{validate_hc_name, validate_rules};
pub use tls::{TlsConfig, TlsOptions, default_self_signed_names};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config_syntax::AccessList;
use serde::Deserialize;

use crate::stats::RelayStats;

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

pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole relay configuration. Its file keys are the ones below; `bind` and `[tls]` are
/// [`RelayOptions`]' (the file refuses a key neither knows).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RelayConfig {
    /// Address the CLI binds (the library is handed an already bound listener): the option
    /// `bind` ([`RelayOptions::bind`]).
    #[serde(skip)]
    pub bind: Option<SocketAddr>,
    /// TLS: PEM files, a generated self-signed certificate (the default), or plain `ws://`:
    /// the option `[tls]` ([`TlsOptions`]).
    #[serde(skip)]
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
        Self::from_parts(Self::parse(text)?, RelayOptions::default())
    }

    /// Reads, parses and validates a TOML file. Relative PEM paths are resolved against the
    /// file's directory.
    ///
    /// # Errors
    /// As [`RelayConfig::from_toml_str`], plus [`ConfigError::Read`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file_under(path, RelayOptions::default())
    }

    /// [`RelayConfig::from_file`] with `flags` (the command line's options) layered over the
    /// file's: a flag wins over its key.
    ///
    /// # Errors
    /// As [`RelayConfig::from_file`].
    pub fn from_file_under(path: &Path, flags: RelayOptions) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let (mut options, config) = Self::parse(&text).map_err(|err| match err {
            ConfigError::Toml(e) => invalid(path.display().to_string(), e.to_string()),
            other => other,
        })?;
        if let Some(dir) = path.parent() {
            let tls = &mut options.tls;
            for file in [&mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .flatten()
            {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Self::from_parts((options, config), flags)
    }

    /// The built-in configuration `self` (no file) with `flags` applied, validated.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn under(self, flags: RelayOptions) -> Result<Self, ConfigError> {
        let file = RelayOptions {
            bind: self.bind,
            tls: TlsOptions::default(),
        };
        Self::from_parts((file, self), flags)
    }

    /// The file's two parts: its options and the rest. Warns about the deprecated keys it uses.
    fn parse(text: &str) -> Result<(RelayOptions, Self), ConfigError> {
        let parts = config_syntax::layers::from_toml_pair(text)?;
        if let Ok(table) = text.parse::<toml::Table>() {
            for line in deprecated_keys(&table) {
                tracing::warn!("relay configuration: {line}");
            }
        }
        Ok(parts)
    }

    /// `flags` over the file's options, applied to the file's configuration, validated.
    fn from_parts(
        (file, mut config): (RelayOptions, Self),
        flags: RelayOptions,
    ) -> Result<Self, ConfigError> {
        let options = config_syntax::layered(flags, file);
        config.bind = options.bind.or(config.bind);
        if let Some(tls) = options.tls.to_config()? {
            config.tls = tls;
        }
        config.validate()?;
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

#[cfg(test)]
mod tests;
