//! A listener's control channel once its WebSocket is up: it carries `accept` and HTTP-mode
//! `request` messages to the listener, takes `renewToken` and `response` (with the binary
//! body message after it) from it, and enforces the token's lifetime.
//!
//! - `renewToken` with a valid token moves the deadline; an invalid one closes with 1008.
//! - At the token's expiry (without renewal) the channel closes with 1008.
//! - A channel quiet for the ping interval is pinged; when nothing (pong or anything else)
//!   comes back within [`PONG_WAIT`] intervals it is closed with 1001 and the listener
//!   unregistered (gone without a FIN: a dead NAT mapping, a stopped or frozen process), so
//!   senders get "no listener" at once instead of waiting for a dead listener. With the
//!   default 2 s interval a listener is dropped at most about 8 s after it was last heard.
//! - Unsolicited pongs are fine (the .NET client sends them as keep-alive); pings are
//!   answered by tungstenite; unknown commands are logged (first 1 KiB) at debug and ignored.
//! - Relay shutdown closes with 1001.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hc_protocol::control::MAX_UNRECOGNIZED_JSON;
use hc_protocol::status::{CLOSE_GOING_AWAY, CLOSE_POLICY};
use hc_protocol::{ControlMessage, HttpResponse, redact_for_log};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;

use crate::auth::unix_millis;
use crate::bridge::CLOSE_GRACE;
use crate::http_exchange::{Exchanges, ListenerReply};
use crate::hub::{ListenerLoss, Outbound};
use crate::refusal::{MAX_CLOSE_REASON, Refusal, tracked_reason};

/// Ping intervals the listener has to answer a ping (with a pong or any other message).
pub(crate) const PONG_WAIT: u32 = 2;

/// Verifies a `renewToken` token; returns its expiry (Unix seconds).
pub(crate) type RenewCheck = Box<dyn Fn(&str) -> Result<u64, Refusal> + Send + Sync>;

/// Everything a control channel needs besides its WebSocket.
pub(crate) struct ControlChannel {
    /// Accept and request messages for this listener.
    pub accepts: mpsc::Receiver<Box<Outbound>>,
    /// The listener's id in the hub (responses are only taken for requests it was given).
    pub listener_id: u64,
    /// Where HTTP-mode responses go.
    pub exchanges: Arc<Exchanges>,
    /// The current token's expiry (Unix seconds).
    pub expiry: u64,
    /// Checks renewed tokens.
    pub renew: RenewCheck,
    /// Ping a quiet channel this often (zero: never).
    pub ping_interval: Duration,
    /// Relay shutdown.
    pub shutdown: CancellationToken,
    /// Where the channel declares its listener dead (senders waiting on it stop waiting).
    pub lost: Arc<ListenerLoss>,
}

/// Why a control channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The listener closed it or the connection dropped.
    ByListener,
    /// The relay closed it with this code and reason.
    ByRelay(u16, String),
}

/// The tokio instant of a wall-clock expiry (Unix seconds).
fn deadline_of(expiry: u64) -> Instant {
    let now_ms = unix_millis();
    let left = u128::from(expiry)
        .saturating_mul(1000)
        .saturating_sub(now_ms);
    Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX / 4))
}

/// Runs the control channel until it ends.
pub(crate) async fn run<S>(mut ws: WebSocketStream<S>, mut cc: ControlChannel) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut expires_at = deadline_of(cc.expiry);
    let pinging = !cc.ping_interval.is_zero();
    let mut ticker = tokio::time::interval(if pinging {
        cc.ping_interval
    } else {
        Duration::from_secs(3600)
    });
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.reset();
    let mut last_heard = Instant::now();
    // When the outstanding ping must have been answered.
    let mut pong_due: Option<Instant> = None;
    // A `response` whose body message is still to come.
    let mut awaiting_body: Option<HttpResponse> = None;
    let end = loop {
        tokio::select! {
            () = cc.shutdown.cancelled() => break (CLOSE_GOING_AWAY, "relay shutting down".to_owned()),
            () = sleep_until(expires_at) => break (CLOSE_POLICY, "token expired".to_owned()),
            () = sleep_until(pong_due.unwrap_or_else(Instant::now)), if pong_due.is_some() => {
                let silent = Instant::now().duration_since(last_heard);
                cc.lost.declare(format!(
                    "the listener stopped responding (nothing from it for {} s, pings unanswered)",
                    silent.as_secs()
                ));
                break (CLOSE_GOING_AWAY, "no response to pings".to_owned());
            }
            _ = ticker.tick(), if pinging && pong_due.is_none() => {
                let now = Instant::now();
                if now.duration_since(last_heard) >= cc.ping_interval {
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        return Ended::ByListener;
                    }
                    pong_due = Some(now + cc.ping_interval * PONG_WAIT);
                }
            }
            accept = cc.accepts.recv() => {
                let Some(outbound) = accept else {
                    break (CLOSE_GOING_AWAY, "listener unregistered".to_owned());
                };
                if send_outbound(&mut ws, *outbound).await.is_err() {
                    return Ended::ByListener;
                }
            }
            message = ws.next() => {
                last_heard = Instant::now();
                pong_due = None;
                match message {
                    None | Some(Err(_)) => {
                        cc.lost.declare("the listener's control channel was lost (connection dropped without a close)");
                        return drain(ws).await;
                    }
                    Some(Ok(Message::Close(_))) => return drain(ws).await,
                    Some(Ok(message)) => {
                        if let Some(end) = on_data(message, &cc, &mut expires_at, &mut awaiting_body) {
                            break end;
                        }
                    }
                }
            }
        }
    };
    // Unregister before the closing handshake (up to its grace): from now on senders and
    // HTTP requests see no listener here instead of waiting for one that is gone.
    cc.accepts.close();
    cc.exchanges.listener_gone(cc.listener_id);
    close(ws, end.0, &tracked_reason(&end.1)).await;
    Ended::ByRelay(end.0, end.1)
}

/// A text or binary message from the listener: a command, a response head, or the body of
/// the response announced before it. Returns the close code and reason when the channel must
/// close.
fn on_data(
    message: Message,
    cc: &ControlChannel,
    expires_at: &mut Instant,
    awaiting_body: &mut Option<HttpResponse>,
) -> Option<(u16, String)> {
    match message {
        Message::Text(text) => {
            // A text where a body was announced: that response has no body.
            if let Some(head) = awaiting_body.take() {
                deliver(cc, head, Bytes::new());
            }
            match on_command(text.as_str(), cc, expires_at) {
                Command::Close(reason) => return Some((CLOSE_POLICY, reason)),
                Command::Response(head) if head.body => *awaiting_body = Some(head),
                Command::Response(head) => deliver(cc, head, Bytes::new()),
                Command::Done => {}
            }
        }
        Message::Binary(data) => match awaiting_body.take() {
            Some(head) => deliver(cc, head, data),
            // hyco-https sends an empty binary message after a body-less response.
            None => tracing::debug!(
                bytes = data.len(),
                "control channel: binary message ignored"
            ),
        },
        _ => {}
    }
    None
}

/// Sends one queued item: its text, then its binary body if it has one.
async fn send_outbound<S>(
    ws: &mut WebSocketStream<S>,
    outbound: Outbound,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.feed(Message::text(outbound.text)).await?;
    if let Some(body) = outbound.body {
        ws.feed(Message::binary(body)).await?;
    }
    ws.flush().await
}

/// Hands a listener's response to the HTTP request waiting for it.
fn deliver(cc: &ControlChannel, head: HttpResponse, body: Bytes) {
    let id = head.request_id.clone();
    if !cc
        .exchanges
        .answer(cc.listener_id, ListenerReply { head, body })
    {
        tracing::debug!(request = %id, "control channel: response to no waiting request ignored");
    }
}

/// What a text command asks of the channel.
enum Command {
    Done,
    /// Close with this reason.
    Close(String),
    /// An HTTP-mode response (its body, if any, is the next binary message).
    Response(HttpResponse),
}

/// Handles one text command.
fn on_command(text: &str, cc: &ControlChannel, expires_at: &mut Instant) -> Command {
    match ControlMessage::parse(text) {
        Ok(ControlMessage::RenewToken(renew)) => match (cc.renew)(&renew.token) {
            Ok(expiry) => {
                *expires_at = deadline_of(expiry);
                tracing::debug!(expiry, "control channel: token renewed");
                Command::Done
            }
            Err(refusal) => {
                tracing::info!(reason = %refusal.description, "control channel: renewToken refused");
                Command::Close(refusal.description)
            }
        },
        Ok(ControlMessage::Response(response)) => Command::Response(response),
        Ok(ControlMessage::Unrecognized { command, text }) => {
            // Redacted: a listener may put a token where we do not expect one.
            let text = redact_for_log(&text, MAX_UNRECOGNIZED_JSON);
            let command = redact_for_log(&command, MAX_UNRECOGNIZED_JSON);
            tracing::debug!(%command, %text, "control channel: unknown command ignored");
            Command::Done
        }
        Ok(ControlMessage::Accept(_) | ControlMessage::Request(_)) => {
            tracing::debug!("control channel: accept or request from a listener ignored");
            Command::Done
        }
        Err(err) => {
            // Redacted, the error too: serde quotes the value it could not read, which may be
            // a complete token (a renewToken with a field of the wrong type).
            let error = redact_for_log(&err.to_string(), MAX_UNRECOGNIZED_JSON);
            let text = redact_for_log(text, MAX_UNRECOGNIZED_JSON);
            tracing::debug!(%error, %text, "control channel: malformed message ignored");
            Command::Done
        }
    }
}

/// Sends a Close and waits (bounded) for the listener's answer.
async fn close<S>(mut ws: WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = CloseFrame {
        code: code.into(),
        reason: reason[..cut].into(),
    };
    if timeout(CLOSE_GRACE, ws.close(Some(frame))).await.is_ok() {
        let _ = drain(ws).await;
    }
}

/// Reads until the connection ends, bounded, to complete a closing handshake.
async fn drain<S>(mut ws: WebSocketStream<S>) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ended::ByListener
}

#[cfg(test)]
mod tests {
    use hc_protocol::{RenewToken, SasToken, Secret};
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;
    use crate::auth::{Authorizer, unix_now};
    use crate::config::{HybridConnectionConfig, Right, SasRule};

    struct Fixture {
        listener: WebSocketStream<DuplexStream>,
        accepts: mpsc::Sender<Box<Outbound>>,
        shutdown: CancellationToken,
        lost: Arc<ListenerLoss>,
        task: tokio::task::JoinHandle<Ended>,
    }

    fn token(ttl: u64) -> String {
        SasToken::sign(
            "http://relay/hc",
            "listen",
            &Secret::new("key"),
            unix_now() + ttl,
        )
        .expect("sign")
        .expose()
        .to_owned()
    }

    async fn start(ttl: u64, ping: u64) -> Fixture {
        let (a, b) = tokio::io::duplex(1 << 16);
        let listener = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let relay_side = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        let hc = HybridConnectionConfig::new(
            "hc",
            vec![SasRule::new("listen", "key", &[Right::Listen])],
        );
        let auth = Authorizer {
            namespace_rules: Vec::new(),
            accepted_hosts: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let lost = Arc::new(ListenerLoss::default());
        let cc = ControlChannel {
            accepts: rx,
            listener_id: 1,
            exchanges: Arc::default(),
            expiry: unix_now() + ttl,
            renew: Box::new(move |t| {
                auth.authorize(&hc, Some(t), Right::Listen, unix_now(), Some("relay"))
                    .map(|a| a.expiry)
            }),
            ping_interval: Duration::from_secs(ping),
            shutdown: shutdown.clone(),
            lost: lost.clone(),
        };
        Fixture {
            listener,
            accepts: tx,
            shutdown,
            lost,
            task: tokio::spawn(run(relay_side, cc)),
        }
    }

    /// The next non-ping message.
    async fn next(ws: &mut WebSocketStream<DuplexStream>) -> Message {
        loop {
            match ws.next().await.expect("open").expect("ok") {
                Message::Ping(_) => continue,
                m => return m,
            }
        }
    }

    fn close_of(m: Message) -> (u16, String) {
        match m {
            Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
            other => panic!("expected close, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_without_renewal_closes_1008() {
        let mut f = start(120, 0).await;
        let start = Instant::now();
        let (code, reason) = close_of(next(&mut f.listener).await);
        assert_eq!(code, 1008);
        assert!(reason.starts_with("token expired. TrackingId:"), "{reason}");
        assert!(
            start.elapsed() >= Duration::from_secs(118),
            "{:?}",
            start.elapsed()
        );
        drop(f.listener);
        assert_eq!(
            f.task.await.expect("task"),
            Ended::ByRelay(1008, "token expired".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_extends_past_original_expiry() {
        let mut f = start(120, 0).await;
        let renew = ControlMessage::RenewToken(RenewToken { token: token(3600) }).to_json();
        f.listener.send(Message::text(renew)).await.expect("send");
        // Past the original expiry the channel still carries accepts.
        tokio::time::sleep(Duration::from_secs(600)).await;
        f.accepts
            .send(Box::new("{\"accept\":{}}".into()))
            .await
            .expect("queue");
        assert_eq!(
            next(&mut f.listener).await,
            Message::text("{\"accept\":{}}")
        );
        // A bad renewal closes with 1008.
        let bad = ControlMessage::RenewToken(RenewToken {
            token: "SharedAccessSignature x".into(),
        })
        .to_json();
        f.listener.send(Message::text(bad)).await.expect("send");
        let (code, _) = close_of(next(&mut f.listener).await);
        assert_eq!(code, 1008);
        drop(f.listener);
        f.task.await.expect("task");
    }

    #[tokio::test(start_paused = true)]
    async fn pings_quiet_channels_tolerates_pongs_and_unknown_commands() {
        let mut f = start(3600, 30).await;
        f.listener
            .send(Message::Pong(Default::default()))
            .await
            .expect("pong");
        f.listener
            .send(Message::text("{\"injectFault\":{\"delay\":1}}"))
            .await
            .expect("text");
        f.listener
            .send(Message::text("not json"))
            .await
            .expect("text");
        // The relay pings; our reads answer with pongs, which keeps the channel alive.
        let mut pings = 0;
        while pings < 4 {
            if let Message::Ping(_) = f.listener.next().await.expect("open").expect("ok") {
                pings += 1;
            }
        }
        f.shutdown.cancel();
        let (code, _) = close_of(next(&mut f.listener).await);
        assert_eq!(code, CLOSE_GOING_AWAY);
        drop(f.listener);
        f.task.await.expect("task");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_listener_is_dropped() {
        let f = start(3600, 30).await;
        let started = Instant::now();
        // Nobody reads the listener side, so no pongs come back.
        let ended = f.task.await.expect("task");
        assert_eq!(ended, Ended::ByRelay(1001, "no response to pings".into()));
        // Pinged after one quiet interval, dropped two intervals later (plus the close grace).
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(90), "{took:?}");
        assert!(
            took <= Duration::from_secs(90) + CLOSE_GRACE * 2,
            "{took:?}"
        );
        drop(f.listener);
    }

    #[tokio::test(start_paused = true)]
    async fn frozen_listener_is_dropped_within_ten_seconds_by_default() {
        let interval = crate::config::Limits::default().control_ping_interval;
        let mut f = start(3600, interval.as_secs()).await;
        // The listener answers pings for a while (reading makes tungstenite pong)...
        let alive_until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < alive_until {
            let _ = timeout(Duration::from_millis(500), f.listener.next()).await;
        }
        assert!(!f.accepts.is_closed(), "dropped while answering");
        // ...then freezes (like a SIGSTOPped process): no more pongs.
        let frozen = Instant::now();
        for _ in 0..200 {
            if f.accepts.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Unregistered (no more accepts or requests reach it) within 10 s.
        assert!(f.accepts.is_closed(), "still registered");
        assert!(
            frozen.elapsed() <= Duration::from_secs(10),
            "{:?}",
            frozen.elapsed()
        );
        // Declared dead, with the cause, for the senders whose accepts it took.
        let reason = timeout(Duration::from_millis(1), f.lost.wait())
            .await
            .expect("declared lost");
        assert!(
            reason.starts_with("the listener stopped responding (nothing from it for"),
            "{reason}"
        );
        assert_eq!(
            f.task.await.expect("task"),
            Ended::ByRelay(1001, "no response to pings".into())
        );
        drop(f.listener);
    }

    /// Log lines captured by a test's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_messages_carrying_a_valid_token_log_no_token_at_debug() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // The test runtime has one thread, so the channel's task logs to this subscriber.
        // A second live dispatcher: with only one registered, tracing takes a call site's interest
        // from the first thread to reach it, and another test's thread (no subscriber) would
        // silence that line for the whole process. With two, it asks every live dispatcher.
        let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut f = start(3600, 0).await;
        let valid = token(3600);
        let signature = valid
            .split('&')
            .find_map(|p| p.strip_prefix("sig="))
            .expect("signature")
            .to_owned();
        let quoted = serde_json::to_string(&valid).expect("json");
        for text in [
            format!("{{\"renewToken\":{{\"token\":7,\"stray\":{quoted}}}}}"),
            format!("{{\"renewToken\":{{\"token\":[{quoted}]}}}}"),
            // serde's error quotes this string: the error is redacted too.
            format!("{{\"renewToken\":{quoted}}}"),
            format!("{{\"oops\":{quoted}}}"),
            format!("not json {valid}"),
        ] {
            f.listener.send(Message::text(text)).await.expect("send");
        }
        let renew = ControlMessage::RenewToken(RenewToken { token: valid }).to_json();
        f.listener.send(Message::text(renew)).await.expect("send");
        // The log is the only signal: polled, at most 20 s (5 s proved short on a loaded box).
        for _ in 0..2000 {
            if logs.text().contains("token renewed") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = logs.text();
        assert!(text.contains("token renewed"), "{text}");
        assert!(text.contains("malformed message ignored"), "{text}");
        assert!(text.contains("unknown command ignored"), "{text}");
        assert!(!text.contains(&signature), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        f.shutdown.cancel();
        drop(f.listener);
        f.task.await.expect("task");
    }

    #[test]
    fn close_codes_are_protocol_codes() {
        assert_eq!(u16::from(CloseCode::Policy), CLOSE_POLICY);
        assert_eq!(u16::from(CloseCode::Away), CLOSE_GOING_AWAY);
    }
}
