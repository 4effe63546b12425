//! A component's access to one hybrid connection: the relay endpoint, the entity path, the
//! credentials (as a [`TokenSource`]) and a [`Dialer`], with the four dials of the protocol:
//!
//! - **listen**: the listener's control channel (`sb-hc-action=listen`, token header);
//! - **connect**: a sender's WebSocket (`sb-hc-action=connect`, fresh `sb-hc-id`, token header,
//!   custom headers, subprotocol offer);
//! - **accept**: the listener's dial-back to an accept address, used as-is, no token;
//! - **reject**: the accept address plus status and description; the relay answers 410.

use std::net::SocketAddr;
use std::time::Duration;

use hc_protocol::connection_string::ConnectionString;
use hc_protocol::status::HTTP_GONE;
use hc_protocol::uri::{Action, reject_url};
use hc_protocol::{RelayEndpoint, UriError};
use url::Url;

use crate::dial::{DialError, DialRequest, DialTimeouts, Dialer, RelayStream, ws_config};
use crate::egress::Egress;
use crate::resolve::Resolver;
use crate::token::{IssuedToken, TokenError, TokenSource};
use crate::trust::{TrustConfig, TrustError};

/// The access could not be set up, or a dial could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Neither the connection string's `EntityPath` nor the configuration names the hybrid
    /// connection.
    #[error("no hybrid connection name: add EntityPath=… to the connection string")]
    NoEntityPath,
    /// The connection string's `EntityPath` and the configured name differ.
    #[error(
        "connection string EntityPath {in_string:?} differs from the configured hybrid connection {configured:?}"
    )]
    EntityPathMismatch {
        /// From the connection string.
        in_string: String,
        /// From the configuration.
        configured: String,
    },
    /// The TLS trust configuration is unusable.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A URI could not be built.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// A token could not be issued.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The dial failed.
    #[error(transparent)]
    Dial(#[from] DialError),
}

impl AccessError {
    /// Whether the relay could not be reached at all (connect failed or timed out, the
    /// connection was reset during the handshake, the egress proxy failed), as opposed to the
    /// relay answering and refusing, or a local problem: worth retrying soon.
    pub fn relay_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Dial(
                DialError::Timeout { .. } | DialError::Handshake { .. } | DialError::Egress(_)
            )
        )
    }

    /// Whether the relay answered 404: no listener is connected (yet; after a relay restart
    /// the listener reconnects within seconds), or the hybrid connection does not exist.
    pub fn no_listener(&self) -> bool {
        matches!(self, Self::Dial(e @ DialError::Refused { .. }) if e.status() == Some(404))
    }
}

/// Everything needed to reach one hybrid connection.
#[derive(Debug)]
pub struct RelayAccess {
    endpoint: RelayEndpoint,
    entity_path: String,
    tokens: TokenSource,
    dialer: Dialer,
    /// The one address of the endpoint's host this access dials (a replica behind a name
    /// with several addresses); `None`: the host is resolved at every dial.
    address: Option<SocketAddr>,
}

/// Settings from which a [`RelayAccess`] is built.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The parsed connection string.
    pub connection: ConnectionString,
    /// The hybrid connection name when the connection string has no `EntityPath`.
    pub entity_path: Option<String>,
    /// Relay certificate trust.
    pub trust: TrustConfig,
    /// The way out to the relay.
    pub egress: Egress,
    /// Dial timeouts.
    pub timeouts: DialTimeouts,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// Largest WebSocket message sent (the pump's `max_frame`), which sizes buffers.
    pub max_frame: usize,
    /// More relays serving the same hybrid connection (replicas, or Azure namespaces), besides
    /// the connection string's endpoint; same credentials and settings (see
    /// [`crate::replicas`]).
    pub relays: Vec<RelayEndpoint>,
    /// How relay host names are resolved into replicas (see [`crate::resolve`]).
    pub resolver: Resolver,
    /// How often relay host names are resolved again to follow replicas that were added,
    /// removed or moved (also after a replica could not be reached).
    pub resolve_interval: Duration,
}

impl AccessConfig {
    /// Defaults for everything but the connection string.
    pub fn new(connection: ConnectionString) -> Self {
        Self {
            connection,
            entity_path: None,
            trust: TrustConfig::default(),
            egress: Egress::Direct,
            timeouts: DialTimeouts::default(),
            token_ttl: TokenSource::DEFAULT_TTL,
            max_frame: 64 * 1024,
            relays: Vec::new(),
            resolver: Resolver::default(),
            resolve_interval: Self::DEFAULT_RESOLVE_INTERVAL,
        }
    }

    /// The default of [`AccessConfig::resolve_interval`].
    pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

    /// One configuration per relay: this one, then one per entry of `relays` (each with that
    /// endpoint and no further relays). Duplicates are left out.
    pub fn replicas(&self) -> Vec<AccessConfig> {
        let mut out = vec![AccessConfig {
            relays: Vec::new(),
            ..self.clone()
        }];
        for endpoint in &self.relays {
            if out.iter().any(|c| &c.connection.endpoint == endpoint) {
                continue;
            }
            let mut replica = out[0].clone();
            replica.connection.endpoint = endpoint.clone();
            out.push(replica);
        }
        out
    }
}

impl RelayAccess {
    /// Validates the settings and loads the TLS trust.
    ///
    /// # Errors
    /// [`AccessError`] for a missing or conflicting hybrid connection name or unusable trust.
    pub fn new(config: AccessConfig) -> Result<Self, AccessError> {
        let entity_path = match (config.connection.entity_path, config.entity_path) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b.trim_matches('/')) => {
                return Err(AccessError::EntityPathMismatch {
                    in_string: a,
                    configured: b,
                });
            }
            (Some(a), _) => a,
            (None, Some(b)) if !b.trim_matches('/').is_empty() => b.trim_matches('/').to_owned(),
            (None, _) => return Err(AccessError::NoEntityPath),
        };
        let endpoint = config.connection.endpoint;
        let tls = config.trust.client_config()?;
        let tokens = TokenSource::new(
            config.connection.credentials,
            &endpoint.host,
            &entity_path,
            config.token_ttl,
        );
        let dialer = Dialer::new(
            tls,
            config.egress,
            config.timeouts,
            ws_config(config.max_frame),
        );
        Ok(Self {
            endpoint,
            entity_path,
            tokens,
            dialer,
            address: None,
        })
    }

    /// The same access, dialling `address` for the endpoint's host instead of resolving it.
    /// TLS still checks the certificate against the host name, and `Host` still names it;
    /// accept addresses on that host (the relay builds them from the `Host` it was sent) are
    /// dialled at `address` too, so a listener's dial-back reaches the replica that sent the
    /// accept.
    pub fn with_address(mut self, address: SocketAddr) -> Self {
        self.dialer = self
            .dialer
            .pinned(&self.endpoint.host, self.endpoint.port, address);
        self.address = Some(address);
        self
    }

    /// The address this access dials, when it is pinned to one (see [`Self::with_address`]).
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// The relay endpoint.
    pub fn endpoint(&self) -> &RelayEndpoint {
        &self.endpoint
    }

    /// The hybrid connection name.
    pub fn entity_path(&self) -> &str {
        &self.entity_path
    }

    /// The token source.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// The dialer.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Whether the credentials are a key (tokens renewable) rather than a fixed token.
    pub fn credentials_renewable(&self) -> bool {
        self.tokens.renewable()
    }

    /// A one-line description for logs: `wss://host:443/$hc/path`, followed by ` at
    /// 10.0.0.5:443` when the access is pinned to one address of the host.
    pub fn describe(&self) -> String {
        match self.address {
            Some(address) => format!("{}/$hc/{} at {address}", self.endpoint, self.entity_path),
            None => format!("{}/$hc/{}", self.endpoint, self.entity_path),
        }
    }

    /// Opens a listener control channel with tracking id `id` and a freshly issued token.
    /// Returns the stream and the token (for its renewal time).
    ///
    /// # Errors
    /// [`AccessError`] when the token cannot be issued or the dial fails.
    pub async fn listen(&self, id: &str) -> Result<(RelayStream, IssuedToken), AccessError> {
        let url = self
            .endpoint
            .hc_url(&self.entity_path, Action::Listen, Some(id), &[], None)?;
        let token = self.tokens.issue()?;
        let stream = self
            .dialer
            .dial(DialRequest {
                url: &url,
                token: Some(&token.token),
                headers: &[],
                subprotocols: &[],
            })
            .await?;
        Ok((stream, token))
    }

    /// Opens a sender WebSocket with tracking id `id`, custom `headers` and the subprotocol
    /// `offer`.
    ///
    /// # Errors
    /// [`AccessError`] when the token cannot be issued or the dial fails (a refusal is
    /// [`DialError::Refused`] inside [`AccessError::Dial`]).
    pub async fn connect(
        &self,
        id: &str,
        headers: &[(String, String)],
        offer: &[&str],
    ) -> Result<RelayStream, AccessError> {
        let url = self
            .endpoint
            .hc_url(&self.entity_path, Action::Connect, Some(id), &[], None)?;
        let token = self.tokens.current()?;
        Ok(self
            .dialer
            .dial(DialRequest {
                url: &url,
                token: Some(&token),
                headers,
                subprotocols: offer,
            })
            .await?)
    }

    /// Dials an accept address back (no token: the address authorises itself), offering
    /// `subprotocol` when one was chosen.
    ///
    /// # Errors
    /// [`AccessError`] when the address is not a URL or the dial fails.
    pub async fn accept(
        &self,
        address: &str,
        subprotocol: Option<&str>,
    ) -> Result<RelayStream, AccessError> {
        let url = Url::parse(address).map_err(|_| UriError::BadAddress(address.to_owned()))?;
        let offer: Vec<&str> = subprotocol.into_iter().collect();
        Ok(self
            .dialer
            .dial(DialRequest {
                url: &url,
                token: None,
                headers: &[],
                subprotocols: &offer,
            })
            .await?)
    }

    /// Rejects a rendezvous: dials the accept address with `status` and `description`. The
    /// relay answers 410 Gone by design, which counts as success (as in the .NET SDK).
    ///
    /// # Errors
    /// [`AccessError`] when the reject did not reach the relay.
    pub async fn reject(
        &self,
        address: &str,
        status: u16,
        description: &str,
    ) -> Result<(), AccessError> {
        let url = reject_url(address, status, description)?;
        let result = self
            .dialer
            .dial(DialRequest {
                url: &url,
                token: None,
                headers: &[],
                subprotocols: &[],
            })
            .await;
        match result {
            Err(DialError::Refused { status, .. }) if status == HTTP_GONE => Ok(()),
            // A relay that upgrades instead of answering 410 has still taken the status.
            Ok(mut stream) => {
                let _ = stream.ws.close(None).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The credentials' kind, for logs (never the secret).
    pub fn credentials_kind(&self) -> &'static str {
        if self.tokens.renewable() {
            "key"
        } else {
            "fixed token"
        }
    }
}
