//! `/metrics`: renders `prometheus_client` registries in the OpenMetrics text format — one, or
//! several as one exposition (components running in one process each keep their own registry
//! and prefix) — and small helpers for collectors that compute their values at scrape time
//! (gauges and counters read from a component's own state instead of being updated on the hot
//! path), among them the byte and heartbeat series that several components report alike.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};
use http_body_util::Full;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::reply::{Reply, error_reply};

/// The content type of the OpenMetrics text format (Prometheus scrapes it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one sample: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// The registry in the text format.
///
/// # Errors
/// A collector failed to encode.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    render_all([registry])
}

/// Several registries as one exposition: their metric families one after the other, then the
/// one `# EOF` the format allows.
///
/// # Errors
/// A collector failed to encode.
pub fn render_all<'a>(
    registries: impl IntoIterator<Item = &'a Registry>,
) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    for registry in registries {
        prometheus_client::encoding::text::encode_registry(&mut out, registry)?;
    }
    prometheus_client::encoding::text::encode_eof(&mut out)?;
    Ok(out)
}

/// The `/metrics` response for `registries`.
pub(crate) fn reply(registries: &[Arc<Registry>]) -> Reply {
    match render_all(registries.iter().map(Arc::as_ref)) {
        Ok(text) => {
            let mut reply = http::Response::new(Full::new(Bytes::from(text)));
            reply
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            reply
        }
        Err(_) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        ),
    }
}

/// The labels of a sample with one label, `name="value"`.
pub fn labels(name: &'static str, value: impl Into<Cow<'static, str>>) -> Labels {
    vec![(name, value.into())]
}

/// A count (`u64`, `usize`) as a gauge value: gauges are `i64`, and a count past `i64::MAX`
/// shows as `i64::MAX` instead of wrapping negative.
pub fn count<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Encodes one gauge family: `name` with `help`, one sample per `(labels, value)`.
///
/// # Errors
/// Encoding failed.
pub fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(0i64);
    let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one gauge without labels.
///
/// # Errors
/// Encoding failed.
pub fn gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// Encodes one counter family (`name` gets the `_total` suffix): one sample per
/// `(labels, value)`.
///
/// # Errors
/// Encoding failed.
pub fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(0u64);
    let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one counter without labels (`name` gets the `_total` suffix).
///
/// # Errors
/// Encoding failed.
pub fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// Encodes the `bytes` counter family of a component that carries tunnels: its payload bytes
/// by `direction` (`to_relay`, `from_relay`). The local-proxy and the relay-listener both
/// report it, so one function keeps the name and labels the dashboards rely on the same.
///
/// # Errors
/// Encoding failed.
pub fn bytes_by_direction(
    encoder: &mut DescriptorEncoder<'_>,
    help: &str,
    to_relay: u64,
    from_relay: u64,
) -> Result<(), std::fmt::Error> {
    counters(
        encoder,
        "bytes",
        help,
        [("to_relay", to_relay), ("from_relay", from_relay)]
            .map(|(direction, n)| (labels("direction", direction), n)),
    )
}

/// Encodes the `heartbeat_age_seconds` gauge: seconds since the component's loop last beat,
/// `-1` while it has not run yet (`age` is `None`), so an alert can tell "not started" from
/// "stalled".
///
/// # Errors
/// Encoding failed.
pub fn heartbeat_age(
    encoder: &mut DescriptorEncoder<'_>,
    help: &str,
    age: Option<Duration>,
) -> Result<(), std::fmt::Error> {
    gauge(
        encoder,
        "heartbeat_age_seconds",
        help,
        age.map_or(-1.0, |a| a.as_secs_f64()),
    )
}

#[cfg(test)]
mod tests {
    use prometheus_client::collector::Collector;

    use super::*;

    #[derive(Debug)]
    struct Sample;

    impl Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            let labels = |slot: &'static str| -> Labels { vec![("slot", Cow::Borrowed(slot))] };
            gauges(
                &mut encoder,
                "seats_taken",
                "Seats taken.",
                [(labels("a"), 2), (labels("b"), 0)],
            )?;
            gauge(&mut encoder, "sessions", "Open sessions.", 5)?;
            counters(&mut encoder, "errors", "Errors.", [(labels("a"), 7)])?;
            counter(&mut encoder, "requests", "Requests.", 9)
        }
    }

    #[test]
    fn registries_render_as_one_exposition() {
        let mut first = Registry::with_prefix("license");
        first.register_collector(Box::new(Sample));
        let mut second = Registry::with_prefix("listener");
        second.register_collector(Box::new(Sample));
        let text = render_all([&first, &second]).expect("render");
        for line in ["license_sessions 5", "listener_sessions 5"] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn collectors_render_as_openmetrics_text() {
        let mut registry = Registry::with_prefix("test");
        registry.register_collector(Box::new(Sample));
        let text = render(&registry).expect("render");
        for line in [
            "# TYPE test_seats_taken gauge",
            "test_seats_taken{slot=\"a\"} 2",
            "test_seats_taken{slot=\"b\"} 0",
            "test_sessions 5",
            "# TYPE test_errors counter",
            "test_errors_total{slot=\"a\"} 7",
            "test_requests_total 9",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
    }

    #[derive(Debug)]
    struct Tunnels(Option<Duration>);

    impl Collector for Tunnels {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            bytes_by_direction(&mut encoder, "Bytes.", 3, 4)?;
            heartbeat_age(&mut encoder, "Age.", self.0)
        }
    }

    #[test]
    fn bytes_and_heartbeat_series() {
        for (age, line) in [
            (None, "t_heartbeat_age_seconds -1.0"),
            (
                Some(Duration::from_millis(1500)),
                "t_heartbeat_age_seconds 1.5",
            ),
        ] {
            let mut registry = Registry::with_prefix("t");
            registry.register_collector(Box::new(Tunnels(age)));
            let text = render(&registry).expect("render");
            for line in [
                "t_bytes_total{direction=\"to_relay\"} 3",
                "t_bytes_total{direction=\"from_relay\"} 4",
                line,
            ] {
                assert!(
                    text.lines().any(|l| l == line),
                    "{line:?} missing in:\n{text}"
                );
            }
        }
    }
}
