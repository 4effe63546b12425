//! A pre-opened 1:1 connection from a local-proxy (`dongle-relay.preopened.v1`): accepted at
//! once, without a target, because no client has come yet. It waits for its first binary
//! message, the PROXY v2 header naming the client and site (as a multiplexed stream starts),
//! and only then connects the target in the configured identity mode and pumps, exactly as a
//! rendezvous does. While it waits it costs one idle WebSocket and this task, and the license
//! server nothing.
//!
//! Refusals cannot be an HTTP status any more (the upgrade is done): a busy listener closes
//! with 1013 (try again later) and an unreachable target with 1011, each with the reason, which
//! the proxy logs as the tunnel's failure. A connection closed unused (the proxy retired it, or
//! it outlived [`WAIT_LIMIT`]) is no stream at all: nothing is counted. Shutdown closes the
//! waiting ones at once (1001), so the proxy re-opens them elsewhere.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use hc_client::identity::read_proxy_v2;
use hc_client::slots::Held;
use hc_client::subprotocol::{Framing, PREOPENED};
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::protocol::CloseFrame;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hc_client::{RelayAccess, RelayStream};
use hc_protocol::Accept;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use crate::config::ListenerConfig;
use crate::identity::RemoteClient;
use crate::rendezvous::{Stop, Tunnel, accept_early};
use crate::status::{ListenerStatus, StreamInfo, StreamState};
use crate::target::{TargetConnector, TargetRequest, connect_within};

/// Longest a pre-opened connection waits for its client (the proxy retires its own after at
/// most five minutes; this bounds one that vanished without closing).
pub const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// Accepts the pre-opened connection of `accept` and, once its client is named, serves it.
pub(crate) async fn run<C: TargetConnector>(
    accept: Accept,
    access: Arc<RelayAccess>,
    connector: Arc<C>,
    config: Arc<ListenerConfig>,
    status: ListenerStatus,
    Stop { shutdown, abort }: Stop,
) {
    let id = accept.id.as_str();
    let what = "pre-opened connection";
    let accepted = accept_early(&accept, &access, PREOPENED, what, &status, &abort).await;
    let Some(RelayStream { mut ws, .. }) = accepted else {
        return;
    };
    let waiting = status.counted(|s| &mut s.preopened_waiting);
    let first = tokio::select! {
        _ = shutdown.cancelled() => {
            close(&mut ws, CloseCode::Away, "listener shutting down").await;
            return;
        }
        r = tokio::time::timeout(WAIT_LIMIT, first_binary(&mut ws)) => r,
    };
    drop(waiting);
    let first = match first {
        Ok(Some(first)) => first,
        Ok(None) => return tracing::debug!(id, "pre-opened connection closed unused"),
        Err(_) => {
            tracing::debug!(
                id,
                "pre-opened connection unused for {WAIT_LIMIT:?}; closed"
            );
            return close(&mut ws, CloseCode::Normal, "unused").await;
        }
    };
    let mut rest: &[u8] = &first;
    let header = match read_proxy_v2(&mut rest).await {
        Ok(header) => header,
        Err(e) => {
            let line = format!("pre-opened connection {id}: no valid PROXY v2 header: {e}");
            tracing::warn!("rejected {line}");
            status.rejected(line);
            return close(&mut ws, CloseCode::Protocol, "no valid PROXY v2 header").await;
        }
    };
    let client = RemoteClient::from_proxy_v2(&header, config.identity.default_site.as_deref());
    let admitted = status.admit_stream(&client, config.max_streams, config.max_streams_per_client);
    let (_active, slot) = match admitted {
        Ok(admitted) => admitted,
        Err(why) => {
            let line = format!("connection {id} from {}: listener busy: {why}", client.addr);
            tracing::warn!("rejected {line}");
            status.rejected(line);
            return close(&mut ws, CloseCode::Again, &format!("listener busy: {why}")).await;
        }
    };
    let request = TargetRequest {
        accept: &accept,
        client: &client,
    };
    let connected = tokio::select! {
        _ = abort.cancelled() => return,
        r = connect_within(&*connector, &request, config.target_timeout) => r,
    };
    let connected = match connected {
        Ok(connected) => connected,
        Err(why) => {
            status.stream_started(StreamInfo::new(id, &client, None, StreamState::Rejected));
            let line = format!("connection {id}: {why}");
            tracing::warn!("rejected {line}");
            status.rejected(line);
            return close(&mut ws, CloseCode::Error, &why).await;
        }
    };
    status.identity_collision(connected.collision.as_ref());
    let mut listed = status.list_active(id, &client, connected.source, "pre-opened");
    // The slot goes when the target does, not when the close handshake ends.
    let mut target = Held::new(connected.stream, slot);
    if !rest.is_empty() && target.write_all(rest).await.is_err() {
        status.update(|s| s.failed += 1);
        listed.end = StreamState::Failed;
        return;
    }
    let tunnel = Tunnel {
        id,
        ws,
        framing: Framing::HalfClose,
    };
    crate::rendezvous::pump_accepted(tunnel, target, &config, &status, &abort).await;
}

/// The first binary message, answering pings meanwhile; none when the connection closed, broke
/// or sent text.
async fn first_binary<S>(ws: &mut WebSocketStream<S>) -> Option<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Binary(data)) => return Some(data.to_vec()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(_) | Err(_) => return None,
        }
    }
}

/// Closes with `code` and `reason` (cut to what a close frame holds), within five seconds.
async fn close<S>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A close frame's reason is at most 123 bytes; cut on a character boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(Some(frame))).await;
}
