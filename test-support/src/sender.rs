//! A raw Hybrid Connections sender with hand-picked custom headers — what a foreign or broken
//! client could send in place of the local-proxy — pumping bytes with the same pump and
//! half-close offer the local-proxy uses.

use hc_client::pump::{ByteMeter, PumpConfig, pump};
use hc_client::subprotocol::{Framing, SENDER_OFFER};
use hc_client::{AccessError, RelayAccess};
use tokio_util::sync::CancellationToken;

use crate::client::write_then_read;
use crate::relay::Relay;

/// Opens a sender WebSocket to `relay` with the Send key and `headers`, sends `data`, ends its
/// direction, and returns what came back until the tunnel ended.
///
/// # Errors
/// The relay refused or could not be reached.
pub async fn send_with_headers(
    relay: &Relay,
    headers: &[(&str, &str)],
    data: &[u8],
) -> Result<Vec<u8>, AccessError> {
    let access = RelayAccess::new(relay.access(relay.send_connection()))?;
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let id = format!("raw-sender-{}", rand::random::<u64>());
    let stream = access.connect(&id, &headers, &SENDER_OFFER).await?;
    let framing = Framing::from_subprotocol(stream.subprotocol.as_deref());
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let tunnel = tokio::spawn(async move {
        let meter = ByteMeter::default();
        pump(
            theirs,
            stream.ws,
            framing,
            &PumpConfig::default(),
            &meter,
            &CancellationToken::new(),
        )
        .await
    });
    let reply = write_then_read(ours, data).await;
    let _ = tunnel.await;
    Ok(reply)
}
