//! Azure-style relay connection strings:
//! `Endpoint=sb://HOST[:PORT]/;SharedAccessKeyName=NAME;SharedAccessKey=KEY;EntityPath=HC`.
//!
//! Keys are matched case-insensitively, as the .NET `RelayConnectionStringBuilder` does.
//! `SharedAccessSignature=` (a pre-made token) may replace the key name and key. The endpoint
//! scheme `sb://` and `wss://` mean TLS; `ws://` means plain WebSocket and is only for a
//! self-hosted relay that was explicitly started without TLS.

use std::fmt;
use std::str::FromStr;

use crate::secret::Secret;
use crate::uri::RelayEndpoint;

/// Why a connection string was refused. Messages name the offending key and never the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    /// A `;`-separated part has no `=`.
    #[error("connection string part {0:?} is not KEY=VALUE")]
    NotKeyValue(String),
    /// A key the format does not define.
    #[error(
        "unknown connection string key '{0}' (expected Endpoint, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, EntityPath, OperationTimeout)"
    )]
    UnknownKey(String),
    /// A key given twice.
    #[error("connection string key '{0}' is given twice")]
    DuplicateKey(String),
    /// A required key is missing.
    #[error("connection string has no '{0}'")]
    Missing(&'static str),
    /// The endpoint is not `sb://`, `wss://` or `ws://` with a host.
    #[error("connection string Endpoint {0:?} is not sb://HOST[:PORT]/")]
    BadEndpoint(String),
    /// Neither a key nor a signature is present, or both are.
    #[error(
        "connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"
    )]
    Credentials,
}

/// How a client proves its rights: a key to sign fresh tokens with, or a fixed token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A SAS rule: the client signs (and renews) its own tokens.
    Key {
        /// The rule name (`SharedAccessKeyName`).
        key_name: String,
        /// The rule key (`SharedAccessKey`).
        key: Secret,
    },
    /// A pre-issued token (`SharedAccessSignature`); it cannot be renewed.
    Token(Secret),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key { key_name, .. } => write!(f, "Key {{ key_name: {key_name:?}, key: *** }}"),
            Self::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// A parsed connection string.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnectionString {
    /// Where the relay is.
    pub endpoint: RelayEndpoint,
    /// How to authenticate.
    pub credentials: Credentials,
    /// The hybrid connection name (`EntityPath`), if given.
    pub entity_path: Option<String>,
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        let mut signature = None;
        let mut entity_path = None;
        let mut timeout = None;
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| ConnectionStringError::NotKeyValue(redact(part)))?;
            let (name, value) = (name.trim(), value.trim().to_owned());
            let slot = match name.to_ascii_lowercase().as_str() {
                "endpoint" => &mut endpoint,
                "sharedaccesskeyname" => &mut key_name,
                "sharedaccesskey" => &mut key,
                "sharedaccesssignature" => &mut signature,
                "entitypath" => &mut entity_path,
                // Accepted for compatibility with .NET strings; timeouts are our own settings.
                "operationtimeout" => &mut timeout,
                _ => return Err(ConnectionStringError::UnknownKey(name.to_owned())),
            };
            if slot.replace(value).is_some() {
                return Err(ConnectionStringError::DuplicateKey(name.to_owned()));
            }
        }
        let endpoint = endpoint.ok_or(ConnectionStringError::Missing("Endpoint"))?;
        let endpoint = RelayEndpoint::parse(&endpoint)
            .map_err(|_| ConnectionStringError::BadEndpoint(endpoint.clone()))?;
        let credentials = match (key_name, key, signature) {
            (Some(key_name), Some(key), None) if !key_name.is_empty() && !key.is_empty() => {
                Credentials::Key {
                    key_name,
                    key: Secret::new(key),
                }
            }
            (None, None, Some(sig)) if !sig.is_empty() => Credentials::Token(Secret::new(sig)),
            _ => return Err(ConnectionStringError::Credentials),
        };
        let entity_path = entity_path
            .map(|p| p.trim_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        Ok(Self {
            endpoint,
            credentials,
            entity_path,
        })
    }
}

impl ConnectionString {
    /// The connection string as text (`Endpoint=sb://host:port/;SharedAccessKeyName=…;
    /// SharedAccessKey=…[;EntityPath=…]`). It contains the key or token, hence a [`Secret`].
    /// A plain (`ws://`) endpoint is written as `ws://`.
    pub fn to_secret_string(&self) -> Secret {
        let scheme = if self.endpoint.tls { "sb" } else { "ws" };
        let mut out = format!("Endpoint={scheme}://{}/", self.endpoint.authority());
        match &self.credentials {
            Credentials::Key { key_name, key } => {
                out.push_str(&format!(
                    ";SharedAccessKeyName={key_name};SharedAccessKey={}",
                    key.expose()
                ));
            }
            Credentials::Token(token) => {
                out.push_str(&format!(";SharedAccessSignature={}", token.expose()));
            }
        }
        if let Some(path) = &self.entity_path {
            out.push_str(&format!(";EntityPath={path}"));
        }
        Secret::new(out)
    }
}

/// Hides everything after the first `=` so a malformed part cannot leak a key into an error.
fn redact(part: &str) -> String {
    if part.len() > 24 {
        format!(
            "{}…",
            &part[..part.char_indices().nth(12).map_or(part.len(), |(i, _)| i)]
        )
    } else {
        part.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_azure_connection_string() {
        let cs: ConnectionString = "Endpoint=sb://contoso.servicebus.windows.net/;\
            SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=abc=;EntityPath=hyco"
            .parse()
            .expect("parse");
        assert_eq!(cs.endpoint.host, "contoso.servicebus.windows.net");
        assert_eq!(cs.endpoint.port, 443);
        assert!(cs.endpoint.tls);
        assert_eq!(cs.entity_path.as_deref(), Some("hyco"));
        match &cs.credentials {
            Credentials::Key { key_name, key } => {
                assert_eq!(key_name, "RootManageSharedAccessKey");
                assert_eq!(key.expose(), "abc=");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn keys_are_case_insensitive_and_ports_kept() {
        let cs: ConnectionString =
            "endpoint=sb://127.0.0.1:9443/;sharedaccesskeyname=a;sharedaccesskey=b"
                .parse()
                .expect("parse");
        assert_eq!(cs.endpoint.port, 9443);
        assert_eq!(cs.entity_path, None);
        let plain: ConnectionString = "Endpoint=ws://localhost:8080/;SharedAccessSignature=tok"
            .parse()
            .expect("parse");
        assert!(!plain.endpoint.tls);
        assert_eq!(plain.credentials, Credentials::Token(Secret::new("tok")));
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let err = "Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=topsecret;Bogus=1"
            .parse::<ConnectionString>()
            .expect_err("unknown key");
        assert_eq!(err, ConnectionStringError::UnknownKey("Bogus".into()));
        assert!(!err.to_string().contains("topsecret"));
        assert_eq!(
            "SharedAccessKeyName=a;SharedAccessKey=b".parse::<ConnectionString>(),
            Err(ConnectionStringError::Missing("Endpoint"))
        );
        assert_eq!(
            "Endpoint=http://h/;SharedAccessKeyName=a;SharedAccessKey=b"
                .parse::<ConnectionString>(),
            Err(ConnectionStringError::BadEndpoint("http://h/".into()))
        );
        assert_eq!(
            "Endpoint=sb://h/;SharedAccessKeyName=a".parse::<ConnectionString>(),
            Err(ConnectionStringError::Credentials)
        );
        assert_eq!(
            "Endpoint=sb://h/;Endpoint=sb://g/".parse::<ConnectionString>(),
            Err(ConnectionStringError::DuplicateKey("Endpoint".into()))
        );
    }

    #[test]
    fn formats_back_to_text() {
        let text = "Endpoint=sb://relay.example:9443/;SharedAccessKeyName=send;SharedAccessKey=k=;EntityPath=license";
        let cs: ConnectionString = text.parse().expect("parse");
        assert_eq!(cs.to_secret_string().expose(), text);
        let plain: ConnectionString =
            "Endpoint=ws://127.0.0.1:8080;SharedAccessSignature=SharedAccessSignature sr=x"
                .parse()
                .expect("parse");
        let again: ConnectionString = plain.to_secret_string().expose().parse().expect("reparse");
        assert_eq!(again, plain);
    }

    #[test]
    fn debug_masks_key() {
        let cs: ConnectionString =
            "Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=topsecret"
                .parse()
                .expect("parse");
        assert!(!format!("{cs:?}").contains("topsecret"));
    }
}
