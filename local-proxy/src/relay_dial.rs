//! Opening one sender WebSocket (a 1:1 tunnel's relay side) over the relay replicas, and closing
//! one that will not be used. Opening takes the next
//! replica in round robin, failing over to the others while a replica cannot be reached (a
//! refusal is the answer, not a reason to try elsewhere). Used by a client's own tunnel and by
//! the pre-opened ones ([`crate::preopen`]).

use std::time::Duration;

use hc_client::access::AccessError;
use hc_client::dial::DialError;
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::{RelayIo, RelayStream, Replicas};

use crate::status::ProxyStatus;

/// Opens a sender WebSocket with `headers`, offering `offer`. A listener that ignores the
/// offer makes a strict client refuse the 101; the connection is then retried once without an
/// offer (raw framing). `who` names the connection in debug lines.
///
/// # Errors
/// The last replica's error when none could be reached, or the refusal.
pub(crate) async fn dial(
    relays: &Replicas,
    status: &ProxyStatus,
    headers: &[(String, String)],
    offer: &[&str],
    who: &str,
) -> Result<RelayStream, AccessError> {
    let started = tokio::time::Instant::now();
    let mut last = None;
    for access in relays.order(None) {
        let id = uuid::Uuid::new_v4().to_string();
        let dialled = match access.connect(&id, headers, offer).await {
            Err(AccessError::Dial(DialError::NoSubprotocol { .. })) => {
                tracing::debug!(who, "listener chose no subprotocol; retrying without offer");
                let id = uuid::Uuid::new_v4().to_string();
                access.connect(&id, headers, &[]).await
            }
            other => other,
        };
        let unreachable = dialled.as_ref().is_err_and(AccessError::relay_unreachable);
        relays.report(&access, !unreachable);
        if !unreachable {
            if dialled.is_ok() {
                status
                    .relay_dial_latency()
                    .observe(started.elapsed().as_secs_f64());
            }
            return dialled;
        }
        tracing::debug!(who, relay = %access.describe(), "relay unreachable; trying the next");
        last = Some(dialled);
    }
    // `order` always names at least the connection string's relay, so `last` is set.
    last.unwrap_or(Err(AccessError::NoEntityPath))
}

/// Closes a sender WebSocket that will carry nothing (a pooled connection the listener would
/// not multiplex, a pre-opened one retired or refused), giving the close handshake at most five
/// seconds so that a silent peer cannot hold the caller.
pub(crate) async fn close_unused(mut ws: WebSocketStream<RelayIo>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
}
