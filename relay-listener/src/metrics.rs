//! The relay-listener's Prometheus metrics, read from its [`ListenerStatus`] at scrape time
//! (the stream path keeps only the counters it already kept).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `listener_connected` | gauge | 1 while the control channel is open |
//! | `listener_control_connections_total` | counter | control channels opened |
//! | `listener_reconnects_total` | counter | control channels re-opened after a loss |
//! | `listener_streams_active` | gauge | |
//! | `listener_streams_total` | counter | `result`: `accepted`, `rejected`, `failed` |
//! | `listener_mux_connections` | gauge | pooled (multiplexed) relay connections |
//! | `listener_preopened_waiting` | gauge | pre-opened 1:1 connections awaiting a client |
//! | `listener_token_renewals_total` | counter | |
//! | `listener_identity_collisions_total` | counter | loopback mode |
//! | `listener_bytes_total` | counter | `direction`: `to_relay`, `from_relay` |
//! | `listener_heartbeat_age_seconds` | gauge | since the main loop last ran (-1 before) |

use ops_http::metrics::{
    bytes_by_direction, count, counter, counters, gauge, heartbeat_age, labels,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::status::ListenerStatus;

/// Reads a listener's status at each scrape.
#[derive(Debug)]
pub struct ListenerCollector {
    status: ListenerStatus,
}

impl Collector for ListenerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.status.snapshot();
        let e = &mut encoder;
        gauge(
            e,
            "connected",
            "1 while the control channel to the relay is open.",
            i64::from(s.connected),
        )?;
        counter(
            e,
            "control_connections",
            "Control channels opened.",
            s.connections,
        )?;
        counter(
            e,
            "reconnects",
            "Control channels re-opened after being lost.",
            s.reconnects,
        )?;
        gauge(
            e,
            "streams_active",
            "Streams being pumped now.",
            count(s.active_streams),
        )?;
        counters(
            e,
            "streams",
            "Streams by outcome: accepted (bridged to the target), rejected (target \
             unreachable, busy, refused preamble), failed (dial-back or reject failed).",
            [
                ("accepted", s.accepted),
                ("rejected", s.rejected),
                ("failed", s.failed),
            ]
            .map(|(result, n)| (labels("result", result), n)),
        )?;
        gauge(
            e,
            "mux_connections",
            "Pooled (multiplexed) relay connections open now.",
            count(s.mux_connections),
        )?;
        gauge(
            e,
            "preopened_waiting",
            "Pre-opened 1:1 connections open now and still waiting for their client.",
            count(s.preopened_waiting),
        )?;
        counter(
            e,
            "token_renewals",
            "Tokens renewed on the control channel.",
            s.token_renewals,
        )?;
        counter(
            e,
            "identity_collisions",
            "Times two clients were given the same loopback source address.",
            s.identity_collisions,
        )?;
        let bytes = self.status.bytes();
        bytes_by_direction(
            e,
            "Payload bytes of all streams, by direction (to the relay = from the target).",
            bytes.to_relay(),
            bytes.from_relay(),
        )?;
        heartbeat_age(
            e,
            "Seconds since the listener's main loop last ran (-1 before it started).",
            self.status.heartbeat().age(),
        )
    }
}

/// The listener's registry (prefix `listener`).
pub fn registry(status: &ListenerStatus) -> Registry {
    let mut registry = Registry::with_prefix("listener");
    registry.register_collector(Box::new(ListenerCollector {
        status: status.clone(),
    }));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_from_the_status() {
        let status = ListenerStatus::default();
        status.connected();
        status.disconnected(None);
        status.connected();
        status.update(|s| {
            s.accepted = 5;
            s.active_streams = 2;
        });
        status.rejected("target unreachable".into());
        let text = ops_http::metrics::render(&registry(&status)).expect("render");
        for line in [
            "listener_connected 1",
            "listener_control_connections_total 2",
            "listener_reconnects_total 1",
            "listener_streams_active 2",
            "listener_streams_total{result=\"accepted\"} 5",
            "listener_streams_total{result=\"rejected\"} 1",
            "listener_streams_total{result=\"failed\"} 0",
            "listener_bytes_total{direction=\"to_relay\"} 0",
            "listener_heartbeat_age_seconds -1.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
