//! One client connection: read a frame, answer it, repeat, until the client closes, idles out
//! (no complete request within `ConnectionIdleTimeOut`, from the connection's start or from
//! the last answer), loses the framing, or the server shuts down or evicts the connection (a
//! call in progress is answered first). An answer to a call that changed state waits until the
//! change is committed to the state database: what a client was told survives a crash.

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
            Ok(Some(Ok(frame))) => (
                durable(shared, dispatch::handle(shared, &frame, &peer)).await,
                false,
            ),
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

/// The answer, once the change it reports is on disk.
async fn durable(
    shared: &Shared,
    handled: dispatch::Handled,
) -> license_core::protocol::frame::Frame {
    if let (Some(seq), Some(store)) = (handled.durable, shared.store.as_ref())
        && !store.durable(seq).await
    {
        tracing::error!(
            "state database {}: a change is still not written after {:?}; answering anyway",
            store.path().display(),
            crate::store::DURABLE_WAIT_LIMIT
        );
    }
    handled.frame
}
