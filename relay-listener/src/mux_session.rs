//! A pooled connection from a local-proxy (`dongle-relay.mux.v1`): a yamux server on the
//! accepted WebSocket, one task per inbound stream.
//!
//! Each stream starts with a PROXY v2 header written by the proxy (client address and site,
//! [`hc_client::identity::read_proxy_v2`]); it becomes the stream's [`RemoteClient`], and the
//! configured connector reaches the target in the configured identity mode, exactly as for a
//! 1:1 rendezvous. A stream whose header is missing or whose target is unreachable is reset,
//! which the proxy's client sees as a closed connection; the reason goes to the log and to the
//! status (`last_rejection`). Streams count against `max_streams` like rendezvous do.
//!
//! The session lives until the proxy closes it, the relay drops it, keep-alive pings go
//! unanswered, or the listener shuts down: then it takes no new streams (they are reset, the
//! proxy's client sees its connection closed), lets the open ones finish and closes as soon
//! as they have — or when the grace period ends, whichever comes first.

use std::sync::Arc;

use hc_client::RelayAccess;
use hc_client::identity::read_proxy_v2;
use hc_client::mux::{self, MuxMode, MuxStream};
use hc_client::slots::Held;
use hc_client::splice::splice;
use hc_client::subprotocol::MUX;
use hc_client::ws_io::WsIo;
use hc_protocol::Accept;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerConfig;
use crate::identity::RemoteClient;
use crate::rendezvous::{Stop, accept_early};
use crate::status::{ListenerStatus, StreamInfo, StreamState};
use crate::target::{TargetConnector, TargetRequest, connect_within};

/// Accepts the pooled connection of `accept` and serves its streams until it ends.
pub(crate) async fn run<C: TargetConnector>(
    accept: Accept,
    access: Arc<RelayAccess>,
    connector: Arc<C>,
    config: Arc<ListenerConfig>,
    status: ListenerStatus,
    Stop { shutdown, abort }: Stop,
) {
    let id = accept.id.clone();
    let what = "pooled connection";
    let accepted = accept_early(&accept, &access, MUX, what, &status, &abort).await;
    let Some(stream) = accepted else {
        return;
    };
    let _pooled = status.counted(|s| &mut s.mux_connections);
    tracing::debug!(id, "pooled connection open");
    let io = WsIo::new(stream.ws, mux::MESSAGE, config.control_ping);
    let conn = mux::connection(io, MuxMode::Server);
    let accept = Arc::new(accept);
    let streams = TaskTracker::new();
    // Closes the session: at the end of the grace period, or once drained after shutdown.
    let close = abort.child_token();
    let drive = mux::drive(
        conn,
        None,
        |s| {
            if shutdown.is_cancelled() {
                // Draining: dropping the stream resets it.
                tracing::debug!(id, "stream refused: shutting down");
                return;
            }
            streams.spawn(serve(
                s,
                accept.clone(),
                connector.clone(),
                config.clone(),
                status.clone(),
                abort.clone(),
            ));
        },
        &close,
    );
    let drained = async {
        shutdown.cancelled().await;
        streams.close();
        streams.wait().await;
        close.cancel();
    };
    tokio::pin!(drive);
    let ended = tokio::select! {
        r = &mut drive => r,
        () = drained => (&mut drive).await,
    };
    match ended {
        Ok(()) => tracing::debug!(id, "pooled connection closed"),
        Err(e) => tracing::info!("pooled connection {id} ended: {e}"),
    }
    streams.close();
    streams.wait().await;
}

/// One multiplexed stream: header, target, splice.
async fn serve<C: TargetConnector>(
    mut stream: MuxStream,
    accept: Arc<Accept>,
    connector: Arc<C>,
    config: Arc<ListenerConfig>,
    status: ListenerStatus,
    abort: CancellationToken,
) {
    let id = format!("{}/{}", accept.id, stream.id());
    let header = tokio::time::timeout(config.target_timeout, read_proxy_v2(&mut stream)).await;
    let header = match header {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let line = format!("stream {id}: no valid PROXY v2 stream header: {e}");
            tracing::warn!("rejected {line}");
            status.rejected(line);
            return;
        }
        Err(_) => {
            let line = format!(
                "stream {id}: no stream header within {:?}",
                config.target_timeout
            );
            tracing::warn!("rejected {line}");
            status.rejected(line);
            return;
        }
    };
    let client = RemoteClient::from_proxy_v2(&header, config.identity.default_site.as_deref());
    let admitted = status.admit_stream(&client, config.max_streams, config.max_streams_per_client);
    let (_active, slot) = match admitted {
        Ok(admitted) => admitted,
        Err(why) => {
            let line = format!("stream {id} from {}: listener busy: {why}", client.addr);
            tracing::warn!("rejected {line}");
            status.rejected(line);
            return;
        }
    };
    let request = TargetRequest {
        accept: &accept,
        client: &client,
    };
    let target = tokio::select! {
        _ = abort.cancelled() => return,
        r = connect_within(&*connector, &request, config.target_timeout) => r,
    };
    let connected = match target {
        Ok(connected) => connected,
        Err(why) => return refuse(&status, &id, &client, why),
    };
    status.identity_collision(connected.collision.as_ref());
    if mux::acknowledge(&mut stream).await.is_err() {
        return;
    }
    status.update(|s| s.accepted += 1);
    let _listed = status.list_active(&id, &client, connected.source, "multiplexed stream");
    // The slot goes when the target does, not when the stream's close completes.
    let report = splice(
        Held::new(connected.stream, slot),
        stream,
        config.pump.max_frame,
        config.pump.idle_timeout,
        status.bytes(),
        &abort,
    )
    .await;
    tracing::debug!(
        id,
        sent = report.sent,
        received = report.received,
        end = ?report.end,
        "stream ended"
    );
}

/// A stream whose target could not be reached: logged, listed, reset (by dropping it).
fn refuse(status: &ListenerStatus, id: &str, client: &RemoteClient, why: String) {
    status.stream_started(StreamInfo::new(id, client, None, StreamState::Rejected));
    let line = format!("stream {id}: {why}");
    tracing::warn!("rejected {line}");
    status.rejected(line);
}
