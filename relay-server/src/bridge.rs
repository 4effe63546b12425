//! Bridging a sender's WebSocket with its listener's rendezvous WebSocket: messages are
//! forwarded opaquely in both directions (binary including zero-length end-of-stream
//! markers, text, and Close with its code and reason), one message at a time with a flush
//! each, so a slow side throttles the other (nothing is read ahead of what the other side has
//! taken). Pings are answered by tungstenite on each side and never forwarded; pings and
//! pongs count as activity.
//!
//! The bridge ends when both directions have closed, when it was idle (no message, keep-alives
//! included, either way) for the idle timeout, or when the relay's drain deadline passes; the
//! relay then closes both sides with 1001 and a reason carrying a `TrackingId`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::refusal::tracked_reason;
use crate::stats::{Direction, RelayStats};

/// How long a side may take to complete the closing handshake.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Settings of one bridge.
#[derive(Debug, Clone)]
pub(crate) struct BridgeSettings {
    /// Close after this long without data messages (zero: never).
    pub idle_timeout: Duration,
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

/// Time of the last data message, in milliseconds since the bridge started.
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

/// Forwards messages between `sender` and `listener` until the bridge ends.
pub(crate) async fn bridge<A, B>(
    sender: WebSocketStream<A>,
    listener: WebSocketStream<B>,
    settings: BridgeSettings,
) where
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
    let (sender_tx, sender_rx) = sender.split();
    let (listener_tx, listener_rx) = listener.split();
    let stats = &settings.stats;
    let up = pump(
        Direction::SenderToListener,
        sender_rx,
        listener_tx,
        (&activity, stats),
        &halt,
    );
    let down = pump(
        Direction::ListenerToSender,
        listener_rx,
        sender_tx,
        (&activity, stats),
        &halt,
    );
    let watchdog = watchdog(&activity, &halt, &settings);
    tokio::pin!(up, down, watchdog);
    // Once one direction is finished (or the relay halts the bridge), the other gets a
    // bounded time to finish its closing handshake.
    tokio::select! {
        () = &mut up => { let _ = timeout(CLOSE_GRACE, &mut down).await; }
        () = &mut down => { let _ = timeout(CLOSE_GRACE, &mut up).await; }
        () = &mut watchdog => {
            let _ = timeout(CLOSE_GRACE * 2, futures_util::future::join(&mut up, &mut down)).await;
        }
    }
    heap_trim::released();
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

/// One direction: reads `from`, writes `to`; data messages touch `activity` and are counted
/// in `stats`.
async fn pump<F, T>(
    way: Direction,
    mut from: SplitStream<WebSocketStream<F>>,
    mut to: SplitSink<WebSocketStream<T>, Message>,
    (activity, stats): (&Activity, &RelayStats),
    halt: &Halt,
) where
    F: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let direction = match way {
        Direction::SenderToListener => "sender->listener",
        Direction::ListenerToSender => "listener->sender",
    };
    // Set once `to` has been sent a Close; from then on `from` is only read until it ends
    // (which completes its closing handshake: tungstenite answers its Close while reading).
    let mut closed = false;
    // One registration with the token for the pump's whole life: a fresh `cancelled()` per
    // message would lock the token and queue a waiter twice per forwarded message.
    let halted = halt.token.cancelled();
    tokio::pin!(halted);
    loop {
        let next = if closed {
            from.next().await
        } else {
            tokio::select! {
                biased;
                () = &mut halted => {
                    send_close(&mut to, Some(halt.frame())).await;
                    closed = true;
                    continue;
                }
                next = from.next() => next,
            }
        };
        match next {
            Some(Ok(message @ (Message::Binary(_) | Message::Text(_)))) => {
                if closed {
                    continue;
                }
                activity.touch();
                stats.add_bytes(way, message.len());
                tokio::select! {
                    biased;
                    () = &mut halted => {}
                    sent = to.send(message) => if let Err(err) = sent {
                        tracing::debug!(direction, error = %err, "bridge: write failed");
                        closed = true;
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                if !closed {
                    tracing::debug!(direction, code = ?frame.as_ref().map(|f| f.code), "bridge: close");
                    send_close(&mut to, frame).await;
                    closed = true;
                }
            }
            // Pings are answered by tungstenite and not forwarded, but a keep-alive is activity:
            // a quiet tunnel whose ends ping must not hit the idle timeout.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => activity.touch(),
            Some(Ok(Message::Frame(_))) => {}
            Some(Err(err)) => {
                tracing::debug!(direction, error = %err, "bridge: read failed");
                if !closed {
                    send_close(&mut to, Some(lost())).await;
                }
                return;
            }
            None => {
                if !closed {
                    send_close(&mut to, Some(lost())).await;
                }
                return;
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

async fn send_close<T>(to: &mut SplitSink<WebSocketStream<T>, Message>, frame: Option<CloseFrame>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // Errors mean the other side is already gone; its own pump reports that.
    let _ = timeout(CLOSE_GRACE, to.send(Message::Close(frame))).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    async fn pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        (
            WebSocketStream::from_raw_socket(a, Role::Client, None).await,
            WebSocketStream::from_raw_socket(b, Role::Server, None).await,
        )
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
}
