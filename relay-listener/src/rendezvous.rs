//! One accepted connection: work out who the client is, connect the target first (so a dead
//! license server is reported to the sender as 502 instead of an open-then-closed tunnel),
//! then dial the accept address back, offering the subprotocol chosen from the sender's offer,
//! and pump. The client, its site and the source address the target sees go to one debug line
//! and to the status' recent streams.
//!
//! A sender that offers `dongle-relay.mux.v1` is a local-proxy's pooled connection: it is
//! accepted without a target and handed to [`crate::mux_session`]; one that offers
//! `dongle-relay.preopened.v1` is a pre-opened 1:1 connection, handed to [`crate::preopened`],
//! which connects the target once the client is named. With azbridge port names
//! configured, a 1:1 stream must first pass Azure Relay Bridge's preamble.

use std::sync::Arc;

use futures_util::FutureExt as _;
use hc_client::azbridge;
use hc_client::pump::pump;
use hc_client::slots::Held;
use hc_client::subprotocol::{self, Framing};
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::{RelayAccess, RelayIo, RelayStream};
use hc_protocol::Accept;
use hc_protocol::status::{HTTP_BAD_GATEWAY, HTTP_TOO_MANY};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::config::ListenerConfig;
use crate::identity::RemoteClient;
use crate::status::{Counted, Listed, ListenerStatus, StreamInfo, StreamSlot, StreamState};
use crate::target::{TargetConnector, TargetRequest, connect_within};

/// Handles one `accept` message to the end of its stream. `shutdown` is the listener's: a
/// pooled connection then takes no new streams and closes once its open ones have finished;
/// `abort` ends everything (the grace period is over).
///
/// This future is a task's for the stream's whole life, so everything before the pump is
/// awaited boxed ([`open`]): unboxed, an idle stream's task would stay sized for the dial,
/// the target connect and the azbridge preamble as well.
pub async fn handle<C: TargetConnector>(
    accept: Accept,
    access: Arc<RelayAccess>,
    connector: Arc<C>,
    config: Arc<ListenerConfig>,
    status: ListenerStatus,
    shutdown: CancellationToken,
    abort: CancellationToken,
) {
    let chosen = subprotocol::choose(accept.header("Sec-WebSocket-Protocol"), config.mux);
    if subprotocol::is_mux(chosen) {
        let stop = Stop { shutdown, abort };
        Box::pin(crate::mux_session::run(
            accept, access, connector, config, status, stop,
        ))
        .await;
        return;
    }
    if subprotocol::is_preopened(chosen) {
        let stop = Stop { shutdown, abort };
        Box::pin(crate::preopened::run(
            accept, access, connector, config, status, stop,
        ))
        .await;
        return;
    }
    let opening = Opening {
        accept: &accept,
        access: &access,
        config: &config,
        status: &status,
        abort: &abort,
    };
    // Destructured in the pattern: a binding of the whole would keep its room in this future
    // while the pump runs.
    let Some(Opened {
        _active,
        listed,
        target,
        tunnel,
    }) = Box::pin(open(opening, &*connector, chosen)).await
    else {
        return;
    };
    pump_accepted(tunnel, target, &config, &status, &abort).await;
    // The stream is listed as active until here.
    drop(listed);
}

/// What opening a 1:1 stream needs from [`handle`].
struct Opening<'a> {
    accept: &'a Accept,
    access: &'a RelayAccess,
    config: &'a ListenerConfig,
    status: &'a ListenerStatus,
    abort: &'a CancellationToken,
}

/// A 1:1 stream ready to pump, and what it holds until it ends.
struct Opened<'a, T> {
    /// Counts the stream as active.
    _active: Counted<'a>,
    /// Its entry among the status' recent streams.
    listed: Listed<'a>,
    /// The connected target, holding the client's stream slot.
    target: Held<T, StreamSlot>,
    /// The accepted WebSocket.
    tunnel: Tunnel<'a, RelayIo>,
}

/// Admits the stream, connects its target and dials the accept address back (with azbridge's
/// preamble when port names are configured); none when any of it failed (refused, counted and
/// logged here).
async fn open<'a, C: TargetConnector>(
    opening: Opening<'a>,
    connector: &C,
    chosen: Option<&'static str>,
) -> Option<Opened<'a, C::Stream>> {
    let Opening {
        accept,
        access,
        config,
        status,
        abort,
    } = opening;
    let id = accept.id.as_str();
    let client = RemoteClient::from_accept(accept, config.identity.default_site.as_deref());
    let admitted = status.admit_stream(&client, config.max_streams, config.max_streams_per_client);
    let (active, slot) = match admitted {
        Ok(admitted) => admitted,
        Err(why) => {
            let line = format!("listener busy: {why}");
            reject(access, accept, HTTP_TOO_MANY, &line, status).await;
            return None;
        }
    };
    let request = TargetRequest {
        accept,
        client: &client,
    };
    let connected = match connect_within(connector, &request, config.target_timeout).await {
        Ok(connected) => connected,
        Err(why) => {
            status.stream_started(StreamInfo::new(id, &client, None, StreamState::Rejected));
            reject(access, accept, HTTP_BAD_GATEWAY, &why, status).await;
            return None;
        }
    };
    status.identity_collision(connected.collision.as_ref());
    let mut listed = status.list_active(id, &client, connected.source, "client");
    // The slot goes when the target does, not when the close handshake ends.
    let mut target = Held::new(connected.stream, slot);
    let stream = tokio::select! {
        _ = abort.cancelled() => return None,
        r = access.accept(&accept.address, chosen) => r,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            status.update(|s| s.failed += 1);
            listed.end = StreamState::Failed;
            tracing::warn!("rendezvous {id} failed: {e}");
            return None;
        }
    };
    let mut ws = stream.ws;
    if !config.azbridge_port_names.is_empty()
        && let Err(end) = azbridge_preamble(&mut ws, &mut target, config, &client, id, status).await
    {
        listed.end = end;
        return None;
    }
    let framing = Framing::from_subprotocol(stream.subprotocol.as_deref());
    Some(Opened {
        _active: active,
        listed,
        target,
        tunnel: Tunnel { id, ws, framing },
    })
}

/// Dials the accept address back with `subprotocol` before any target is connected (a pooled
/// or pre-opened connection); none when aborted, or when the dial failed (counted, and logged
/// naming the connection as `what`).
pub(crate) async fn accept_early(
    accept: &Accept,
    access: &RelayAccess,
    subprotocol: &'static str,
    what: &str,
    status: &ListenerStatus,
    abort: &CancellationToken,
) -> Option<RelayStream> {
    let stream = tokio::select! {
        _ = abort.cancelled() => return None,
        r = access.accept(&accept.address, Some(subprotocol)) => r,
    };
    match stream {
        Ok(s) => Some(s),
        Err(e) => {
            status.update(|s| s.failed += 1);
            tracing::warn!("{what} {} failed: {e}", accept.id);
            None
        }
    }
}

/// When a connection stops: `shutdown` starts its drain (a pooled connection takes no new
/// streams, a pre-opened one still waiting closes), `abort` ends it.
pub(crate) struct Stop {
    /// The listener is shutting down.
    pub(crate) shutdown: CancellationToken,
    /// The grace period is over: close now.
    pub(crate) abort: CancellationToken,
}

/// An accepted 1:1 connection, ready to carry its stream.
pub(crate) struct Tunnel<'a, S> {
    /// The rendezvous id, for the log.
    pub(crate) id: &'a str,
    /// The accepted WebSocket.
    pub(crate) ws: WebSocketStream<S>,
    /// How its end of stream is carried.
    pub(crate) framing: Framing,
}

/// Pumps an accepted 1:1 connection and its connected target to the end: counted as
/// accepted, its end logged. Not an `async fn`, which would keep room for the connection and
/// the target for the stream's whole life although the pump takes them at once.
pub(crate) fn pump_accepted<'a, S, T>(
    tunnel: Tunnel<'a, S>,
    target: T,
    config: &'a ListenerConfig,
    status: &'a ListenerStatus,
    abort: &'a CancellationToken,
) -> impl Future<Output = ()> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
    T: AsyncRead + AsyncWrite + Unpin + 'a,
{
    status.update(|s| s.accepted += 1);
    let Tunnel { id, ws, framing } = tunnel;
    // `map`, not an async block, which would hold the pump's future twice.
    pump(target, ws, framing, &config.pump, status.bytes(), abort)
        .map(move |report| log_end(id, report))
}

/// The debug line of a 1:1 stream's end.
fn log_end(id: &str, report: hc_client::PumpReport) {
    tracing::debug!(
        id,
        sent = report.sent,
        received = report.received,
        end = ?report.end,
        "stream ended"
    );
}

/// Answers an azbridge client's port preamble (when port names are configured) and writes to
/// the target whatever data followed it; on failure, how the stream ended.
async fn azbridge_preamble<S, T>(
    ws: &mut WebSocketStream<S>,
    target: &mut T,
    config: &ListenerConfig,
    client: &RemoteClient,
    id: &str,
    status: &ListenerStatus,
) -> Result<(), StreamState>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncWrite + Unpin,
{
    match azbridge::answer(ws, &config.azbridge_port_names, config.target_timeout).await {
        Ok((port, rest)) => {
            tracing::debug!(id, port, "azbridge preamble accepted");
            if !rest.is_empty() && target.write_all(&rest).await.is_err() {
                status.update(|s| s.failed += 1);
                return Err(StreamState::Failed);
            }
            Ok(())
        }
        Err(e) => {
            let line = format!("stream {id} from {}: {e}", client.addr);
            tracing::warn!("refused azbridge {line}");
            status.rejected(line);
            Err(StreamState::Rejected)
        }
    }
}

pub(crate) async fn reject(
    access: &RelayAccess,
    accept: &Accept,
    code: u16,
    description: &str,
    status: &ListenerStatus,
) {
    match access.reject(&accept.address, code, description).await {
        Ok(()) => {
            let line = format!("connection {}: {code} {description}", accept.id);
            tracing::warn!("rejected {line}");
            status.rejected(line);
        }
        Err(e) => {
            status.update(|s| s.failed += 1);
            tracing::warn!(
                "could not reject connection {} ({code} {description}): {e}",
                accept.id
            );
        }
    }
}
