//! The relay's Prometheus metrics, read from its [`RelayStats`] at scrape time: the request
//! path only updates the stats it already kept (plus lock-free byte counters and one
//! histogram observation per bridge), so metrics and stats always agree.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `relay_serving` | gauge | |
//! | `relay_tcp_connections` | gauge | |
//! | `relay_connections` | gauge | `kind`: `listener` (control channels), `sender_waiting`, `bridged` |
//! | `relay_listeners` | gauge | `hc` |
//! | `relay_bridged_total` | counter | |
//! | `relay_refusals_total` | counter | `status` |
//! | `relay_throttled_total` | counter | |
//! | `relay_evicted_total` | counter | |
//! | `relay_bytes_total` | counter | `direction`: `sender_to_listener`, `listener_to_sender` |
//! | `relay_rendezvous_seconds` | histogram | sender request → bridged |
//! | `relay_heartbeat_age_seconds` | gauge | since the accept loop last ran (-1 before) |

use ops_http::metrics::{count, counter, counters, gauge, gauges, labels};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::stats::{Direction, RelayStats};

/// Reads a relay's stats at each scrape.
#[derive(Debug)]
pub struct RelayCollector {
    stats: RelayStats,
}

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.stats.snapshot();
        let e = &mut encoder;
        gauge(
            e,
            "serving",
            "1 while the relay accepts connections.",
            i64::from(s.serving),
        )?;
        gauge(
            e,
            "tcp_connections",
            "Open client TCP connections (handshaking, control channels, senders, rendezvous).",
            count(s.connections),
        )?;
        let listeners: usize = s.listeners.values().sum();
        gauges(
            e,
            "connections",
            "Connections by kind: listener control channels, senders waiting for their \
             rendezvous, bridged sender-listener pairs.",
            [
                ("listener", count(listeners)),
                ("sender_waiting", count(s.pending_rendezvous)),
                ("bridged", count(s.bridged)),
            ]
            .map(|(kind, n)| (labels("kind", kind), n)),
        )?;
        gauges(
            e,
            "listeners",
            "Listener control channels per hybrid connection.",
            s.listeners
                .iter()
                .map(|(hc, n)| (labels("hc", hc.clone()), count(*n))),
        )?;
        counter(
            e,
            "bridged",
            "Sender-listener pairs bridged.",
            s.bridged_total,
        )?;
        counters(
            e,
            "refusals",
            "Upgrade requests refused, by HTTP status.",
            s.refused_by_status
                .iter()
                .map(|(status, n)| (labels("status", status.to_string()), *n)),
        )?;
        counter(
            e,
            "throttled",
            "Connections closed before TLS because their IP stormed listen attempts.",
            s.throttled_total,
        )?;
        counter(
            e,
            "evicted",
            "Unauthenticated connections closed to make room for newer ones.",
            s.evicted_total,
        )?;
        counters(
            e,
            "bytes",
            "Payload bytes of bridged messages, by direction.",
            [
                ("sender_to_listener", Direction::SenderToListener),
                ("listener_to_sender", Direction::ListenerToSender),
            ]
            .map(|(name, d)| (labels("direction", name), self.stats.bytes(d))),
        )?;
        let age = self.stats.heartbeat_age().map_or(-1.0, |a| a.as_secs_f64());
        gauge(
            e,
            "heartbeat_age_seconds",
            "Seconds since the accept loop last ran (-1 before it started).",
            age,
        )
    }
}

/// The relay's registry (prefix `relay`): the collector and the rendezvous histogram.
pub fn registry(stats: &RelayStats) -> Registry {
    let mut registry = Registry::with_prefix("relay");
    registry.register(
        "rendezvous_seconds",
        "Seconds from a sender's request to its bridge with a listener",
        stats.rendezvous_latency().clone(),
    );
    registry.register_collector(Box::new(RelayCollector {
        stats: stats.clone(),
    }));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_from_the_stats() {
        let stats = RelayStats::new();
        stats.update(|s| {
            s.serving = true;
            s.listeners.insert("license".into(), 2);
            s.pending_rendezvous = 1;
            s.bridged = 3;
            s.bridged_total = 7;
            s.refused_by_status.insert(404, 4);
        });
        stats.add_bytes(Direction::SenderToListener, 10);
        stats.rendezvous_latency().observe(0.003);
        let text = ops_http::metrics::render(&registry(&stats)).expect("render");
        for line in [
            "relay_serving 1",
            "relay_connections{kind=\"listener\"} 2",
            "relay_connections{kind=\"sender_waiting\"} 1",
            "relay_connections{kind=\"bridged\"} 3",
            "relay_listeners{hc=\"license\"} 2",
            "relay_bridged_total 7",
            "relay_refusals_total{status=\"404\"} 4",
            "relay_bytes_total{direction=\"sender_to_listener\"} 10",
            "relay_bytes_total{direction=\"listener_to_sender\"} 0",
            "relay_rendezvous_seconds_count 1",
            "relay_rendezvous_seconds_bucket{le=\"0.004\"} 1",
            "relay_heartbeat_age_seconds -1.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
