//! Multiplexing many TCP streams over one relay WebSocket (`dongle-relay.mux.v1`) with yamux.
//!
//! A pooled connection is an ordinary Hybrid Connections sender WebSocket whose binary messages
//! carry one yamux session ([`crate::ws_io::WsIo`] turns the WebSocket into the byte stream
//! yamux wants). The local-proxy is the yamux client and opens one stream per local TCP
//! connection; the relay-listener is the server and bridges each inbound stream to its target.
//! Every stream starts with a PROXY v2 header naming the local client ([`crate::identity`]).
//!
//! yamux gives each stream its own flow-control window (256 KiB to start), so a stream whose
//! receiver does not keep up stops its sender without blocking the others, and frames of
//! different streams interleave in pieces of at most [`SPLIT_SEND`] bytes: a license call never
//! waits behind more than a few such pieces of a bulk transfer.
//!
//! [`drive`] runs a session until it ends: it serves requests to open streams (from
//! [`MuxHandle::open`]) and hands every inbound stream to a callback. A yamux connection only
//! makes progress while it is polled, which is why one task owns it.

use std::task::Poll;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use yamux::{Config, Connection, ConnectionError, Mode, Stream};

/// Largest yamux data frame sent: big enough that bulk transfers use large WebSocket messages,
/// small enough that frames of other streams are never held back long.
pub const SPLIT_SEND: usize = 64 * 1024;

/// Largest WebSocket message of a pooled connection: one full data frame and its 12-byte
/// header fit, so a bulk frame never straddles two messages.
pub const MESSAGE: usize = SPLIT_SEND + 1024;

/// Largest number of streams on one pooled connection (a cap, not an allocation).
///
/// Half on 32-bit targets (i686 Windows): the connection window below, and the check yamux
/// makes of it, is this times 256 KiB, which must fit in a `usize` (16 Ki streams would be
/// 4 GiB).
pub const MAX_STREAMS: usize = if usize::BITS < 64 {
    8 * 1024
} else {
    16 * 1024
};

/// The yamux settings both ends use.
pub fn config() -> Config {
    let mut config = Config::default();
    // The connection-wide window cap must allow every stream the default 256 KiB window. It
    // only limits window auto-tuning: memory is used by data not yet read, and each stream is
    // read as fast as its TCP peer takes it.
    config.set_max_connection_receive_window(Some(MAX_STREAMS * yamux::DEFAULT_CREDIT as usize));
    config.set_max_num_streams(MAX_STREAMS);
    config.set_split_send_size(SPLIT_SEND);
    config
}

/// A yamux session could not open a stream or ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The session is gone (closed, failed, or its driver stopped).
    #[error("multiplexed connection closed")]
    Closed,
    /// yamux' error.
    #[error("multiplexed connection failed: {0}")]
    Connection(#[from] ConnectionError),
}

type OpenRequest = oneshot::Sender<Result<Stream, MuxError>>;

/// Opens streams on a session run by [`drive`]. Cloneable.
#[derive(Debug, Clone)]
pub struct MuxHandle {
    opener: mpsc::Sender<OpenRequest>,
}

impl MuxHandle {
    /// Opens a new outbound stream.
    ///
    /// # Errors
    /// [`MuxError`] when the session has ended or refused the stream.
    pub async fn open(&self) -> Result<Stream, MuxError> {
        let (tx, rx) = oneshot::channel();
        self.opener.send(tx).await.map_err(|_| MuxError::Closed)?;
        rx.await.map_err(|_| MuxError::Closed)?
    }

    /// Whether the session's driver has stopped.
    pub fn is_closed(&self) -> bool {
        self.opener.is_closed()
    }
}

/// A handle and the receiving end of its open requests, to be given to [`drive`].
pub fn channel() -> (MuxHandle, Opens) {
    let (opener, rx) = mpsc::channel(64);
    (MuxHandle { opener }, Opens(rx))
}

/// Open requests of a [`MuxHandle`], consumed by [`drive`].
#[derive(Debug)]
pub struct Opens(mpsc::Receiver<OpenRequest>);

/// Runs the yamux session `conn` until it ends or `stop` is cancelled (then it is closed
/// gracefully). `opens` serves [`MuxHandle::open`]; every inbound stream goes to `inbound`,
/// which must not block (it spawns). Returns `Ok` when the peer closed the session.
///
/// # Errors
/// The yamux error that ended the session (I/O error, keep-alive timeout, protocol error).
pub async fn drive<T>(
    mut conn: Connection<T>,
    opens: Option<Opens>,
    mut inbound: impl FnMut(Stream),
    stop: &CancellationToken,
) -> Result<(), ConnectionError>
where
    T: futures_util::io::AsyncRead + futures_util::io::AsyncWrite + Unpin,
{
    let mut opens = opens.map(|o| o.0);
    let mut pending: Option<OpenRequest> = None;
    let run = std::future::poll_fn(|cx| {
        // Open requests first: they wait on nothing but the peer's ACK backlog.
        loop {
            if pending.is_none()
                && let Some(rx) = opens.as_mut()
            {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(request)) => pending = Some(request),
                    Poll::Ready(None) => opens = None,
                    Poll::Pending => {}
                }
            }
            let Some(request) = pending.take() else {
                break;
            };
            if request.is_closed() {
                continue;
            }
            match conn.poll_new_outbound(cx) {
                Poll::Ready(result) => {
                    // A requester that went away drops its stream, which resets it.
                    let _ = request.send(result.map_err(MuxError::from));
                }
                Poll::Pending => {
                    pending = Some(request);
                    break;
                }
            }
        }
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => inbound(stream),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    let ended = tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        r = run => Some(r),
    };
    match ended {
        Some(result) => result,
        None => {
            let close = std::future::poll_fn(|cx| conn.poll_close(cx));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), close).await;
            Ok(())
        }
    }
}

/// A session over `io` in `mode` with [`config`].
pub fn connection<T>(io: T, mode: Mode) -> Connection<T>
where
    T: futures_util::io::AsyncRead + futures_util::io::AsyncWrite + Unpin,
{
    Connection::new(io, config(), mode)
}

/// Acknowledges an inbound stream to its opener at once (an empty data frame with the ACK
/// flag). yamux otherwise acknowledges with the first data sent back, and an opener with 256
/// unacknowledged streams waits: idle tunnels must not hold that up.
///
/// # Errors
/// The stream is already closed.
pub async fn acknowledge(stream: &mut Stream) -> std::io::Result<()> {
    use futures_util::io::AsyncWrite as _;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_write(cx, &[])).await?;
    Ok(())
}

pub use yamux::{Mode as MuxMode, Stream as MuxStream};
