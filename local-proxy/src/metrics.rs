//! The local-proxy's Prometheus metrics, read from its [`ProxyStatus`] at scrape time; the
//! tunnel path only keeps the counters it already kept, plus one histogram observation per
//! relay dial.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `proxy_listening` | gauge | 1 while it accepts local clients |
//! | `proxy_connections_active` | gauge | tunnels open now |
//! | `proxy_connections_total` | counter | local connections admitted |
//! | `proxy_local_refusals_total` | counter | `reason`: `access_list`, `max_connections` |
//! | `proxy_refusals_total` | counter | `status`: the relay's HTTP status, or `azbridge` |
//! | `proxy_failures_total` | counter | relay unreachable, TLS, local TLS handshake |
//! | `proxy_completed_total` | counter | tunnels that ended normally |
//! | `proxy_pooled_connections` | gauge | pooled (multiplexed) relay connections |
//! | `proxy_multiplexed_total` | counter | tunnels carried over a pooled connection |
//! | `proxy_mux_fallback` | gauge | 1 when the listener does not multiplex |
//! | `proxy_preopened_ready` | gauge | pre-opened 1:1 tunnels waiting for a client |
//! | `proxy_preopened_total` | counter | tunnels carried on a pre-opened 1:1 tunnel |
//! | `proxy_bytes_total` | counter | `direction`: `to_relay`, `from_relay` |
//! | `proxy_relay_dial_seconds` | histogram | TCP + TLS + upgrade of a relay WebSocket |
//! | `proxy_heartbeat_age_seconds` | gauge | since the accept loop last ran (-1 before) |

use ops_http::metrics::{
    bytes_by_direction, count, counter, counters, gauge, heartbeat_age, labels,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::status::ProxyStatus;

/// Reads a proxy's status at each scrape.
#[derive(Debug)]
pub struct ProxyCollector {
    status: ProxyStatus,
}

impl Collector for ProxyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.status.snapshot();
        let e = &mut encoder;
        gauge(
            e,
            "listening",
            "1 while the proxy accepts local clients.",
            i64::from(s.listening),
        )?;
        gauge(
            e,
            "connections_active",
            "Tunnels open now.",
            count(s.active),
        )?;
        counter(e, "connections", "Local connections admitted.", s.accepted)?;
        counters(
            e,
            "local_refusals",
            "Local connections refused: by the allow/deny lists, or at max_connections.",
            [("access_list", s.denied), ("max_connections", s.over_limit)]
                .map(|(reason, n)| (labels("reason", reason), n)),
        )?;
        counters(
            e,
            "refusals",
            "Tunnels the relay refused, by HTTP status (azbridge: the listener refused the \
             preamble).",
            s.refused_by_status
                .iter()
                .map(|(status, n)| (labels("status", status.clone()), *n)),
        )?;
        counter(
            e,
            "failures",
            "Tunnels that failed otherwise (relay unreachable, TLS, local TLS handshake).",
            s.failed,
        )?;
        counter(e, "completed", "Tunnels that ended normally.", s.completed)?;
        gauge(
            e,
            "pooled_connections",
            "Pooled (multiplexed) relay connections open now.",
            count(s.pooled),
        )?;
        counter(
            e,
            "multiplexed",
            "Tunnels carried as streams of a pooled connection.",
            s.multiplexed,
        )?;
        gauge(
            e,
            "mux_fallback",
            "1 when the listener answered without multiplexing (1:1 until re-probed).",
            i64::from(s.mux_fallback),
        )?;
        gauge(
            e,
            "preopened_ready",
            "Pre-opened 1:1 tunnels parked now, waiting for a client.",
            count(s.preopened_ready),
        )?;
        counter(
            e,
            "preopened",
            "Tunnels carried on a pre-opened 1:1 tunnel.",
            s.preopened,
        )?;
        let bytes = self.status.bytes();
        bytes_by_direction(
            e,
            "Payload bytes of all tunnels, by direction (to the relay = from local clients).",
            bytes.to_relay(),
            bytes.from_relay(),
        )?;
        heartbeat_age(
            e,
            "Seconds since the accept loop last ran (-1 before it started).",
            self.status.heartbeat().age(),
        )
    }
}

/// The proxy's registry (prefix `proxy`): the collector and the relay-dial histogram.
pub fn registry(status: &ProxyStatus) -> Registry {
    let mut registry = Registry::with_prefix("proxy");
    registry.register(
        "relay_dial_seconds",
        "Seconds to open a relay WebSocket (TCP, TLS, upgrade); successful dials",
        status.relay_dial_latency().clone(),
    );
    registry.register_collector(Box::new(ProxyCollector {
        status: status.clone(),
    }));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_from_the_status() {
        let status = ProxyStatus::default();
        status.update(|s| {
            s.listening = true;
            s.accepted = 4;
            s.active = 1;
            s.denied = 2;
            s.refused = 3;
            s.refused_by_status.insert("404".into(), 3);
        });
        status.relay_dial_latency().observe(0.02);
        let text = ops_http::metrics::render(&registry(&status)).expect("render");
        for line in [
            "proxy_listening 1",
            "proxy_connections_active 1",
            "proxy_connections_total 4",
            "proxy_local_refusals_total{reason=\"access_list\"} 2",
            "proxy_local_refusals_total{reason=\"max_connections\"} 0",
            "proxy_refusals_total{status=\"404\"} 3",
            "proxy_relay_dial_seconds_count 1",
            "proxy_relay_dial_seconds_bucket{le=\"0.032\"} 1",
            "proxy_heartbeat_age_seconds -1.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
