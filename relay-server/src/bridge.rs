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
//! with the first data it has not answered, and when nothing at all (pong, data, Close) comes
//! back within the peer-response timeout the side is taken for dead — frozen, not reading,
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, Notify};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, OpCode};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::frames::{End, FrameCodec, FrameError};
use crate::refusal::tracked_reason;
use crate::stats::{Direction, RelayStats};

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

/// Time of the last frame, in milliseconds since the bridge started.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    /// Wakes the watchdog when a side starts owing an answer.
    owed: Notify,
    /// Whether sides owe answers at all (a peer-response timeout is set).
    liveness: bool,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.at(self.last_ms.load(Ordering::Relaxed))
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }
}

/// Nothing owed.
const NOT_OWED: u64 = u64::MAX;

/// What the relay knows of one side's responsiveness.
struct Peer {
    /// `sender` or `listener`, for reasons.
    name: &'static str,
    /// Since when (ms since the bridge started) data sent to it is unanswered.
    owed_since: AtomicU64,
    /// It sent its Close: it owes nothing any more (a closing peer answers no pings).
    finished: AtomicBool,
}

impl Peer {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            owed_since: AtomicU64::new(NOT_OWED),
            finished: AtomicBool::new(false),
        }
    }

    /// Anything from the side answers what it owed.
    fn heard(&self) {
        self.owed_since.store(NOT_OWED, Ordering::Relaxed);
    }

    /// Data goes to the side: it owes an answer from now, unless it did already. True when
    /// this starts a debt (the relay then pings it).
    fn owe(&self, activity: &Activity) -> bool {
        if !activity.liveness || self.finished.load(Ordering::Relaxed) {
            return false;
        }
        let started = self
            .owed_since
            .compare_exchange(
                NOT_OWED,
                activity.now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if started {
            activity.owed.notify_one();
        }
        started
    }

    /// When its debt runs out, if it owes one.
    fn due(&self, activity: &Activity, limit: Duration) -> Option<Instant> {
        let since = self.owed_since.load(Ordering::Relaxed);
        (since != NOT_OWED && !self.finished.load(Ordering::Relaxed))
            .then(|| activity.at(since) + limit)
    }
}

/// The writing half of one side, shared by the pump towards it (data, Close) and the pump
/// from it (answers to its pings).
struct Writer<T> {
    sink: SplitSink<Framed<T, FrameCodec>, Frame>,
    /// A Close was sent to this side: nothing may follow it.
    closed: bool,
    /// A write failed: the side is gone.
    failed: bool,
}

type Side<T> = Mutex<Writer<T>>;

impl<T: AsyncRead + AsyncWrite + Unpin> Writer<T> {
    fn new(sink: SplitSink<Framed<T, FrameCodec>, Frame>) -> Self {
        Self {
            sink,
            closed: false,
            failed: false,
        }
    }

    /// Sends `frame` unless a Close went out already (a Close marks the side closed and is
    /// bounded by [`CLOSE_GRACE`]). Returns false when the side is gone (this or an earlier
    /// write failed).
    async fn send(&mut self, frame: Frame) -> bool {
        if self.closed {
            return !self.failed;
        }
        let sent = if is_close(&frame) {
            self.closed = true;
            timeout(CLOSE_GRACE, self.sink.send(frame))
                .await
                .unwrap_or(Ok(()))
        } else {
            self.sink.send(frame).await
        };
        if let Err(err) = sent {
            tracing::debug!(error = %err, "bridge: write failed");
            self.closed = true;
            self.failed = true;
        }
        !self.failed
    }
}

fn is_close(frame: &Frame) -> bool {
    frame.header().opcode == OpCode::Control(Control::Close)
}

fn close_frame(frame: CloseFrame) -> Frame {
    Frame::close(Some(frame))
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

/// Forwards frames between `sender` and `listener` (upgraded connections, the relay being the
/// server of both) until the bridge ends, then closes both.
pub(crate) async fn bridge<A, B>(sender: A, listener: B, settings: BridgeSettings)
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
    let (sender_tx, sender_rx) = Framed::new(sender, codec.clone()).split();
    let (listener_tx, listener_rx) = Framed::new(listener, codec).split();
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

/// Halts the bridge when it has been idle too long, a side owes an answer too long, or the
/// relay's drain deadline passed.
async fn watchdog(activity: &Activity, peers: &[Peer], halt: &Halt, settings: &BridgeSettings) {
    let respond = settings.peer_response_timeout;
    loop {
        let owed = activity.owed.notified();
        tokio::pin!(owed);
        owed.as_mut().enable();
        let idle_at =
            (!settings.idle_timeout.is_zero()).then(|| activity.last() + settings.idle_timeout);
        let due = |peer: &Peer| {
            (!respond.is_zero())
                .then(|| peer.due(activity, respond))
                .flatten()
        };
        let deadline = peers.iter().filter_map(due).chain(idle_at).min();
        tokio::select! {
            () = settings.drain.cancelled() => {
                halt.trigger("relay shutting down");
                return;
            }
            () = &mut owed => {}
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                // Let the pumps take what already arrived first: on a busy machine this timer
                // can run late, beside frames that answer what it is about to judge.
                tokio::task::yield_now().await;
                let now = Instant::now();
                if let Some(peer) = peers.iter().find(|p| due(p).is_some_and(|at| at <= now)) {
                    halt.trigger(&format!(
                        "{} stopped responding: nothing from it within {} s of data sent to it",
                        peer.name,
                        respond.as_secs_f64()
                    ));
                    return;
                }
                if activity.last() + settings.idle_timeout <= now && idle_at.is_some() {
                    halt.trigger("idle timeout");
                    return;
                }
            }
        }
    }
}

/// One direction: reads frames from its side (`own`'s reader), forwards data and Close to
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
    tokio::pin!(halted);
    let mut halt_sent = false;
    loop {
        let next = tokio::select! {
            biased;
            () = &mut halted, if !halt_sent => {
                halt_sent = true;
                to.lock().await.send(close_frame(halt.frame())).await;
                continue;
            }
            next = from.next() => next,
        };
        let frame = match next {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                tracing::debug!(direction, error = %err, "bridge: read failed");
                refuse((own, own_peer), to, &err).await;
                return Ended::Lost;
            }
            None => {
                to.lock().await.send(close_frame(lost())).await;
                return Ended::Lost;
            }
        };
        // Pings and pongs count too: a quiet tunnel whose ends ping must not hit the idle
        // timeout, and a pong is the answer a side owes.
        activity.touch();
        own_peer.heard();
        match frame.header().opcode {
            OpCode::Control(Control::Close) => {
                tracing::debug!(direction, "bridge: close forwarded");
                own_peer.finished.store(true, Ordering::Relaxed);
                to.lock().await.send(frame).await;
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
                let ping = to_peer.owe(activity);
                let forward = async {
                    let mut writer = to.lock().await;
                    writer.send(frame).await
                        && (!ping || writer.send(Frame::ping(Bytes::new())).await)
                };
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
mod tests {
    use tokio::io::DuplexStream;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

    use super::*;

    /// A peer's WebSocket (the client end) and the relay's raw end of its connection.
    async fn pair() -> (WebSocketStream<DuplexStream>, DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 16);
        (
            WebSocketStream::from_raw_socket(a, Role::Client, None).await,
            b,
        )
    }

    /// A peer that speaks frames (as .NET's does under its `Shutdown()`): it may go on
    /// sending after a Close.
    fn frame_peer() -> (Framed<DuplexStream, FrameCodec>, DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 16);
        (Framed::new(a, FrameCodec::new(End::Client, 1 << 20)), b)
    }

    async fn next_data(ws: &mut WebSocketStream<DuplexStream>) -> Message {
        loop {
            match ws.next().await.expect("open").expect("ok") {
                Message::Ping(_) | Message::Pong(_) => continue,
                m => return m,
            }
        }
    }

    fn settings(idle: u64) -> (BridgeSettings, CancellationToken) {
        let drain = CancellationToken::new();
        (
            BridgeSettings {
                idle_timeout: Duration::from_secs(idle),
                peer_response_timeout: Duration::ZERO,
                max_frame: 1 << 20,
                drain: drain.clone(),
                stats: RelayStats::new(),
            },
            drain,
        )
    }

    #[tokio::test]
    async fn forwards_empty_binary_text_and_close() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = pair().await;
        let (settings, _drain) = settings(0);
        let task = tokio::spawn(bridge(sender_side, listener_side, settings));
        let run = async {
            sender
                .send(Message::binary(vec![1, 2, 3]))
                .await
                .expect("send");
            sender
                .send(Message::binary(Vec::new()))
                .await
                .expect("send");
            listener.send(Message::text("hi")).await.expect("send");
            assert_eq!(
                next_data(&mut listener).await,
                Message::binary(vec![1, 2, 3])
            );
            assert_eq!(next_data(&mut listener).await, Message::binary(Vec::new()));
            assert_eq!(next_data(&mut sender).await, Message::text("hi"));
            sender
                .close(Some(CloseFrame {
                    code: CloseCode::Library(4000),
                    reason: "bye".into(),
                }))
                .await
                .expect("close");
            let Message::Close(Some(frame)) = next_data(&mut listener).await else {
                panic!("expected close");
            };
            assert_eq!(
                (frame.code, frame.reason.as_str()),
                (CloseCode::Library(4000), "bye")
            );
            // The listener completes the handshake; the sender sees its close answered.
            drop(listener);
            while let Some(Ok(_)) = sender.next().await {}
            task.await.expect("bridge ends");
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("in time");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_bridge_closes_both_sides_with_1001() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = pair().await;
        let (settings, _drain) = settings(60);
        let task = tokio::spawn(bridge(sender_side, listener_side, settings));
        sender.send(Message::binary(vec![9])).await.expect("send");
        assert_eq!(next_data(&mut listener).await, Message::binary(vec![9]));
        let start = Instant::now();
        for ws in [&mut sender, &mut listener] {
            let Message::Close(Some(frame)) = next_data(ws).await else {
                panic!("expected close");
            };
            assert_eq!(frame.code, CloseCode::Away);
            assert!(
                frame.reason.starts_with("idle timeout. TrackingId:"),
                "{frame:?}"
            );
        }
        assert!(start.elapsed() >= Duration::from_secs(59));
        drop((sender, listener));
        task.await.expect("bridge ends");
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_pings_keep_a_quiet_bridge_open() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = pair().await;
        let (settings, _drain) = settings(60);
        let task = tokio::spawn(bridge(sender_side, listener_side, settings));
        // Two hours without data, the sender pinging every 30 s (the listener only answers
        // the relay's nothing; its reads keep the streams moving).
        for _ in 0..240 {
            sender
                .send(Message::Ping(Default::default()))
                .await
                .expect("ping");
            let _ = timeout(Duration::from_secs(30), sender.next()).await;
            let _ = timeout(Duration::from_millis(1), listener.next()).await;
            assert!(!task.is_finished(), "closed although both ends kept alive");
        }
        // Pings stop: the idle timeout applies again.
        let quiet = Instant::now();
        let Message::Close(Some(frame)) = next_data(&mut listener).await else {
            panic!("expected close");
        };
        assert!(
            frame.reason.starts_with("idle timeout. TrackingId:"),
            "{frame:?}"
        );
        assert!(
            quiet.elapsed() >= Duration::from_secs(59),
            "{:?}",
            quiet.elapsed()
        );
        drop((sender, listener));
        task.await.expect("bridge ends");
    }

    #[tokio::test(start_paused = true)]
    async fn drain_deadline_closes_both_sides() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = pair().await;
        let (settings, drain) = settings(0);
        let task = tokio::spawn(bridge(sender_side, listener_side, settings));
        drain.cancel();
        for ws in [&mut sender, &mut listener] {
            let Message::Close(Some(frame)) = next_data(ws).await else {
                panic!("expected close");
            };
            assert!(
                frame.reason.starts_with("relay shutting down. TrackingId:"),
                "{frame:?}"
            );
        }
        drop((sender, listener));
        task.await.expect("bridge ends");
    }

    #[tokio::test]
    async fn a_close_is_forwarded_and_the_other_side_may_still_send() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = frame_peer();
        let (settings, _drain) = settings(0);
        let task = tokio::spawn(bridge(sender_side, listener_side, settings));
        let run = async {
            sender
                .send(Message::binary(&b"request"[..]))
                .await
                .expect("send");
            // The sender has finished: its Close goes to the listener, nobody answers it yet.
            sender.close(None).await.expect("close");
            let request = listener.next().await.expect("open").expect("frame");
            assert_eq!(request.payload(), b"request");
            let close = listener.next().await.expect("open").expect("frame");
            assert!(is_close(&close));
            for part in [&b"the "[..], b"whole ", b"reply"] {
                let data = Frame::message(part, OpCode::Data(Data::Binary), true);
                listener.send(data).await.expect("send after the close");
            }
            listener
                .send(close_frame(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "done".into(),
                }))
                .await
                .expect("close");
            let mut reply = Vec::new();
            let frame = loop {
                match sender.next().await.expect("open").expect("message") {
                    Message::Binary(data) => reply.extend_from_slice(&data),
                    Message::Close(frame) => break frame,
                    _ => {}
                }
            };
            assert_eq!(reply, b"the whole reply");
            assert_eq!(frame.map(|f| f.reason.to_string()).as_deref(), Some("done"));
            // The handshake completed end to end: the relay closes both connections.
            assert!(matches!(sender.next().await, None | Some(Err(_))));
            assert!(listener.next().await.is_none());
            task.await.expect("bridge ends");
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("in time");
    }

    #[tokio::test(start_paused = true)]
    async fn a_side_that_never_closes_is_closed_after_the_linger() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = frame_peer();
        let (settings, _drain) = settings(0);
        let task = tokio::spawn(bridge(sender_side, listener_side, settings));
        sender.close(None).await.expect("close");
        let close = listener.next().await.expect("open").expect("frame");
        assert!(is_close(&close));
        let start = Instant::now();
        away(&mut sender, "no close after the peer's close. TrackingId:").await;
        assert!(start.elapsed() >= CLOSE_LINGER, "{:?}", start.elapsed());
        drop(listener);
        task.await.expect("bridge ends");
    }

    /// Waits for the relay's Close to `ws`: 1001 with a reason starting with `reason`.
    async fn away(ws: &mut WebSocketStream<DuplexStream>, reason: &str) {
        let Message::Close(Some(frame)) = next_data(ws).await else {
            panic!("expected the relay's close");
        };
        assert_eq!(frame.code, CloseCode::Away);
        assert!(frame.reason.starts_with(reason), "{frame:?}");
    }

    fn settings_with(respond: u64, max_frame: usize) -> BridgeSettings {
        let (mut settings, _) = settings(0);
        settings.peer_response_timeout = Duration::from_secs(respond);
        settings.max_frame = max_frame;
        settings
    }

    /// The Close a frame-speaking peer gets, skipping data and pings.
    async fn close_of(peer: &mut Framed<DuplexStream, FrameCodec>) -> CloseFrame {
        loop {
            let frame = peer.next().await.expect("open").expect("frame");
            if is_close(&frame) {
                let payload = frame.payload();
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                return CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_side_that_stops_reading_is_reported_to_the_other() {
        let (mut sender, sender_side) = pair().await;
        // The listener's end is held but never read: frozen, or alive and not reading.
        let (_frozen, listener_side) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(bridge(
            sender_side,
            listener_side,
            settings_with(10, 1 << 20),
        ));
        let start = Instant::now();
        sender
            .send(Message::binary(&b"request"[..]))
            .await
            .expect("send");
        let reason = "listener stopped responding: nothing from it within 10 s";
        away(&mut sender, reason).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );
        drop(sender);
        timeout(CLOSE_GRACE * 3, task)
            .await
            .expect("the bridge ends")
            .expect("task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_side_that_answers_pings_is_not_taken_for_dead() {
        let (mut sender, sender_side) = pair().await;
        let (mut listener, listener_side) = pair().await;
        let task = tokio::spawn(bridge(
            sender_side,
            listener_side,
            settings_with(10, 1 << 20),
        ));
        // A minute of one-way data to a listener that reads (and so answers pings) but never
        // sends data back.
        for i in 0..60u8 {
            sender.send(Message::binary(vec![i])).await.expect("send");
            assert_eq!(next_data(&mut listener).await, Message::binary(vec![i]));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(!task.is_finished(), "closed a listener that answered");
        drop((sender, listener));
        timeout(CLOSE_GRACE * 3, task)
            .await
            .expect("ends")
            .expect("task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flooding_side_is_released_when_the_reader_vanishes() {
        let (sender, sender_side) = pair().await;
        // The listener's connection as the relay sees it when a reset shows on the write side
        // only: its reads stay pending, its writes block (nobody reads) until it vanishes,
        // then fail.
        let (_quiet, reads) = tokio::io::duplex(1 << 16);
        let (unread, writes) = tokio::io::duplex(1 << 16);
        let listener_side = tokio::io::join(reads, writes);
        // No liveness deadline and no idle timeout: only the failed write may end this.
        let task = tokio::spawn(bridge(
            sender_side,
            listener_side,
            settings_with(0, 1 << 20),
        ));
        let (mut sink, mut stream) = sender.split();
        let flood = tokio::spawn(async move {
            let mut sent = 0usize;
            while sink
                .send(Message::binary(vec![7u8; 16 << 10]))
                .await
                .is_ok()
            {
                sent += 1;
            }
            sent
        });
        // The flood fills the listener's unread buffer, then the bridge and the sender block.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!flood.is_finished() && !task.is_finished());
        let gone = Instant::now();
        drop(unread);
        let closed = async {
            loop {
                if let Message::Close(Some(frame)) =
                    stream.next().await.expect("open").expect("message")
                {
                    return frame;
                }
            }
        };
        let frame = timeout(CLOSE_GRACE, closed)
            .await
            .expect("released in time");
        assert_eq!(frame.code, CloseCode::Away);
        assert!(
            frame.reason.starts_with("peer connection lost"),
            "{frame:?}"
        );
        assert!(
            gone.elapsed() < Duration::from_secs(1),
            "{:?}",
            gone.elapsed()
        );
        drop(stream);
        timeout(CLOSE_GRACE * 3, task)
            .await
            .expect("the bridge ends")
            .expect("task");
        let sent = timeout(CLOSE_GRACE, flood)
            .await
            .expect("flood released")
            .expect("task");
        assert!(sent > 4, "{sent} messages");
    }

    #[tokio::test]
    async fn broken_frames_get_precise_close_codes_on_both_sides() {
        let cases: [(Frame, u16, &str); 3] = [
            (
                Frame::message(vec![0u8; 2048], OpCode::Data(Data::Binary), true),
                1009,
                "a frame of 2048 bytes exceeds the limit of 1024 bytes",
            ),
            (
                Frame::message(vec![b'a', 0xFF], OpCode::Data(Data::Text), true),
                1007,
                "a text message is not valid UTF-8",
            ),
            (
                {
                    let mut frame = Frame::message(vec![1], OpCode::Data(Data::Binary), true);
                    frame.header_mut().rsv2 = true;
                    frame
                },
                1002,
                "protocol violation: a reserved bit set without an extension",
            ),
        ];
        for (frame, code, what) in cases {
            let (mut sender, sender_side) = frame_peer();
            let (mut listener, listener_side) = frame_peer();
            let task = tokio::spawn(bridge(
                sender_side,
                listener_side,
                settings_with(0, 1 << 10),
            ));
            let run = async {
                sender.send(frame).await.expect("send");
                let to_sender = close_of(&mut sender).await;
                assert_eq!(u16::from(to_sender.code), code);
                assert!(
                    to_sender
                        .reason
                        .starts_with(&format!("{what}. TrackingId:")),
                    "{to_sender:?}"
                );
                let to_listener = close_of(&mut listener).await;
                assert_eq!(u16::from(to_listener.code), code);
                assert!(
                    to_listener
                        .reason
                        .starts_with(&format!("sender: {what}. TrackingId:")),
                    "{to_listener:?}"
                );
                drop((sender, listener));
                task.await.expect("bridge ends");
            };
            timeout(Duration::from_secs(20), run)
                .await
                .expect("in time");
        }
    }
}
