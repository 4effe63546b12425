//! Azure Relay Bridge's in-stream preamble end to end: our local-proxy in `azbridge` mode (what
//! an `azbridge -T` listener expects) against our relay-listener with azbridge port names
//! (what an `azbridge -L` sender expects). azbridge itself is a .NET tool that is not
//! available here; both sides follow its source (see `hc_client::azbridge`).

use local_proxy::TunnelMode;
use test_support::client::{random, refused_client, round_trip};
use test_support::{LIMIT, Listener, Proxy, Relay, targets};
use tokio::time::timeout;

fn azbridge_listener(relay: &Relay, target: std::net::SocketAddr, ports: &[&str]) -> Listener {
    let mut config = relay.listener_config(target);
    config.azbridge_port_names = ports.iter().map(|p| (*p).to_owned()).collect();
    Listener::spawn(config)
}

async fn azbridge_proxy(relay: &Relay, port_name: Option<&str>) -> Proxy {
    let mut config = relay.proxy_config_mode(TunnelMode::Azbridge, None);
    config.azbridge_port_name = port_name.map(str::to_owned);
    Proxy::spawn(config).await
}

#[tokio::test]
async fn bytes_cross_after_the_preamble() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let echo = targets::echo().await;
        let listener = azbridge_listener(&relay, echo, &["license", "other"]);
        listener.status().wait_for(|s| s.connected).await;
        let proxy = azbridge_proxy(&relay, Some("license")).await;
        let data = random(1024 * 1024);
        assert!(
            round_trip(proxy.addr(), &data).await == data,
            "1 MiB echo differs"
        );
        assert_eq!(round_trip(proxy.addr(), b"small").await, b"small");
        let p = proxy.status().wait_for(|s| s.completed == 2).await;
        assert_eq!((p.refused, p.failed, p.multiplexed), (0, 0, 0));
        let l = listener.status().wait_for(|s| s.active_streams == 0).await;
        assert_eq!((l.accepted, l.rejected), (2, 0));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_numeric_port_name_reaches_a_single_forwarder() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let echo = targets::echo().await;
        let listener = azbridge_listener(&relay, echo, &["license"]);
        listener.status().wait_for(|s| s.connected).await;
        // No port name configured: the proxy sends its local port number, as `azbridge -L`.
        let proxy = azbridge_proxy(&relay, None).await;
        assert_eq!(round_trip(proxy.addr(), b"by number").await, b"by number");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_unknown_port_name_is_refused_and_reported_on_both_sides() {
    timeout(LIMIT, async {
        let relay = Relay::start_tls().await;
        let echo = targets::echo().await;
        let listener = azbridge_listener(&relay, echo, &["license", "db"]);
        listener.status().wait_for(|s| s.connected).await;
        let proxy = azbridge_proxy(&relay, Some("wrong")).await;
        refused_client(proxy.addr()).await;

        let p = proxy.status().wait_for(|s| s.refused == 1).await;
        let line = p.last_refusal.expect("refusal line");
        assert!(
            line.contains("unknown azbridge port name 'wrong'"),
            "proxy: {line}"
        );
        let l = listener.status().wait_for(|s| s.rejected == 1).await;
        let line = l.last_rejection.expect("rejection line");
        assert!(
            line.contains("unknown azbridge port name \"wrong\""),
            "listener: {line}"
        );
        assert_eq!(l.accepted, 0);
    })
    .await
    .expect("timed out");
}
