//! How the relay speaks TLS: the runtime [`TlsConfig`] and its option, [`TlsOptions`], which is
//! at once the file's `[tls]` table and the command line's `--cert`, `--key`, `--self-signed`,
//! `--tls-name` and `--insecure-plain-ws` (one definition for both).

use std::path::PathBuf;

use hc_protocol::Secret;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// How the relay speaks TLS. In TOML: `[tls] mode = "self-signed" | "pem-files" | "plain"`,
/// with `names` (self-signed) or `cert_file` and `key_file` (pem-files); see [`TlsOptions`].
#[derive(Debug, Clone)]
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

/// The relay's TLS option: the file's `[tls]` table and the flags that choose the same thing.
/// The file names the mode (`mode = "pem-files"`); a flag implies it (`--cert`/`--key`:
/// PEM files, `--self-signed`/`--tls-name`: self-signed, `--insecure-plain-ws`: plain). A
/// layer that chooses a mode replaces the lower layer's TLS as a whole (merging a certificate
/// of one layer with the key of another would pair files that do not belong together).
#[derive(clap::Args, Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// `self-signed`, `pem-files` or `plain` (file only: the flags imply it).
    #[arg(skip)]
    pub mode: Option<String>,
    /// TLS certificate chain, PEM (leaf first). Needs --key.
    #[arg(
        long = "cert",
        value_name = "PEM",
        requires = "key_file",
        conflicts_with_all = ["self_signed", "insecure_plain_ws", "names"]
    )]
    pub cert_file: Option<PathBuf>,
    /// TLS private key, PEM. Needs --cert.
    #[arg(long = "key", value_name = "PEM", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// A name (DNS or IP) for the self-signed certificate; repeatable
    /// [default: localhost, 127.0.0.1, ::1 and --public-host].
    #[arg(
        long = "tls-name",
        value_name = "NAME",
        conflicts_with = "insecure_plain_ws"
    )]
    pub names: Option<Vec<String>>,
    /// Generate a self-signed certificate (the default unless the configuration says otherwise).
    #[arg(long, conflicts_with = "insecure_plain_ws")]
    #[serde(skip)]
    pub self_signed: bool,
    /// Serve plain ws:// without TLS. Tokens and data then cross the network in clear: only
    /// for tests on one machine.
    #[arg(long)]
    #[serde(skip)]
    pub insecure_plain_ws: bool,
}

impl config_syntax::Merge for TlsOptions {
    fn merge(&mut self, lower: Self) {
        if self.mode().is_none() {
            *self = lower;
        }
    }
}

impl TlsOptions {
    /// The mode these options choose, named or implied; `None` when they say nothing.
    fn mode(&self) -> Option<&str> {
        if let Some(mode) = &self.mode {
            Some(mode)
        } else if self.insecure_plain_ws {
            Some("plain")
        } else if self.cert_file.is_some() || self.key_file.is_some() {
            Some("pem-files")
        } else if self.self_signed || self.names.is_some() {
            Some("self-signed")
        } else {
            None
        }
    }

    /// The TLS these options choose, or `None` when they say nothing (the lower layer's, else
    /// the default self-signed certificate, applies).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key that does not fit the mode, or an unknown mode.
    pub fn to_config(&self) -> Result<Option<TlsConfig>, ConfigError> {
        let Some(mode) = self.mode() else {
            return Ok(None);
        };
        let only = |key: &str, mode: &str| {
            invalid(
                format!("tls.{key}"),
                format!("only valid with mode = \"{mode}\""),
            )
        };
        let config = match mode {
            "plain" | "self-signed" if self.cert_file.is_some() => {
                return Err(only("cert_file", "pem-files"));
            }
            "plain" | "self-signed" if self.key_file.is_some() => {
                return Err(only("key_file", "pem-files"));
            }
            "plain" | "pem-files" if self.names.is_some() => {
                return Err(only("names", "self-signed"));
            }
            "plain" => TlsConfig::Plain,
            "self-signed" => TlsConfig::SelfSigned {
                names: self.names.clone().unwrap_or_else(default_self_signed_names),
            },
            "pem-files" => match (&self.cert_file, &self.key_file) {
                (Some(cert_file), Some(key_file)) => TlsConfig::PemFiles {
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                },
                (cert, _) => {
                    let missing = if cert.is_none() {
                        "cert_file"
                    } else {
                        "key_file"
                    };
                    return Err(invalid(
                        format!("tls.{missing}"),
                        "tls.cert_file and tls.key_file are required with mode = \"pem-files\"",
                    ));
                }
            },
            other => {
                return Err(invalid(
                    "tls.mode",
                    format!("{other:?} is not one of \"self-signed\", \"pem-files\", \"plain\""),
                ));
            }
        };
        Ok(Some(config))
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
