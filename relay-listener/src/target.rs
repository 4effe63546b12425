//! How an accepted rendezvous reaches the target.
//!
//! A [`TargetConnector`] opens the target connection for one sender, given the `accept`
//! message and the [`RemoteClient`] derived from it ([`TargetRequest`]). Three connectors
//! ship, one per [`IdentityMode`]: the plain [`TcpTarget`], [`ProxyV2Target`] (a PROXY v2
//! header first) and [`LoopbackTarget`] (a per-client loopback source address).
//! [`ConfiguredTarget`] is whichever of them the configuration asks for; any other connector
//! plugs in with [`RelayListener::with_connector`](crate::RelayListener::with_connector).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hc_protocol::Accept;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::ListenerConfig;
use crate::identity::{IdentityError, IdentityMode, RemoteClient};
use crate::loopback::{Collision, LoopbackTarget};
use crate::proxy_v2::ProxyV2Target;

/// What a connector gets for one sender.
#[derive(Debug, Clone, Copy)]
pub struct TargetRequest<'a> {
    /// The relay's `accept` message (headers, remote endpoint, id).
    pub accept: &'a Accept,
    /// The real client, derived from `accept` ([`RemoteClient::from_accept`]).
    pub client: &'a RemoteClient,
}

/// An open target connection.
#[derive(Debug)]
pub struct Connected<S> {
    /// The connection; anything the target must see first has been written already.
    pub stream: S,
    /// The address the target sees the connection come from, when known (the mapped loopback
    /// address in loopback mode), for logs and status.
    pub source: Option<SocketAddr>,
    /// Another client recently got the same source address (loopback mode).
    pub collision: Option<Collision>,
}

impl Connected<TcpStream> {
    /// A TCP connection; its local address is what the target sees.
    pub fn tcp(stream: TcpStream) -> Self {
        let source = stream.local_addr().ok();
        Self {
            stream,
            source,
            collision: None,
        }
    }
}

/// Opens the target connection for one accepted rendezvous.
pub trait TargetConnector: Send + Sync + 'static {
    /// The connection to the target.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to the target on behalf of the sender described by `request`. The caller
    /// bounds it with the configured target timeout; an error rejects the sender with 502 and
    /// the error's text as reason.
    fn connect(
        &self,
        request: &TargetRequest<'_>,
    ) -> impl Future<Output = std::io::Result<Connected<Self::Stream>>> + Send;

    /// The target, for log lines and reject descriptions (`127.0.0.1:12300`).
    fn describe(&self) -> String;
}

/// Connects `connector` for `request` within `timeout` (the configured target timeout). The
/// error is the reason the stream is rejected with (`target … unreachable: …`), worded the same
/// for 1:1 rendezvous and multiplexed streams.
pub(crate) async fn connect_within<C: TargetConnector>(
    connector: &C,
    request: &TargetRequest<'_>,
    timeout: Duration,
) -> Result<Connected<C::Stream>, String> {
    match tokio::time::timeout(timeout, connector.connect(request)).await {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(e)) => Err(format!("target {} unreachable: {e}", connector.describe())),
        Err(_) => Err(format!(
            "target {} unreachable: no answer within {timeout:?}",
            connector.describe()
        )),
    }
}

/// A plain TCP target (`TCP_NODELAY`, optional keepalive).
#[derive(Debug, Clone)]
pub struct TcpTarget {
    addr: String,
    keepalive: Option<Duration>,
}

impl TcpTarget {
    /// A target at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>, keepalive: Option<Duration>) -> Self {
        Self {
            addr: addr.into(),
            keepalive,
        }
    }

    /// The target address as configured (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// TCP keepalive applied to target connections.
    pub fn keepalive(&self) -> Option<Duration> {
        self.keepalive
    }
}

impl TargetConnector for TcpTarget {
    type Stream = TcpStream;

    async fn connect(&self, _request: &TargetRequest<'_>) -> std::io::Result<Connected<TcpStream>> {
        let stream = TcpStream::connect(self.addr.as_str()).await?;
        hc_client::net::tune(&stream, self.keepalive);
        Ok(Connected::tcp(stream))
    }

    fn describe(&self) -> String {
        self.addr.clone()
    }
}

/// The connector chosen by [`IdentityConfig::mode`](crate::identity::IdentityConfig::mode).
#[derive(Debug)]
pub enum ConfiguredTarget {
    /// [`IdentityMode::None`].
    Plain(TcpTarget),
    /// [`IdentityMode::ProxyV2`].
    ProxyV2(ProxyV2Target),
    /// [`IdentityMode::Loopback`].
    Loopback(LoopbackTarget),
}

impl ConfiguredTarget {
    /// The connector for `config.target` in `config.identity.mode`.
    ///
    /// # Errors
    /// [`IdentityError`] for an unusable loopback range.
    pub fn new(config: &ListenerConfig) -> Result<Self, IdentityError> {
        let tcp = TcpTarget::new(config.target.clone(), config.target_keepalive);
        Ok(match config.identity.mode {
            IdentityMode::None => Self::Plain(tcp),
            IdentityMode::ProxyV2 => Self::ProxyV2(ProxyV2Target::new(tcp)),
            IdentityMode::Loopback => {
                Self::Loopback(LoopbackTarget::new(tcp, config.identity.loopback_range)?)
            }
        })
    }

    /// The identity mode this connector implements.
    pub fn mode(&self) -> IdentityMode {
        match self {
            Self::Plain(_) => IdentityMode::None,
            Self::ProxyV2(_) => IdentityMode::ProxyV2,
            Self::Loopback(_) => IdentityMode::Loopback,
        }
    }
}

impl TargetConnector for ConfiguredTarget {
    type Stream = TcpStream;

    async fn connect(&self, request: &TargetRequest<'_>) -> std::io::Result<Connected<TcpStream>> {
        match self {
            Self::Plain(t) => t.connect(request).await,
            Self::ProxyV2(t) => t.connect(request).await,
            Self::Loopback(t) => t.connect(request).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Plain(t) => t.describe(),
            Self::ProxyV2(t) => t.describe(),
            Self::Loopback(t) => t.describe(),
        }
    }
}
