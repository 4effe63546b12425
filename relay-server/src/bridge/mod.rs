//! Bridging a sender's connection with its listener's rendezvous connection, frame by frame
//! (see [`crate::frames`]): data frames (binary including zero-length end-of-stream markers,
//! text, continuations) and Close frames with their code and reason are forwarded as they
//! are, one at a time with a flush each, so a slow side throttles the other (nothing is read
//! ahead of what the other side has taken). Pings are answered by the relay on the side that
//! sent them and never forwarded; pings and pongs count as activity.
//!
//! **Transparent close.** A Close from one side means that side has finished sending, not
//! that the connection is over: it is forwarded, and the other direction stays open until
//! that side sends its Close too — the closing handshake then completed end to end — or
//! until [`CLOSE_LINGER`] passes (the relay then closes with 1001). So a foreign peer's
//! half-close (.NET's `HybridConnectionStream.Shutdown()`) still gets the reply; our own
//! `dongle-relay.v1` framing ends its data with an empty message first and is unaffected.
//!
//! The bridge also ends when it was idle (no frame, keep-alives included, either way) for the
//! idle timeout, when the relay's drain deadline passes, or when a side's connection is lost;
//! the relay then closes the other side (or both) with 1001 and a reason carrying a
//! `TrackingId`, and finally closes both connections.
//!
//! **Liveness.** A side that was sent data owes the relay a sign of life: the relay pings it
//! when data it was sent has gone unanswered for a moment (see [`liveness`]), and when
//! nothing at all (pong, data, Close) comes back within the peer-response timeout of that data
//! the side is taken for dead — frozen, not reading,
//! or gone without a FIN — and the bridge is closed with 1001 "{side} stopped responding". A
//! write that fails means the side is gone: the other side is closed at once with 1001
//! "peer connection lost", even when it was blocked writing into the bridge.
//!
//! **Broken frames.** A frame the codec refuses earns its precise close code
//! ([`FrameError::close_code`]): 1009 over the size limit, 1007 text that is not UTF-8, 1002 a
//! protocol violation. The side that sent it gets that code with the reason, and the other
//! side the same code with the reason prefixed by the side at fault (`sender: …`) — as Azure Relay reports a
//! connection it shut down: "an appropriate WebSocket protocol error code along with a
//! descriptive error message that also includes a tracking ID".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, Notify};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, OpCode};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use heap_trim::ReadAhead;

use crate::frames::{End, FrameCodec, FrameError};
use crate::refusal::tracked_reason;
use crate::stats::{Direction, RelayStats};

mod liveness;
mod writer;

use liveness::{Activity, Peer, watchdog};
use writer::{Side, Writer, close_frame};

/// How long a side may take to complete the closing handshake.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long the other side may go on sending after one side's Close (its reply to a
/// half-close) before the relay closes it.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(60);

/// Settings of one bridge.
#[derive(Debug, Clone)]
pub(crate) struct BridgeSettings {
    /// Close after this long without data messages (zero: never).
    pub idle_timeout: Duration,
    /// A side sent data that sends nothing back for this long is dead (zero: never).
    pub peer_response_timeout: Duration,
    /// Largest frame either side may send.
    pub max_frame: usize,
    /// Largest read from either side's connection (`limits.read_buffer_bytes`).
    pub read_chunk: usize,
    /// Cancelled when the relay stops waiting for bridged connections to finish.
    pub drain: CancellationToken,
    /// Where bridged payload bytes are counted.
    pub stats: RelayStats,
}

/// Why the relay ended a bridge itself.
struct Halt {
    token: CancellationToken,
    reason: OnceLock<CloseFrame>,
}

impl Halt {
    fn trigger(&self, reason: &str) {
        let _ = self.reason.set(CloseFrame {
            code: CloseCode::Away,
            reason: tracked_reason(reason).into(),
        });
        self.token.cancel();
    }

    fn frame(&self) -> CloseFrame {
        self.reason.get().cloned().unwrap_or(CloseFrame {
            code: CloseCode::Away,
            reason: "".into(),
        })
    }
}

/// How one direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its side sent Close: it has finished sending.
    Closed,
    /// Its side's connection ended or failed without a Close.
    Lost,
}

/// What every pump shares: the last activity, the counters, the relay's halt.
type Shared<'a> = (&'a Activity, &'a RelayStats, &'a Halt);

/// One side as a pump sees it: where to write to it and what it owes.
type Half<'a, T> = (&'a Side<T>, &'a Peer);

/// One side of a bridge: the connection, and the bytes already read from it past its upgrade
/// request (a client may send frames right behind the request, before it saw the 101).
pub(crate) struct Conn<T> {
    pub io: T,
    pub read_ahead: Bytes,
}

impl<T: AsyncRead + AsyncWrite> Conn<T> {
    /// A connection with nothing read ahead.
    pub(crate) fn new(io: T) -> Self {
        Self {
            io,
            read_ahead: Bytes::new(),
        }
    }

    /// Frames over the connection, the read-ahead bytes first, holding no buffer while the
    /// side is idle: reads go through a [`ReadAhead`] of at most `read_chunk` bytes, and the
    /// codec gives its buffers back when a small frame leaves them empty (see
    /// [`FrameCodec`]), so `Framed` starts with none.
    fn framed(self, codec: FrameCodec, read_chunk: usize) -> Framed<ReadAhead<T>, FrameCodec> {
        let io = ReadAhead::new(self.io, read_chunk);
        let mut framed = Framed::with_capacity(io, codec, 0);
        // Zero capacity would also make every send flush first; the bridge flushes each frame
        // itself, as with `Framed::new`'s boundary.
        framed.set_backpressure_boundary(WRITE_BOUNDARY);
        framed.read_buffer_mut().extend_from_slice(&self.read_ahead);
        framed
    }
}

/// `Framed::new`'s write buffer size, above which a send flushes before buffering more.
const WRITE_BOUNDARY: usize = 8 << 10;

/// Forwards frames between `sender` and `listener` (upgraded connections, the relay being the
/// server of both) until the bridge ends, then closes both.
pub(crate) async fn bridge<A, B>(sender: Conn<A>, listener: Conn<B>, settings: BridgeSettings)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let halt = Halt {
        token: CancellationToken::new(),
        reason: OnceLock::new(),
    };
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        owed: Notify::new(),
        liveness: !settings.peer_response_timeout.is_zero(),
    });
    let codec = FrameCodec::new(End::Server, settings.max_frame);
    let (sender_tx, sender_rx) = sender.framed(codec.clone(), settings.read_chunk).split();
    let (listener_tx, listener_rx) = listener.framed(codec, settings.read_chunk).split();
    let sender_side = Mutex::new(Writer::new(sender_tx));
    let listener_side = Mutex::new(Writer::new(listener_tx));
    let peers = [Peer::new("sender"), Peer::new("listener")];
    let sender = (&sender_side, &peers[0]);
    let listener = (&listener_side, &peers[1]);
    let shared = (&*activity, &settings.stats, &halt);
    let up = pump(
        Direction::SenderToListener,
        sender_rx,
        (sender, listener),
        shared,
    );
    let down = pump(
        Direction::ListenerToSender,
        listener_rx,
        (listener, sender),
        shared,
    );
    let watchdog = watchdog(&activity, &peers, &halt, &settings);
    tokio::pin!(up, down, watchdog);
    tokio::select! {
        end = &mut up => settle(end, down, watchdog, &halt).await,
        end = &mut down => settle(end, up, watchdog, &halt).await,
        () = &mut watchdog => {
            let both = futures_util::future::join(&mut up, &mut down);
            let _ = timeout(CLOSE_GRACE * 2, both).await;
        }
    }
    // Both closing handshakes are over (or given up): the relay, the server of both
    // connections, closes them (RFC 6455 §7.1.1). A writer still locked belongs to a send
    // that was given up; dropping it closes that connection.
    if let Ok(mut w) = sender_side.try_lock() {
        let _ = timeout(CLOSE_GRACE, w.sink.close()).await;
    }
    if let Ok(mut w) = listener_side.try_lock() {
        let _ = timeout(CLOSE_GRACE, w.sink.close()).await;
    }
    heap_trim::released();
}

/// One direction ended first with `first`: after a Close the other may go on until its own
/// Close, for at most [`CLOSE_LINGER`] (then the relay closes it); after a lost connection it
/// only has [`CLOSE_GRACE`] to finish.
async fn settle<F, W>(first: Ended, mut other: Pin<&mut F>, watchdog: Pin<&mut W>, halt: &Halt)
where
    F: Future<Output = Ended>,
    W: Future<Output = ()>,
{
    if first == Ended::Closed {
        tokio::select! {
            _ = other.as_mut() => return,
            () = watchdog => {}
            () = tokio::time::sleep(CLOSE_LINGER) => halt.trigger("no close after the peer's close"),
        }
    }
    let _ = timeout(CLOSE_GRACE, other).await;
}
/// `to`, answers pings on `own`; every frame touches the activity and answers what its side
/// owed, data is counted and makes `to` owe an answer.
async fn pump<F, T>(
    way: Direction,
    mut from: SplitStream<Framed<F, FrameCodec>>,
    ((own, own_peer), (to, to_peer)): (Half<'_, F>, Half<'_, T>),
    (activity, stats, halt): Shared<'_>,
) -> Ended
where
    F: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let direction = match way {
        Direction::SenderToListener => "sender->listener",
        Direction::ListenerToSender => "listener->sender",
    };
    // One registration with the token for the pump's whole life: a fresh `cancelled()` per
    // frame would lock the token and queue a waiter twice per forwarded frame.
    let halted = halt.token.cancelled();
    // The watchdog's requests to ping `to` (registered once, renewed after each request).
    let ping = to_peer.ping.notified();
    tokio::pin!(halted, ping);
    let mut halt_sent = false;
    loop {
        let next = tokio::select! {
            biased;
            () = &mut halted, if !halt_sent => {
                halt_sent = true;
                to.lock().await.send(close_frame(halt.frame())).await;
                continue;
            }
            () = &mut ping => {
                ping.set(to_peer.ping.notified());
                to.lock().await.send(Frame::ping(Bytes::new())).await;
                continue;
            }
            next = from.next() => next,
        };
        let Some(frame) = received(next, direction, (own, own_peer), to).await else {
            return Ended::Lost;
        };
        // Pings and pongs count too: a quiet tunnel whose ends ping must not hit the idle
        // timeout, and a pong is the answer a side owes.
        activity.touch();
        own_peer.heard();
        match frame.header().opcode {
            OpCode::Control(Control::Close) => {
                tracing::debug!(direction, "bridge: close forwarded");
                own_peer.finished.store(true, Ordering::Relaxed);
                let mut writer = to.lock().await;
                // Nothing may follow the Close: a side that owes an answer and was not pinged
                // for it yet gets its ping first, or it could not show it is alive.
                if to_peer.claim_ping() {
                    writer.send(Frame::ping(Bytes::new())).await;
                }
                writer.send(frame).await;
                return Ended::Closed;
            }
            OpCode::Control(Control::Ping) => {
                let pong = Frame::pong(frame.into_payload());
                own.lock().await.send(pong).await;
            }
            OpCode::Control(_) => {}
            OpCode::Data(_) => {
                stats.add_bytes(way, frame.payload().len());
                // Owed from before the write: a write that never completes counts.
                to_peer.owe(activity);
                let forward = async { to.lock().await.send(frame).await };
                let delivered = tokio::select! {
                    biased;
                    () = &mut halted, if !halt_sent => {
                        halt_sent = true;
                        to.lock().await.send(close_frame(halt.frame())).await;
                        true
                    }
                    delivered = forward => delivered,
                };
                if !delivered {
                    // `to` is gone: release this side now, even if it was blocked writing to
                    // us, rather than swallow what it sends until a deadline.
                    tracing::debug!(direction, "bridge: the other side is gone");
                    own.lock().await.send(close_frame(lost())).await;
                    return Ended::Lost;
                }
            }
        }
    }
}

/// The frame its side sent, or None when the side is lost (its connection ended or failed,
/// or it sent what the codec refuses): `to` has then been told.
async fn received<F, T>(
    next: Option<Result<Frame, FrameError>>,
    direction: &str,
    own: Half<'_, F>,
    to: &Side<T>,
) -> Option<Frame>
where
    F: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    match next {
        Some(Ok(frame)) => Some(frame),
        Some(Err(err)) => {
            tracing::debug!(direction, error = %err, "bridge: read failed");
            refuse(own, to, &err).await;
            None
        }
        None => {
            to.lock().await.send(close_frame(lost())).await;
            None
        }
    }
}

/// `own` sent what the codec refuses: it gets the precise close code, and `to` the same code
/// with a reason naming `own`; a connection that failed gets nothing and `to` 1001.
async fn refuse<F, T>((own, own_peer): Half<'_, F>, to: &Side<T>, err: &FrameError)
where
    F: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Some(code) = err.close_code() else {
        to.lock().await.send(close_frame(lost())).await;
        return;
    };
    let code = CloseCode::from(code);
    let own_frame = CloseFrame {
        code,
        reason: tracked_reason(&err.to_string()).into(),
    };
    let to_frame = CloseFrame {
        code,
        reason: tracked_reason(&format!("{}: {err}", own_peer.name)).into(),
    };
    // Both at once: one side stuck must not delay the other's answer.
    futures_util::future::join(
        async { own.lock().await.send(close_frame(own_frame)).await },
        async { to.lock().await.send(close_frame(to_frame)).await },
    )
    .await;
}

fn lost() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Away,
        reason: tracked_reason("peer connection lost").into(),
    }
}

#[cfg(test)]
mod tests;
