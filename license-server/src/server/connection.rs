//! One client connection: read a frame, answer it, repeat, until the client closes, idles out,
//! loses the framing, or the server shuts down (a call in progress is answered first).

use std::net::SocketAddr;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::dispatch;
use license_core::protocol::{CodecError, FrameCodec};

/// Who is at the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address (the TCP peer, or the real client behind a relay).
    pub addr: SocketAddr,
    /// The client's site, when a relay reported one.
    pub site: Option<String>,
}

impl Peer {
    /// A direct TCP peer.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self { addr, site: None }
    }
}

pub(super) async fn serve<S>(shared: &Shared, stream: S, peer: Peer, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, FrameCodec);
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = tokio::time::timeout(shared.idle_timeout, framed.next()) => next,
        };
        let (reply, close) = match next {
            Err(_) => {
                tracing::debug!("connection idle, closing");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(CodecError::Io(e)))) => {
                tracing::debug!("connection error: {e}");
                break;
            }
            Ok(Some(Err(CodecError::Frame(e)))) => {
                tracing::warn!(peer = %peer.addr, code = e.code.code(), "bad frame: {}", e.code);
                (dispatch::framing_error(shared, e.code), true)
            }
            Ok(Some(Ok(frame))) => (dispatch::handle(shared, &frame, &peer), false),
        };
        if let Err(e) = framed.send(reply).await {
            tracing::debug!("cannot answer: {e}");
            break;
        }
        if close {
            break;
        }
    }
}
