//! `/metrics` content of a running relay (`relay_server::metrics::registry`): after a refused
//! sender and one bridged connection carrying bytes both ways, the scrape shows the listener,
//! the bridge, the refusal by status, the bytes by direction and one rendezvous observation.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn scrape_counts_listeners_bridges_refusals_bytes_and_rendezvous_latency() {
    within(async {
        let relay = TestRelay::start(false, |_| {}).await;
        let registry = relay_server::metrics::registry(&relay.stats);

        // No listener yet: 404.
        let refused_sender = relay.sender_with_token("", vec![]);
        let (status, _) = refused(refused_sender.await.expect("task"));
        assert_eq!(status, 404);

        let mut control = relay.listen().await;
        let sender = relay.sender_with_token("", vec![]);
        let accept = next_accept(&mut control).await;
        let (mut listener_ws, _) = relay.ws(&accept.address, &[]).await.expect("dial");
        let (mut sender_ws, _) = sender.await.expect("task").expect("upgrade");
        relay.stats.wait_until(|s| s.bridged == 1).await;
        sender_ws
            .send(Message::binary(vec![1; 1000]))
            .await
            .expect("send");
        assert_eq!(
            next_message(&mut listener_ws).await,
            Some(Message::binary(vec![1; 1000]))
        );
        listener_ws
            .send(Message::binary(vec![2; 10]))
            .await
            .expect("send");
        assert_eq!(
            next_message(&mut sender_ws).await,
            Some(Message::binary(vec![2; 10]))
        );

        let text = ops_http::metrics::render(&registry).expect("render");
        for (name, value) in [
            ("relay_serving", 1.0),
            ("relay_connections{kind=\"listener\"}", 1.0),
            ("relay_connections{kind=\"bridged\"}", 1.0),
            ("relay_connections{kind=\"sender_waiting\"}", 0.0),
            ("relay_listeners{hc=\"license\"}", 1.0),
            ("relay_bridged_total", 1.0),
            ("relay_refusals_total{status=\"404\"}", 1.0),
            (
                "relay_bytes_total{direction=\"sender_to_listener\"}",
                1000.0,
            ),
            ("relay_bytes_total{direction=\"listener_to_sender\"}", 10.0),
            ("relay_rendezvous_seconds_count", 1.0),
        ] {
            assert_eq!(sample(&text, name), value, "{name}\n{text}");
        }
        // A rendezvous on loopback completes within the rendezvous timeout's buckets.
        assert_eq!(
            sample(&text, "relay_rendezvous_seconds_bucket{le=\"16.384\"}"),
            1.0
        );
        let age = sample(&text, "relay_heartbeat_age_seconds");
        assert!((0.0..=relay_server::stats::LIVENESS_MAX_AGE.as_secs_f64()).contains(&age));
        assert_eq!(
            relay.stats.liveness(relay_server::stats::LIVENESS_MAX_AGE),
            Ok(())
        );

        drop((control, sender_ws, listener_ws));
        let stats = relay.stats.clone();
        relay.stop().await;
        assert!(
            stats
                .liveness(relay_server::stats::LIVENESS_MAX_AGE)
                .is_err()
        );
    })
    .await;
}
