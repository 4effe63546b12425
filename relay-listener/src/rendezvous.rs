//! One accepted connection: work out who the client is, connect the target first (so a dead
//! license server is reported to the sender as 502 instead of an open-then-closed tunnel),
//! then dial the accept address back, offering the subprotocol chosen from the sender's offer,
//! and pump. The client, its site and the source address the target sees go to one debug line
//! and to the status' recent streams.

use std::sync::Arc;

use hc_client::RelayAccess;
use hc_client::pump::pump;
use hc_client::subprotocol::{self, Framing};
use hc_protocol::Accept;
use hc_protocol::status::{HTTP_BAD_GATEWAY, HTTP_TOO_MANY};
use tokio_util::sync::CancellationToken;

use crate::config::ListenerConfig;
use crate::identity::RemoteClient;
use crate::status::{ListenerStatus, StreamInfo, StreamState};
use crate::target::{TargetConnector, TargetRequest};

/// Decrements the active-stream count however the stream ends.
struct Active<'a>(&'a ListenerStatus);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0
            .update(|s| s.active_streams = s.active_streams.saturating_sub(1));
    }
}

/// Marks the stream's status entry finished however the stream ends.
struct Listed<'a> {
    status: &'a ListenerStatus,
    id: &'a str,
    end: StreamState,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.status.stream_finished(self.id, self.end);
    }
}

/// Handles one `accept` message to the end of its stream.
pub async fn handle<C: TargetConnector>(
    accept: Accept,
    access: Arc<RelayAccess>,
    connector: Arc<C>,
    config: Arc<ListenerConfig>,
    status: ListenerStatus,
    abort: CancellationToken,
) {
    let id = accept.id.as_str();
    let mut admitted = false;
    status.update(|s| {
        if s.active_streams < config.max_streams {
            s.active_streams += 1;
            admitted = true;
        }
    });
    if !admitted {
        reject(
            &access,
            &accept,
            HTTP_TOO_MANY,
            "listener busy: too many streams",
            &status,
        )
        .await;
        return;
    }
    let _active = Active(&status);
    let client = RemoteClient::from_accept(&accept, config.identity.default_site.as_deref());
    let request = TargetRequest {
        accept: &accept,
        client: &client,
    };
    let target = tokio::time::timeout(config.target_timeout, connector.connect(&request)).await;
    let outcome = match target {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(e)) => Err(format!("target {} unreachable: {e}", connector.describe())),
        Err(_) => Err(format!(
            "target {} unreachable: no answer within {:?}",
            connector.describe(),
            config.target_timeout
        )),
    };
    let connected = match outcome {
        Ok(connected) => connected,
        Err(why) => {
            status.stream_started(StreamInfo::new(id, &client, None, StreamState::Rejected));
            reject(&access, &accept, HTTP_BAD_GATEWAY, &why, &status).await;
            return;
        }
    };
    if let Some(collision) = &connected.collision {
        status.update(|s| s.identity_collisions += 1);
        tracing::warn!("client identity collision: {collision}");
    }
    tracing::debug!(
        id,
        client = %client.addr,
        from = %client.source,
        site = client.site_label(),
        source = ?connected.source,
        "connected target for client"
    );
    status.stream_started(StreamInfo::new(
        id,
        &client,
        connected.source,
        StreamState::Active,
    ));
    let mut listed = Listed {
        status: &status,
        id,
        end: StreamState::Ended,
    };
    let target = connected.stream;
    let chosen = subprotocol::choose(accept.header("Sec-WebSocket-Protocol"));
    let stream = tokio::select! {
        _ = abort.cancelled() => return,
        r = access.accept(&accept.address, chosen) => r,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            status.update(|s| s.failed += 1);
            listed.end = StreamState::Failed;
            tracing::warn!("rendezvous {id} failed: {e}");
            return;
        }
    };
    status.update(|s| s.accepted += 1);
    let framing = Framing::from_subprotocol(stream.subprotocol.as_deref());
    let report = pump(
        target,
        stream.ws,
        framing,
        &config.pump,
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

async fn reject(
    access: &RelayAccess,
    accept: &Accept,
    code: u16,
    description: &str,
    status: &ListenerStatus,
) {
    match access.reject(&accept.address, code, description).await {
        Ok(()) => {
            status.update(|s| s.rejected += 1);
            tracing::warn!("rejected connection {}: {code} {description}", accept.id);
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
