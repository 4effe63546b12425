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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, OpCode};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::frames::{End, FrameCodec};
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
    fn trigger(&self, reason: &'static str) {
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
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The writing half of one side, shared by the pump towards it (data, Close) and the pump
/// from it (answers to its pings).
struct Writer<T> {
    sink: SplitSink<Framed<T, FrameCodec>, Frame>,
    /// A Close was sent to this side: nothing may follow it.
    closed: bool,
}

type Side<T> = Mutex<Writer<T>>;

impl<T: AsyncRead + AsyncWrite + Unpin> Writer<T> {
    /// Sends `frame` unless a Close went out already (a Close marks the side closed and is
    /// bounded by [`CLOSE_GRACE`]). Errors mean the side is gone; its own pump reports that.
    async fn send(&mut self, frame: Frame) {
        if self.closed {
            return;
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
        }
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
    });
    let codec = FrameCodec::new(End::Server, settings.max_frame);
    let (sender_tx, sender_rx) = Framed::new(sender, codec.clone()).split();
    let (listener_tx, listener_rx) = Framed::new(listener, codec).split();
    let sender_side = Mutex::new(Writer {
        sink: sender_tx,
        closed: false,
    });
    let listener_side = Mutex::new(Writer {
        sink: listener_tx,
        closed: false,
    });
    let shared = (&*activity, &settings.stats, &halt);
    let up = pump(
        Direction::SenderToListener,
        sender_rx,
        (&sender_side, &listener_side),
        shared,
    );
    let down = pump(
        Direction::ListenerToSender,
        listener_rx,
        (&listener_side, &sender_side),
        shared,
    );
    let watchdog = watchdog(&activity, &halt, &settings);
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

/// Halts the bridge when it has been idle too long or the relay's drain deadline passed.
async fn watchdog(activity: &Activity, halt: &Halt, settings: &BridgeSettings) {
    loop {
        let deadline =
            (!settings.idle_timeout.is_zero()).then(|| activity.last() + settings.idle_timeout);
        tokio::select! {
            () = settings.drain.cancelled() => {
                halt.trigger("relay shutting down");
                return;
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if activity.last() + settings.idle_timeout <= Instant::now() {
                    halt.trigger("idle timeout");
                    return;
                }
            }
        }
    }
}

/// One direction: reads frames from its side (`own`'s reader), forwards data and Close to
/// `to`, answers pings on `own`; every frame touches the activity, data is counted.
async fn pump<F, T>(
    way: Direction,
    mut from: SplitStream<Framed<F, FrameCodec>>,
    (own, to): (&Side<F>, &Side<T>),
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
            end => {
                if let Some(Err(err)) = end {
                    tracing::debug!(direction, error = %err, "bridge: read failed");
                }
                to.lock().await.send(close_frame(lost())).await;
                return Ended::Lost;
            }
        };
        // Pings and pongs count too: a quiet tunnel whose ends ping must not hit the idle
        // timeout.
        activity.touch();
        match frame.header().opcode {
            OpCode::Control(Control::Close) => {
                tracing::debug!(direction, "bridge: close forwarded");
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
                tokio::select! {
                    biased;
                    () = &mut halted, if !halt_sent => {
                        halt_sent = true;
                        to.lock().await.send(close_frame(halt.frame())).await;
                    }
                    () = async { to.lock().await.send(frame).await } => {}
                }
            }
        }
    }
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
        let Message::Close(Some(frame)) = next_data(&mut sender).await else {
            panic!("expected the relay's close");
        };
        assert_eq!(frame.code, CloseCode::Away);
        assert!(
            frame
                .reason
                .starts_with("no close after the peer's close. TrackingId:"),
            "{frame:?}"
        );
        assert!(start.elapsed() >= CLOSE_LINGER, "{:?}", start.elapsed());
        drop(listener);
        task.await.expect("bridge ends");
    }
}
