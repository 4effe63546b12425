//! One control-channel session: reads `accept` and `request` messages (with a request's inline
//! body) and hands them on, sends the `response`s queued for it, renews the token
//! with `renewToken` before it expires, pings the relay (NATs drop idle connections after a few
//! minutes) and declares the channel dead when nothing arrived for three ping intervals.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hc_client::TokenSource;
use hc_client::pump::{pinger, sleep_until, tick};
use hc_client::token::IssuedToken;
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::protocol::CloseFrame;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hc_protocol::control::MAX_UNRECOGNIZED_JSON;
use hc_protocol::{Accept, ControlMessage, HttpRequest, RenewToken, redact_for_log};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http_mode::Outgoing;
use crate::status::ListenerStatus;

/// What a session hands on and sends: `on_accept` is called for each `accept`, `on_request`
/// for each complete `request` (its inline body, or empty); both must not block (they spawn).
/// `replies` are the `response`s to send on this channel.
pub struct Handlers<A, R> {
    /// Called for each `accept`.
    pub on_accept: A,
    /// Called for each `request` with its inline body.
    pub on_request: R,
    /// Answers to send on the control channel.
    pub replies: mpsc::Receiver<Outgoing>,
}

/// Why a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Shutdown was requested; the channel was closed with 1000.
    Shutdown,
    /// The relay closed the channel.
    Closed {
        /// Close code (1001 going away, 1008 token expired, 1011 error).
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// The connection ended without a Close frame.
    Vanished,
    /// Nothing arrived for three ping intervals.
    KeepAliveTimeout,
    /// The WebSocket failed.
    Failed(String),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("shut down"),
            Self::Closed { code, reason } => {
                let meaning = match code {
                    Some(1000) => "normal closure",
                    Some(1001) => "relay going away",
                    Some(1008) => "policy: token expired or renewal refused",
                    Some(1011) => "relay error",
                    _ => "closed",
                };
                match code {
                    Some(c) => write!(f, "closed by relay: {c} {meaning}")?,
                    None => write!(f, "closed by relay")?,
                }
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                Ok(())
            }
            Self::Vanished => f.write_str("connection dropped"),
            Self::KeepAliveTimeout => f.write_str("no answer to keep-alive pings"),
            Self::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Runs one session on an open control channel until it ends.
pub async fn session<S, A, R>(
    mut ws: WebSocketStream<S>,
    tokens: &TokenSource,
    token: &IssuedToken,
    ping: Option<Duration>,
    status: &ListenerStatus,
    shutdown: &CancellationToken,
    mut handlers: Handlers<A, R>,
) -> SessionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: FnMut(Accept),
    R: FnMut(HttpRequest, Bytes),
{
    // A `request` whose body is the next binary message.
    let mut awaiting_body: Option<HttpRequest> = None;
    let mut renew_at = token.renew_after.map(|d| Instant::now() + d);
    let mut pings = ping.filter(|d| !d.is_zero()).map(pinger);
    let mut last_rx = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "listener shutting down".into() };
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(Some(frame))).await;
                return SessionEnd::Shutdown;
            }
            Some(reply) = handlers.replies.recv() => {
                if let Err(e) = send_reply(&mut ws, reply).await {
                    return SessionEnd::Failed(e.to_string());
                }
            }
            msg = ws.next() => {
                last_rx = Instant::now();
                if let Some(request) = awaiting_body.take() {
                    match msg {
                        Some(Ok(Message::Binary(body))) => {
                            (handlers.on_request)(request, body);
                            continue;
                        }
                        // Anything else where a body was announced: the request has none.
                        _ => (handlers.on_request)(request, Bytes::new()),
                    }
                }
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        awaiting_body = on_text(&text, &mut handlers);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return SessionEnd::Closed {
                            code: frame.as_ref().map(|f| u16::from(f.code)),
                            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return SessionEnd::Failed(e.to_string()),
                    None => return SessionEnd::Vanished,
                }
            }
            _ = sleep_until(renew_at) => {
                renew_at = match renew(&mut ws, tokens, status).await {
                    Ok(next) => next,
                    Err(e) => return SessionEnd::Failed(e.to_string()),
                };
            }
            _ = tick(pings.as_mut()) => {
                let every = ping.unwrap_or(Duration::MAX);
                if last_rx.elapsed() > every.saturating_mul(3) {
                    return SessionEnd::KeepAliveTimeout;
                }
                if let Err(e) = ws.send(Message::Ping(Default::default())).await {
                    return SessionEnd::Failed(e.to_string());
                }
            }
        }
    }
}

/// Acts on one control message from the relay: an `accept` or a `request` goes to its
/// handler, anything else is logged and ignored. Returns the request whose body is the next
/// binary message, if this one announced one.
fn on_text<A, R>(text: &str, handlers: &mut Handlers<A, R>) -> Option<HttpRequest>
where
    A: FnMut(Accept),
    R: FnMut(HttpRequest, Bytes),
{
    match ControlMessage::parse(text) {
        Ok(ControlMessage::Accept(accept)) => (handlers.on_accept)(accept),
        Ok(ControlMessage::Request(request)) if request.body == Some(true) => {
            return Some(request);
        }
        Ok(ControlMessage::Request(request)) => {
            (handlers.on_request)(request, Bytes::new());
        }
        Ok(ControlMessage::Unrecognized { command, text }) => {
            // Redacted: text from the network may hold a token.
            let command = redact_for_log(&command, MAX_UNRECOGNIZED_JSON);
            let text = redact_for_log(&text, MAX_UNRECOGNIZED_JSON);
            tracing::debug!(command, text, "ignoring unknown control command");
        }
        Ok(ControlMessage::RenewToken(_)) => {
            tracing::debug!("ignoring renewToken sent by the relay");
        }
        Ok(ControlMessage::Response(_)) => {
            tracing::debug!("ignoring a response sent by the relay");
        }
        Err(e) => {
            // serde quotes what it could not read: redact it.
            let error = redact_for_log(&e.to_string(), MAX_UNRECOGNIZED_JSON);
            tracing::debug!("ignoring control message: {error}");
        }
    }
    None
}

/// Sends the relay a fresh token (`renewToken`); returns when to renew next. A token that
/// cannot be issued is logged and not retried on this channel; a failed send ends it.
async fn renew<S>(
    ws: &mut WebSocketStream<S>,
    tokens: &TokenSource,
    status: &ListenerStatus,
) -> Result<Option<Instant>, hc_client::tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokens.issue() {
        Ok(fresh) => {
            let msg = ControlMessage::RenewToken(RenewToken {
                token: fresh.token.expose().to_owned(),
            });
            ws.send(Message::text(msg.to_json())).await?;
            status.update(|s| s.token_renewals += 1);
            tracing::debug!("renewed the control channel token");
            Ok(fresh.renew_after.map(|d| Instant::now() + d))
        }
        Err(e) => {
            tracing::warn!("cannot renew the control channel token: {e}");
            Ok(None)
        }
    }
}

/// Sends one answer: its text, then its body as a binary message.
async fn send_reply<S>(
    ws: &mut WebSocketStream<S>,
    reply: Outgoing,
) -> Result<(), hc_client::tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.feed(Message::text(reply.text)).await?;
    if let Some(body) = reply.body {
        ws.feed(Message::binary(body)).await?;
    }
    ws.flush().await
}
