//! The headquarters configuration (`dongle-relay hq --config hq.toml`): where the view listens,
//! its own token, a time limit per host, and the dongle hosts — each with a display name, the
//! way to its admin endpoint (a direct `url`, or a relay connection string with the Send
//! right) and its admin token. Secrets are never written in the file itself: tokens and
//! connection strings come from files or environment variables it names, and relative paths
//! are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hc_client::access::AccessConfig;
use hc_client::settings::{EgressSection, SettingError, TlsSection};
use hc_client::{DialTimeouts, Dialer, Egress, RelayAccess};
use hc_protocol::{ConnectionString, Secret};
use ops_http::BearerToken;
use serde::Deserialize;

/// Where the view listens unless configured: loopback, next to the admin endpoint's 12380.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 12390);
/// How long one host may take to answer (all of its requests together) unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the configuration cannot be used. Messages name the file, host and key, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this format.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message (with the line).
        source: Box<toml::de::Error>,
    },
    /// A host's setting is wrong.
    #[error("host {host:?}: {reason}")]
    Host {
        /// The host's name (or its position when it has none).
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting outside the hosts is wrong.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// No host is configured.
    #[error("no [[host]] configured: the view would be empty")]
    NoHosts,
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    bind: Option<SocketAddr>,
    token_file: Option<PathBuf>,
    #[serde(
        default,
        deserialize_with = "config_syntax::duration::deserialize_option"
    )]
    timeout: Option<Duration>,
    #[serde(default)]
    egress: EgressSection,
    #[serde(default, rename = "host")]
    hosts: Vec<HostEntry>,
}

/// One `[[host]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    name: Option<String>,
    url: Option<String>,
    connection_string_file: Option<PathBuf>,
    connection_string_env: Option<String>,
    hybrid_connection: Option<String>,
    #[serde(default)]
    tls: TlsSection,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
}

/// The configuration, checked: every secret read, every relay access built.
#[derive(Debug)]
pub struct HqConfig {
    /// Where the view listens.
    pub bind: SocketAddr,
    /// The view's own token, from `token_file` (the command line may give another).
    pub token: Option<BearerToken>,
    /// How long one host may take.
    pub timeout: Duration,
    /// The hosts, in the file's order.
    pub hosts: Vec<HostConfig>,
}

/// One dongle host.
#[derive(Debug)]
pub struct HostConfig {
    /// Its display name.
    pub name: String,
    /// Its admin endpoint's token.
    pub token: BearerToken,
    /// The way to its admin endpoint.
    pub route: Route,
}

/// The way to a host's admin endpoint.
#[derive(Debug)]
pub enum Route {
    /// `http://host:port[/base]`, reached directly.
    Direct {
        /// Opens the TCP connection.
        dialer: Box<Dialer>,
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
        /// A path prefix (`""`, or `/admin` behind a reverse proxy).
        base: String,
    },
    /// Through the relay's HTTP request mode, with a Send token.
    Relay(Box<RelayAccess>),
}

impl Route {
    /// How the host is reached, for the page (no secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Direct {
                host, port, base, ..
            } => format!("http://{host}:{port}{base}/"),
            Self::Relay(access) => {
                let endpoint = access.endpoint();
                let scheme = if endpoint.tls { "https" } else { "http" };
                format!(
                    "relay {scheme}://{}/{}/",
                    endpoint.authority(),
                    access.entity_path()
                )
            }
        }
    }
}

impl HqConfig {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, host and key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: shown,
                source,
            },
            other => other,
        })
    }

    /// Checks the configuration `text`; relative paths are relative to `base`.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: String::new(),
            source: Box::new(source),
        })?;
        let timeout = file.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let egress = file.egress.to_egress(None, None, None, None)?;
        if file.hosts.is_empty() {
            return Err(ConfigError::NoHosts);
        }
        let mut hosts: Vec<HostConfig> = Vec::new();
        for (i, entry) in file.hosts.into_iter().enumerate() {
            let host = entry.build(i, base, timeout, &egress)?;
            if hosts.iter().any(|h| h.name == host.name) {
                return Err(ConfigError::Host {
                    host: host.name,
                    reason: "two hosts have this name".to_owned(),
                });
            }
            hosts.push(host);
        }
        let token = match file.token_file {
            Some(path) => Some(
                BearerToken::from_file(&base.join(path))
                    .map_err(|e| SettingError::new("token_file", e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            bind: file.bind.unwrap_or(DEFAULT_BIND),
            token,
            timeout,
            hosts,
        })
    }
}

impl HostEntry {
    fn build(
        self,
        index: usize,
        base: &Path,
        timeout: Duration,
        egress: &Egress,
    ) -> Result<HostConfig, ConfigError> {
        let name = self
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ConfigError::Host {
                host: format!("#{}", index + 1),
                reason: "name is missing".to_owned(),
            })?;
        let bad = |reason: String| ConfigError::Host {
            host: name.clone(),
            reason,
        };
        let token_text = secret(
            base,
            self.token_file.as_ref(),
            self.token_env.as_ref(),
            "token",
        )
        .map_err(&bad)?;
        let token = BearerToken::new(token_text.expose())
            .map_err(|e| bad(format!("its admin token: {e}")))?;
        let timeouts = DialTimeouts {
            connect: timeout,
            handshake: timeout,
        };
        let relayed = self.connection_string_file.is_some() || self.connection_string_env.is_some();
        let route = match (self.url.as_deref(), relayed) {
            (Some(_), true) => {
                return Err(bad(
                    "give either url (direct) or a connection string (through the relay), not both"
                        .to_owned(),
                ));
            }
            (None, false) => {
                return Err(bad(
                    "give url = \"http://host:12380\" (direct) or connection_string_file / \
                     connection_string_env (through the relay)"
                        .to_owned(),
                ));
            }
            (Some(url), false) => direct(url, timeouts).map_err(&bad)?,
            (None, true) => {
                let text = secret(
                    base,
                    self.connection_string_file.as_ref(),
                    self.connection_string_env.as_ref(),
                    "connection_string",
                )
                .map_err(&bad)?;
                let connection: ConnectionString = text
                    .expose()
                    .parse()
                    .map_err(|e| bad(format!("its connection string: {e}")))?;
                let mut access = AccessConfig::new(connection);
                access.entity_path = self.hybrid_connection.clone();
                access.trust = self.tls.to_trust().map_err(|e| bad(e.to_string()))?;
                access.egress = egress.clone();
                access.timeouts = timeouts;
                let access = RelayAccess::new(access).map_err(|e| bad(e.to_string()))?;
                Route::Relay(Box::new(access))
            }
        };
        Ok(HostConfig { name, token, route })
    }
}

/// A direct route from `http://host:port[/base]`.
fn direct(text: &str, timeouts: DialTimeouts) -> Result<Route, String> {
    let url = url::Url::parse(text).map_err(|e| format!("url {text:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "url {text:?}: the admin endpoint speaks http:// (a host behind NAT: use the relay)"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("url {text:?} has no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("url {text:?} has no port"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("url {text:?}: no query or fragment, please"));
    }
    // The dialer opens plain TCP here (the admin endpoint has no TLS); it wants a TLS
    // configuration all the same, which stays unused.
    let tls = hc_client::TrustConfig::default()
        .client_config()
        .map_err(|e| e.to_string())?;
    let dialer = Dialer::new(
        tls,
        Egress::Direct,
        timeouts,
        hc_client::dial::ws_config(64 * 1024),
    );
    Ok(Route::Direct {
        dialer: Box::new(dialer),
        host,
        port,
        base: url.path().trim_end_matches('/').to_owned(),
    })
}

/// A secret from `file` (its first line; relative to `base`) or the environment variable
/// `env`: exactly one of them.
fn secret(
    base: &Path,
    file: Option<&PathBuf>,
    env: Option<&String>,
    key: &str,
) -> Result<Secret, String> {
    let text = match (file, env) {
        (Some(_), Some(_)) => {
            return Err(format!("give either {key}_file or {key}_env, not both"));
        }
        (None, None) => return Err(format!("{key}_file or {key}_env is missing")),
        (Some(file), None) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{key}_file {}: {e}", path.display()))?;
            text.lines().next().unwrap_or_default().trim().to_owned()
        }
        (None, Some(name)) => std::env::var(name)
            .map_err(|_| format!("{key}_env: the environment variable {name} is not set"))?
            .trim()
            .to_owned(),
    };
    if text.is_empty() {
        return Err(format!("{key}: empty"));
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "host-token-0123456789abcdef";

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn hosts_direct_and_through_the_relay() {
        let dir = dir_with(&[
            ("a.token", &format!("{TOKEN}\n")),
            (
                "b.cs",
                "Endpoint=sb://relay.example.net/;SharedAccessKeyName=send;SharedAccessKey=k0123;EntityPath=paris\n",
            ),
            ("hq.token", "hq-token-0123456789abcdef\n"),
        ]);
        let config = HqConfig::parse(
            r#"
            token_file = "hq.token"
            timeout = "3s"
            [[host]]
            name = "Berlin"
            url = "http://10.0.0.5:12380"
            token_file = "a.token"
            [[host]]
            name = "Paris"
            connection_string_file = "b.cs"
            token_file = "a.token"
            tls.pin_sha256 = []
            "#,
            dir.path(),
        )
        .expect("config");
        assert_eq!(config.bind, DEFAULT_BIND);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert!(config.token.is_some());
        assert_eq!(config.hosts[0].route.describe(), "http://10.0.0.5:12380/");
        assert_eq!(
            config.hosts[1].route.describe(),
            "relay https://relay.example.net:443/paris/"
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("k0123") && !shown.contains(TOKEN),
            "{shown}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let dir = dir_with(&[("a.token", TOKEN)]);
        let err = |text: &str| {
            HqConfig::parse(text, dir.path())
                .expect_err("refused")
                .to_string()
        };
        assert!(err("").contains("no [[host]]"));
        assert!(err("[[host]]\nurl = \"http://h:1\"\ntoken_file = \"a.token\"").contains("#1"));
        let both = err(
            "[[host]]\nname = \"x\"\nurl = \"http://h:1\"\nconnection_string_env = \"X\"\ntoken_file = \"a.token\"",
        );
        assert!(both.contains("not both"), "{both}");
        let https = err("[[host]]\nname = \"x\"\nurl = \"https://h:1\"\ntoken_file = \"a.token\"");
        assert!(https.contains("http://"), "{https}");
        let missing = err("[[host]]\nname = \"x\"\nurl = \"http://h:1\"\ntoken_file = \"none\"");
        assert!(
            missing.contains("token_file") && missing.contains("\"x\""),
            "{missing}"
        );
        let twice = err(
            "[[host]]\nname = \"x\"\nurl = \"http://h:1\"\ntoken_file = \"a.token\"\n\
             [[host]]\nname = \"x\"\nurl = \"http://h:2\"\ntoken_file = \"a.token\"",
        );
        assert!(twice.contains("two hosts"), "{twice}");
        assert!(err("colour = 1").contains("colour"));
    }
}
