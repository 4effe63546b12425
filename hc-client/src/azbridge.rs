//! Azure Relay Bridge's in-stream preamble, so our local-proxy can feed an `azbridge -T`
//! listener and `azbridge -L` can reach our relay-listener.
//!
//! `azbridge` (Microsoft's .NET bridge) puts its own small handshake at the start of every
//! Hybrid Connections stream (`RemoteForwardBridge.cs`, `SocketLocalForwardBridge.cs`):
//!
//! - the sender writes `[1, 0, mode, len]` and `len` bytes of UTF-8 port name; `mode` is 0 for
//!   a TCP stream, 1 for datagrams; the port name selects one of the listener's forwarders
//!   (`-T relay:port_name/host:port`; `azbridge -L` sends the local port number by default);
//! - the listener answers three bytes: `[1, 0, mode]` to accept, `[0, 0, 0]` for an unknown
//!   version, `[0, 0, 1]` when the port is a UDP forwarder but the sender asked for a stream,
//!   `[0, 0, 255]` when the sender asked for datagrams from a stream forwarder;
//! - a port name the listener does not know gets **no reply**: azbridge just closes the
//!   connection. We do the same and put the reason in the WebSocket Close frame, which our
//!   local-proxy logs (azbridge ignores it);
//! - azbridge accepts any numeric port name when it has exactly one forwarder (so
//!   `azbridge -L 12300:relay` works without naming the port); [`port_accepted`] does too.
//!
//! The bytes travel inside the WebSocket's binary messages like any payload, possibly split
//! or joined with the first payload bytes; whatever follows the preamble in the same message
//! is returned to the caller, which must hand it on before pumping.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Preamble version 1.0.
pub const VERSION: [u8; 2] = [1, 0];
/// `mode` of a TCP stream.
pub const MODE_STREAM: u8 = 0;
/// `mode` of a datagram (UDP) forwarder.
pub const MODE_DATAGRAM: u8 = 1;
/// The listener's acceptance of a TCP stream.
pub const REPLY_OK: [u8; 3] = [1, 0, MODE_STREAM];
/// Unknown preamble version.
pub const REPLY_BAD_VERSION: [u8; 3] = [0, 0, 0];
/// The port is a UDP forwarder, the sender asked for a stream.
pub const REPLY_DATAGRAM_ONLY: [u8; 3] = [0, 0, 1];
/// The sender asked for datagrams from a stream forwarder.
pub const REPLY_MODE_MISMATCH: [u8; 3] = [0, 0, 255];

/// The preamble failed; `Display` is one line for the log.
#[derive(Debug, thiserror::Error)]
pub enum AzbridgeError {
    /// Port names are 1 to 255 bytes.
    #[error("azbridge port name {0:?} must be 1 to 255 bytes")]
    BadPortName(String),
    /// The listener answered `[0, 0, 0]`.
    #[error("azbridge listener refused the preamble: unknown version (reply 0,0,0)")]
    UnknownVersion,
    /// The listener answered `[0, 0, 1]`.
    #[error("azbridge listener refused port {0:?}: it is a UDP forwarder (reply 0,0,1)")]
    DatagramOnly(String),
    /// The listener answered `[0, 0, 255]`.
    #[error("azbridge listener refused port {0:?}: stream/datagram mode mismatch (reply 0,0,255)")]
    ModeMismatch(String),
    /// The listener answered something else.
    #[error("azbridge listener sent an unexpected preamble reply {0:?}")]
    UnexpectedReply([u8; 3]),
    /// The peer closed before the preamble was complete.
    #[error("azbridge peer closed the connection during the preamble: {0}")]
    Closed(String),
    /// The preamble did not complete in time.
    #[error("azbridge preamble not completed within {0:?}")]
    Timeout(Duration),
    /// The WebSocket failed.
    #[error("azbridge preamble: {0}")]
    WebSocket(String),
    /// A sender used a version other than 1.0.
    #[error("azbridge sender used preamble version {0}.{1}; answered 0,0,0")]
    BadVersion(u8, u8),
    /// A sender named a port this listener does not serve.
    #[error("unknown azbridge port name {0:?}; connection closed without reply")]
    UnknownPort(String),
    /// A sender asked for datagram mode.
    #[error("azbridge sender asked for datagram mode on port {0:?}; answered 0,0,255")]
    Datagram(String),
}

/// The sender's preamble for `port_name`.
///
/// # Errors
/// [`AzbridgeError::BadPortName`] for an empty or over-long name.
pub fn preamble(port_name: &str) -> Result<Vec<u8>, AzbridgeError> {
    let len = u8::try_from(port_name.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AzbridgeError::BadPortName(port_name.to_owned()))?;
    let mut out = vec![VERSION[0], VERSION[1], MODE_STREAM, len];
    out.extend_from_slice(port_name.as_bytes());
    Ok(out)
}

/// Whether a listener serving `port_names` accepts `requested` (azbridge's rule: a name in the
/// list, or any number when there is exactly one forwarder).
pub fn port_accepted(port_names: &[String], requested: &str) -> bool {
    port_names.iter().any(|p| p == requested)
        || (port_names.len() == 1 && requested.parse::<u32>().is_ok())
}

/// Bytes read from a WebSocket's data messages, consumed a few at a time.
struct Reader<'a, S> {
    ws: &'a mut WebSocketStream<S>,
    pending: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Reader<'_, S> {
    async fn take(&mut self, n: usize) -> Result<Bytes, AzbridgeError> {
        while self.pending.len() < n {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => self.pending.extend_from_slice(&b),
                Some(Ok(Message::Text(t))) => self.pending.extend_from_slice(t.as_bytes()),
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame
                        .map(|f| f.reason.to_string())
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| "no reason given (unknown port name?)".to_owned());
                    return Err(AzbridgeError::Closed(reason));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(AzbridgeError::WebSocket(e.to_string())),
                None => return Err(AzbridgeError::Closed("connection dropped".into())),
            }
        }
        Ok(self.pending.split_to(n).freeze())
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    bytes: &[u8],
) -> Result<(), AzbridgeError> {
    ws.send(Message::binary(bytes.to_vec()))
        .await
        .map_err(|e| AzbridgeError::WebSocket(e.to_string()))
}

async fn close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: reason.chars().take(120).collect::<String>().into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(Some(frame))).await;
}

/// Sender side: writes the preamble for `port_name` and requires `[1, 0, 0]` within `limit`.
/// Returns payload bytes that arrived right after the reply.
///
/// # Errors
/// [`AzbridgeError`] naming the refusal; the WebSocket should then be dropped.
pub async fn offer<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    port_name: &str,
    limit: Duration,
) -> Result<Bytes, AzbridgeError> {
    let hello = preamble(port_name)?;
    let run = async {
        send(ws, &hello).await?;
        let mut reader = Reader {
            ws,
            pending: BytesMut::new(),
        };
        let reply = reader.take(3).await?;
        let reply = [reply[0], reply[1], reply[2]];
        let port = port_name.to_owned();
        match reply {
            REPLY_OK => Ok(reader.pending.freeze()),
            REPLY_BAD_VERSION => Err(AzbridgeError::UnknownVersion),
            REPLY_DATAGRAM_ONLY => Err(AzbridgeError::DatagramOnly(port)),
            REPLY_MODE_MISMATCH => Err(AzbridgeError::ModeMismatch(port)),
            other => Err(AzbridgeError::UnexpectedReply(other)),
        }
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| AzbridgeError::Timeout(limit))?
}

/// Listener side: reads a sender's preamble within `limit`, checks it against `port_names`
/// ([`port_accepted`]) and answers it. Returns the port name and payload bytes that followed
/// the preamble. A refusal is answered as azbridge does (see the module documentation) and
/// the WebSocket closed.
///
/// # Errors
/// [`AzbridgeError`]: what the sender did wrong (for the log and the status).
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    port_names: &[String],
    limit: Duration,
) -> Result<(String, Bytes), AzbridgeError> {
    let run = async {
        let mut reader = Reader {
            ws: &mut *ws,
            pending: BytesMut::new(),
        };
        let head = reader.take(3).await?;
        if head[..2] != VERSION || head[2] > MODE_DATAGRAM {
            send(reader.ws, &REPLY_BAD_VERSION).await?;
            close(reader.ws, "unknown azbridge preamble version").await;
            return Err(AzbridgeError::BadVersion(head[0], head[1]));
        }
        let len = usize::from(reader.take(1).await?[0]);
        let name = reader.take(len).await?;
        let name = String::from_utf8_lossy(&name).into_owned();
        if !port_accepted(port_names, &name) {
            close(reader.ws, &format!("unknown azbridge port name '{name}'")).await;
            return Err(AzbridgeError::UnknownPort(name));
        }
        if head[2] == MODE_DATAGRAM {
            send(reader.ws, &REPLY_MODE_MISMATCH).await?;
            close(reader.ws, "this port forwards TCP, not datagrams").await;
            return Err(AzbridgeError::Datagram(name));
        }
        send(reader.ws, &REPLY_OK).await?;
        Ok((name, reader.pending.freeze()))
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| AzbridgeError::Timeout(limit))?
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    async fn pair() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(1 << 16);
        (
            WebSocketStream::from_raw_socket(a, Role::Client, None).await,
            WebSocketStream::from_raw_socket(b, Role::Server, None).await,
        )
    }

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn preamble_layout_and_port_rules() {
        assert_eq!(preamble("db").expect("ok"), [1, 0, 0, 2, b'd', b'b']);
        assert!(preamble("").is_err());
        assert!(preamble(&"x".repeat(256)).is_err());
        let one = vec!["license".to_owned()];
        assert!(port_accepted(&one, "license"));
        assert!(port_accepted(&one, "12300"));
        assert!(!port_accepted(&one, "other"));
        let two = vec!["a".to_owned(), "b".to_owned()];
        assert!(port_accepted(&two, "b"));
        assert!(!port_accepted(&two, "12300"));
    }

    #[tokio::test]
    async fn accepted_preamble_returns_following_bytes() {
        let (mut sender, mut listener) = pair().await;
        let names = vec!["license".to_owned()];
        // The sender's first payload rides in the same message as its preamble.
        let mut first = preamble("license").expect("ok");
        first.extend_from_slice(b"hello");
        let answer = async {
            let got = super::answer(&mut listener, &names, LIMIT).await;
            // Our reply and the first payload back in one message.
            let mut reply = REPLY_OK.to_vec();
            reply.extend_from_slice(b"back");
            send(&mut listener, &reply).await.expect("send");
            got
        };
        let offer = async {
            send(&mut sender, &first).await.expect("send");
            let mut reader = Reader {
                ws: &mut sender,
                pending: BytesMut::new(),
            };
            reader.take(3).await.expect("reply")
        };
        let (answered, reply) = tokio::join!(answer, offer);
        let (name, rest) = answered.expect("accepted");
        assert_eq!((name.as_str(), rest.as_ref()), ("license", &b"hello"[..]));
        assert_eq!(reply.as_ref(), REPLY_OK);
    }

    #[tokio::test]
    async fn offer_reports_each_refusal() {
        for (reply, want) in [
            (REPLY_BAD_VERSION, "unknown version"),
            (REPLY_DATAGRAM_ONLY, "UDP forwarder"),
            (REPLY_MODE_MISMATCH, "mode mismatch"),
            ([9, 9, 9], "unexpected"),
        ] {
            let (mut sender, mut listener) = pair().await;
            let peer = async {
                let _ = listener.next().await;
                send(&mut listener, &reply).await.expect("send");
                listener
            };
            let (result, _listener) = tokio::join!(offer(&mut sender, "p", LIMIT), peer);
            let err = result.expect_err("refused").to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[tokio::test]
    async fn unknown_port_is_closed_without_reply_and_the_reason_reaches_the_sender() {
        let (mut sender, mut listener) = pair().await;
        let names = vec!["a".to_owned(), "b".to_owned()];
        let (offered, answered) = tokio::join!(
            offer(&mut sender, "nope", LIMIT),
            answer(&mut listener, &names, LIMIT)
        );
        assert!(matches!(answered, Err(AzbridgeError::UnknownPort(ref p)) if p == "nope"));
        let err = offered.expect_err("refused").to_string();
        assert!(err.contains("unknown azbridge port name 'nope'"), "{err}");
    }
}
