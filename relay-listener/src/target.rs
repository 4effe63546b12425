//! How an accepted rendezvous reaches the target.
//!
//! **Extension point (PROXY protocol v2).** A later issue makes the license server see the real
//! client: the connector will write a PROXY v2 header at the start of the target connection,
//! built from the sender's custom headers (`X-Dongle-Relay-Client`, `X-Dongle-Relay-Site`, see
//! [`Accept::header`]) and the relay-observed [`Accept::remote_endpoint`]. Implement it as a
//! [`TargetConnector`] that wraps [`TcpTarget`] and writes the header before returning the
//! stream; [`RelayListener::with_connector`](crate::RelayListener::with_connector) plugs it in.

use std::future::Future;
use std::time::Duration;

use hc_protocol::Accept;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Opens the target connection for one accepted rendezvous.
pub trait TargetConnector: Send + Sync + 'static {
    /// The connection to the target.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to the target on behalf of the sender described by `accept`. The caller bounds
    /// it with the configured target timeout.
    fn connect(
        &self,
        accept: &Accept,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;

    /// The target, for log lines and reject descriptions (`127.0.0.1:12300`).
    fn describe(&self) -> String;
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
}

impl TargetConnector for TcpTarget {
    type Stream = TcpStream;

    async fn connect(&self, _accept: &Accept) -> std::io::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr.as_str()).await?;
        hc_client::net::tune(&stream, self.keepalive);
        Ok(stream)
    }

    fn describe(&self) -> String {
        self.addr.clone()
    }
}
