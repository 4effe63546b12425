//! Dialling one relay WebSocket: TCP through the configured egress, TLS with the configured
//! trust, then the WebSocket upgrade (tokio-tungstenite over our own TLS stream). A relay that
//! answers the upgrade with an HTTP error becomes [`DialError::Refused`] with its status and
//! description, which is what operators need to see ("401 token rejected …").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hc_protocol::Secret;
use hc_protocol::status::describe_http;
use heap_trim::ReadAhead;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::{HeaderName, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::either::Either;
use url::Url;

use crate::egress::{Egress, EgressError};

/// The byte stream under a relay WebSocket: plain TCP (`ws://`) or TLS over TCP (`wss://`),
/// read through a buffer that exists only while bytes wait ([`ReadAhead`]). The TLS stream is
/// boxed: inline, its 1.1 KiB of state would size every `ws://` connection too.
pub type RelayIo = ReadAhead<Either<TcpStream, Box<TlsStream<TcpStream>>>>;

/// Largest read from a relay connection: a whole default-sized message (the pump's
/// `max_frame`) per `read` during a bulk transfer.
pub const READ_AHEAD: usize = 64 * 1024;

/// tungstenite's own read buffer, kept for the WebSocket's whole life and zero-filled up to
/// this size on every read attempt: small, so that an idle WebSocket holds 4 KiB instead of
/// 64 (its reads are copies out of [`READ_AHEAD`]'s buffer).
const WS_READ_BUFFER: usize = 4 * 1024;

/// The stage of a dial whose upgrade request went out but was not answered in time. A
/// relay holds a sender's upgrade until the listener accepts, so for a sender this usually
/// means its listener did not accept (a relay that answers sooner says so itself).
pub const AWAITING_UPGRADE: &str =
    "waiting for the answer to the WebSocket upgrade (a sender waits there for its listener) from";

/// Longest refusal description kept from a response body.
const MAX_DESCRIPTION: usize = 200;

/// How long each dial stage may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialTimeouts {
    /// TCP connect, including the egress proxy's tunnel.
    pub connect: Duration,
    /// TLS handshake plus WebSocket upgrade.
    pub handshake: Duration,
}

impl Default for DialTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(20),
        }
    }
}

/// An open relay WebSocket and the subprotocol the relay returned.
pub struct RelayStream {
    /// The WebSocket.
    pub ws: WebSocketStream<RelayIo>,
    /// The `Sec-WebSocket-Protocol` of the upgrade response, if any.
    pub subprotocol: Option<String>,
}

impl std::fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayStream")
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

/// Why a dial failed; `Display` is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The relay answered the upgrade with an HTTP error status.
    #[error("{status} {description}")]
    Refused {
        /// HTTP status (401, 403, 404, 502, …).
        status: u16,
        /// The relay's description, or a standard explanation of the status.
        description: String,
    },
    /// TCP (direct or through the proxy) failed.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// The TLS handshake failed (untrusted or mismatched certificate, protocol error).
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The relay's `host:port`.
        addr: String,
        /// rustls' reason.
        reason: String,
    },
    /// A stage did not finish in time.
    #[error("timed out after {after:?} while {stage} {addr}")]
    Timeout {
        /// `connecting to`, `handshaking with`, or [`AWAITING_UPGRADE`].
        stage: &'static str,
        /// The relay's `host:port`.
        addr: String,
        /// The limit.
        after: Duration,
    },
    /// We offered subprotocols and the relay's 101 named none (a listener that ignores them).
    #[error("relay {addr} accepted the WebSocket without choosing an offered subprotocol")]
    NoSubprotocol {
        /// The relay's `host:port`.
        addr: String,
    },
    /// The WebSocket upgrade failed for another reason.
    #[error("WebSocket upgrade with {addr} failed: {reason}")]
    Handshake {
        /// The relay's `host:port`.
        addr: String,
        /// tungstenite's reason.
        reason: String,
    },
    /// The URL cannot be dialled.
    #[error("cannot dial {url:?}: {reason}")]
    BadUrl {
        /// The URL, without its query (which may carry a token).
        url: String,
        /// Why.
        reason: &'static str,
    },
}

impl DialError {
    /// The HTTP status when the relay refused the upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What to dial: a relay WebSocket URL plus the headers of the upgrade.
#[derive(Debug, Clone, Copy)]
pub struct DialRequest<'a> {
    /// The `ws://` or `wss://` URL, used as-is (accept addresses are opaque).
    pub url: &'a Url,
    /// SAS token for the `ServiceBusAuthorization` header; `None` for accept dial-backs.
    pub token: Option<&'a Secret>,
    /// Extra headers (the sender's custom headers travel to the listener).
    pub headers: &'a [(String, String)],
    /// Subprotocols to offer, in order.
    pub subprotocols: &'a [&'a str],
}

/// Dials relay WebSockets with one trust, egress and timeout setting.
#[derive(Clone)]
pub struct Dialer {
    tls: Arc<ClientConfig>,
    egress: Egress,
    timeouts: DialTimeouts,
    ws_config: WebSocketConfig,
    pinned: Option<Pinned>,
}

/// A host whose TCP connections go to one known address instead of a fresh resolution.
#[derive(Debug, Clone)]
struct Pinned {
    host: String,
    port: u16,
    address: SocketAddr,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("egress", &self.egress)
            .field("timeouts", &self.timeouts)
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer. `ws_config` bounds the WebSocket's buffers (see [`ws_config`]).
    pub fn new(
        tls: Arc<ClientConfig>,
        egress: Egress,
        timeouts: DialTimeouts,
        ws_config: WebSocketConfig,
    ) -> Self {
        Self {
            tls,
            egress,
            timeouts,
            ws_config,
            pinned: None,
        }
    }

    /// The same dialer, connecting to `address` whenever it dials `host:port` (direct egress
    /// only: through a proxy, the proxy resolves). TLS and `Host` still use `host`.
    pub fn pinned(mut self, host: &str, port: u16, address: SocketAddr) -> Self {
        self.pinned = Some(Pinned {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            address,
        });
        self
    }

    /// Opens TCP to `host:port`: at its pinned address, or by the egress.
    async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream, EgressError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let pinned = self
            .pinned
            .as_ref()
            .filter(|p| p.port == port && p.host.eq_ignore_ascii_case(bare));
        match pinned {
            Some(p) if self.egress == Egress::Direct => {
                let stream =
                    TcpStream::connect(p.address)
                        .await
                        .map_err(|source| EgressError::Connect {
                            addr: format!("{host}:{port} at {}", p.address),
                            source,
                        })?;
                crate::net::tune(&stream, None);
                Ok(stream)
            }
            _ => self.egress.connect(host, port).await,
        }
    }

    /// The egress this dialer uses.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Opens the WebSocket described by `request`.
    ///
    /// # Errors
    /// [`DialError`]; [`DialError::Refused`] when the relay answered with an HTTP error.
    pub async fn dial(&self, request: DialRequest<'_>) -> Result<RelayStream, DialError> {
        let url = request.url;
        let bad = |reason| DialError::BadUrl {
            url: format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
            reason,
        };
        let tls = match url.scheme() {
            "wss" => true,
            "ws" => false,
            _ => return Err(bad("scheme is not ws or wss")),
        };
        let host = url.host_str().ok_or_else(|| bad("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let addr = format!("{host}:{port}");
        let tcp = self.connect_tcp(host, port, &addr).await?;
        // Set once the upgrade request goes out, to name the stage that timed out.
        let upgrading = std::sync::atomic::AtomicBool::new(false);
        let handshake = async {
            let io = self.secure(tcp, host, tls, &addr).await?;
            upgrading.store(true, std::sync::atomic::Ordering::Relaxed);
            self.upgrade(io, &request, &addr).await
        };
        tokio::time::timeout(self.timeouts.handshake, handshake)
            .await
            .map_err(|_| DialError::Timeout {
                stage: if upgrading.load(std::sync::atomic::Ordering::Relaxed) {
                    AWAITING_UPGRADE
                } else {
                    "handshaking with"
                },
                addr: addr.clone(),
                after: self.timeouts.handshake,
            })?
    }

    /// Opens a byte stream to `host:port` the way [`Dialer::dial`] opens its WebSocket's: TCP
    /// through the egress (within the connect timeout), then TLS with this dialer's trust when
    /// `tls` (within the handshake timeout). For plain HTTP over the same path to the relay
    /// (its HTTP request mode).
    ///
    /// # Errors
    /// [`DialError`] as for a dial, before any upgrade.
    pub async fn connect(&self, host: &str, port: u16, tls: bool) -> Result<RelayIo, DialError> {
        let addr = format!("{host}:{port}");
        let tcp = self.connect_tcp(host, port, &addr).await?;
        tokio::time::timeout(self.timeouts.handshake, self.secure(tcp, host, tls, &addr))
            .await
            .map_err(|_| DialError::Timeout {
                stage: "handshaking with",
                addr: addr.clone(),
                after: self.timeouts.handshake,
            })?
    }

    /// TCP to `host:port` within the connect timeout.
    async fn connect_tcp(&self, host: &str, port: u16, addr: &str) -> Result<TcpStream, DialError> {
        tokio::time::timeout(self.timeouts.connect, self.tcp(host, port))
            .await
            .map_err(|_| DialError::Timeout {
                stage: "connecting to",
                addr: addr.to_owned(),
                after: self.timeouts.connect,
            })?
            .map_err(DialError::from)
    }

    /// `tcp` as it is, or under TLS for `host` with this dialer's trust.
    async fn secure(
        &self,
        tcp: TcpStream,
        host: &str,
        tls: bool,
        addr: &str,
    ) -> Result<RelayIo, DialError> {
        if !tls {
            return Ok(ReadAhead::new(Either::Left(tcp), READ_AHEAD));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned()).map_err(|_| DialError::BadUrl {
            url: addr.to_owned(),
            reason: "host is not a valid TLS server name",
        })?;
        let stream = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| DialError::Tls {
                addr: addr.to_owned(),
                reason: tls_reason(&e),
            })?;
        Ok(ReadAhead::new(Either::Right(Box::new(stream)), READ_AHEAD))
    }

    async fn upgrade(
        &self,
        io: RelayIo,
        request: &DialRequest<'_>,
        addr: &str,
    ) -> Result<RelayStream, DialError> {
        let handshake_err = |reason: String| DialError::Handshake {
            addr: addr.to_owned(),
            reason,
        };
        let mut http = request
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| handshake_err(e.to_string()))?;
        let headers = http.headers_mut();
        let mut add = |name: &str, value: &str| -> Result<(), DialError> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| handshake_err(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| handshake_err(format!("invalid value for header {name}")))?;
            headers.insert(name, value);
            Ok(())
        };
        if let Some(token) = request.token {
            add(hc_protocol::SERVICE_BUS_AUTHORIZATION, token.expose())?;
        }
        for (name, value) in request.headers {
            add(name, value)?;
        }
        if !request.subprotocols.is_empty() {
            add(
                SEC_WEBSOCKET_PROTOCOL.as_str(),
                &request.subprotocols.join(", "),
            )?;
        }
        use tokio_tungstenite::tungstenite::Error as WsError;
        match tokio_tungstenite::client_async_with_config(http, io, Some(self.ws_config)).await {
            Ok((ws, response)) => {
                let subprotocol = response
                    .headers()
                    .get(SEC_WEBSOCKET_PROTOCOL)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_owned());
                Ok(RelayStream { ws, subprotocol })
            }
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                Err(DialError::Refused {
                    status,
                    description: description(status, response.body().as_deref()),
                })
            }
            Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol,
            ))) => Err(DialError::NoSubprotocol {
                addr: addr.to_owned(),
            }),
            Err(e) => Err(handshake_err(e.to_string())),
        }
    }
}

/// rustls' reason inside an I/O error, readable (a pin mismatch would otherwise print as
/// `Other(OtherError(…))`).
fn tls_reason(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::Other(other))) => {
            format!("invalid peer certificate: {other}")
        }
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// The refusal description: the first line of a short text body, else the standard meaning.
fn description(status: u16, body: Option<&[u8]>) -> String {
    let from_body = body
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()))
        .filter(|l| !l.chars().any(char::is_control))
        .map(|l| match l.char_indices().nth(MAX_DESCRIPTION) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => l.to_owned(),
        });
    from_body.unwrap_or_else(|| describe_http(status).to_owned())
}

/// A WebSocket configuration whose buffers are bounded for a proxy: frames and messages up to
/// `max_message` bytes, a write buffer that may hold at most a few of them, and a small read
/// buffer (the dialer reads ahead for it, see [`RelayIo`]).
pub fn ws_config(max_message: usize) -> WebSocketConfig {
    let max_message = max_message.max(1024);
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * max_message + 64 * 1024)
        .max_message_size(Some(max_message.max(64 * 1024) * 16))
        .max_frame_size(Some(max_message.max(64 * 1024) * 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_descriptions_prefer_the_body_and_fall_back_to_the_status() {
        assert_eq!(
            description(404, Some(b"no listener connected\r\n")),
            "no listener connected"
        );
        assert_eq!(description(401, None), describe_http(401));
        assert_eq!(description(401, Some(b"\n \n")), describe_http(401));
        assert_eq!(description(502, Some(&[0xff, 0xfe])), describe_http(502));
        let long = "x".repeat(500);
        assert_eq!(
            description(500, Some(long.as_bytes())).chars().count(),
            MAX_DESCRIPTION + 1
        );
        let err = DialError::Refused {
            status: 401,
            description: describe_http(401).into(),
        };
        assert_eq!(
            err.to_string(),
            "401 token rejected (wrong key, malformed or expired)"
        );
    }

    #[tokio::test]
    async fn an_unanswered_upgrade_is_named_as_such() {
        crate::install_crypto_provider();
        // A relay that takes the upgrade request and never answers (as one does while a
        // sender's listener has not accepted).
        let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url: Url = format!("ws://{}/$hc/hc", relay.local_addr().expect("addr"))
            .parse()
            .expect("url");
        let holder = tokio::spawn(async move { relay.accept().await });
        let tls = crate::trust::TrustConfig::default()
            .client_config()
            .expect("tls");
        let timeouts = DialTimeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_millis(300),
        };
        let dialer = Dialer::new(tls, Egress::Direct, timeouts, ws_config(1 << 20));
        let request = DialRequest {
            url: &url,
            token: None,
            headers: &[],
            subprotocols: &[],
        };
        let err = tokio::time::timeout(Duration::from_secs(10), dialer.dial(request))
            .await
            .expect("in time")
            .expect_err("unanswered");
        assert!(
            err.to_string().starts_with(
                "timed out after 300ms while waiting for the answer to the WebSocket upgrade"
            ),
            "{err}"
        );
        drop(holder);
    }
}
