//! A foreign listener that half-closes as Microsoft's does: it speaks WebSocket frames
//! ([`relay_server::frames`]) rather than messages, so after the sender's Close (its
//! "finished sending") it still sends its whole reply, then its own Close — what .NET's
//! `HybridConnectionStream` does under Azure Relay Bridge, whose local target answers after
//! the client's end of stream. It offers no subprotocol, so our senders use raw framing.
//!
//! Beside it, [`hung_listener`]: a listener that hangs in one of the ways a frozen or broken
//! process does ([`Hang`]), for testing what its senders are told.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hc_client::RelayAccess;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::handshake::client::generate_key;
use hc_client::tokio_tungstenite::tungstenite::protocol::CloseFrame;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::Frame;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode, Control, Data, OpCode,
};
use hc_protocol::ControlMessage;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use relay_server::frames::{End, FrameCodec};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use crate::Relay;

/// Parts of the reply, each sent as its own binary frame after the sender's Close.
pub const REPLY_PARTS: [&[u8]; 3] = [b"reply ", b"after ", b"half-close: "];

/// Starts the foreign listener on `relay`'s hybrid connection; it answers every connection
/// with [`REPLY_PARTS`] followed by the request. Returns once its control channel is open.
pub async fn half_closing_listener(relay: &Relay) -> JoinHandle<()> {
    let access = RelayAccess::new(relay.access(relay.listen_connection())).expect("access");
    let (control, _token) = access.listen("foreign").await.expect("control channel");
    let (addr, pin) = (relay.addr(), relay.cert().sha256_fingerprint.clone());
    tokio::spawn(async move {
        let mut ws = control.ws;
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            if let Ok(ControlMessage::Accept(accept)) = ControlMessage::parse(&text) {
                let pin = pin.clone();
                tokio::spawn(async move { serve(addr, &pin, &accept.address).await });
            }
        }
    })
}

/// How a [`hung_listener`] hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    /// Reads its control channel (so it answers pings) but never acts on an accept.
    IgnoresAccepts,
    /// Never reads its control channel after the handshake: a stopped (SIGSTOP) process.
    Frozen,
    /// Dials back every accept, then never reads the rendezvous connection.
    StallsAfterAccept,
}

/// Starts a listener on `relay`'s hybrid connection that hangs as `hang` says. Returns once
/// its control channel is open; the task holds every connection until it is aborted.
pub async fn hung_listener(relay: &Relay, hang: Hang) -> JoinHandle<()> {
    let access = RelayAccess::new(relay.access(relay.listen_connection())).expect("access");
    let (control, _token) = access.listen("hung").await.expect("control channel");
    let (addr, pin) = (relay.addr(), relay.cert().sha256_fingerprint.clone());
    tokio::spawn(async move {
        let mut ws = control.ws;
        if hang == Hang::Frozen {
            // Hold the connection, never read it.
            std::future::pending::<()>().await;
        }
        let mut stalled = Vec::new();
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            if let (Hang::StallsAfterAccept, Ok(ControlMessage::Accept(accept))) =
                (hang, ControlMessage::parse(&text))
            {
                stalled.push(dial_back(addr, &pin, &accept.address).await);
            }
        }
        drop(stalled);
    })
}

/// Dials the accept address (a plain WebSocket upgrade with hyper) and returns its frames.
async fn dial_back(
    relay: SocketAddr,
    pin: &str,
    address: &str,
) -> Framed<TokioIo<hyper::upgrade::Upgraded>, FrameCodec> {
    let uri: http::Uri = address.parse().expect("accept address");
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let tls = crate::client::connect_tls_pinned(relay, pin).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection.with_upgrades());
    let request = http::Request::get(target)
        .header(http::header::HOST, relay.to_string())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, generate_key())
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("upgrade answer");
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let io = hyper::upgrade::on(response).await.expect("upgraded");
    Framed::new(TokioIo::new(io), FrameCodec::new(End::Client, 1 << 20))
}

/// Dials the accept address and serves one connection.
async fn serve(relay: SocketAddr, pin: &str, address: &str) {
    let mut frames = dial_back(relay, pin, address).await;
    let mut request = Vec::new();
    while let Some(Ok(frame)) = frames.next().await {
        match frame.header().opcode {
            OpCode::Data(_) => request.extend_from_slice(frame.payload()),
            OpCode::Control(Control::Close) => break,
            OpCode::Control(_) => {}
        }
    }
    // The sender has finished sending; the reply still goes out, then our own Close.
    for part in REPLY_PARTS.iter().copied().chain([&request[..]]) {
        let frame = Frame::message(part.to_vec(), OpCode::Data(Data::Binary), true);
        if frames.send(frame).await.is_err() {
            return;
        }
    }
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = frames.send(Frame::close(Some(close))).await;
    while let Some(Ok(_)) = frames.next().await {}
}
