//! Client identity across the relay, through the real path: license client → local-proxy →
//! relay (TLS, real SAS tokens) → relay-listener → a recording TCP target.
//!
//! Proves that in `proxy-v2` mode the target reads (with `ppp`) a PROXY v2 header naming the
//! local client's real address and its proxy's site (TLV 0xE0), followed by the untouched
//! payload; that in `loopback` mode an unmodified target sees one stable source address per
//! (site, client IP) and distinct ones for different clients; that the listener's status lists
//! client, site and source; and that malformed or oversized identity headers never break a
//! connection (they fall back to the relay-reported endpoint and the default site).

use std::net::SocketAddr;

use relay_listener::identity::MAX_SITE_LEN;
use relay_listener::{ClientSource, IdentityMode, ListenerSnapshot, StreamInfo, StreamState};
use test_support::client::{exchange, random};
use test_support::targets::{self, Preamble, Recorded, Recording};
use test_support::{LIMIT, Listener, Proxy, Relay, sender};
use tokio::time::timeout;

/// The listener's site for senders that send none.
const DEFAULT_SITE: &str = "hq";

/// A relay, a recording target and a connected listener in identity `mode`.
async fn setup(mode: IdentityMode) -> (Relay, Recording, Listener) {
    let relay = Relay::start_tls().await;
    let target = targets::recording().await;
    let mut config = relay.listener_config(target.addr());
    config.identity.mode = mode;
    config.identity.default_site = Some(DEFAULT_SITE.into());
    let listener = Listener::connected(config).await;
    (relay, target, listener)
}

/// The status entry of the stream whose target connection came from `source`.
fn entry_for(snapshot: &ListenerSnapshot, source: SocketAddr) -> StreamInfo {
    snapshot
        .recent_streams
        .iter()
        .find(|e| e.source == Some(source))
        .cloned()
        .unwrap_or_else(|| panic!("no status entry with source {source}: {snapshot:?}"))
}

/// A connection without PROXY header whose payload arrived intact; returns its peer address.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn plain(recorded: Recorded, data: &[u8]) -> SocketAddr {
    assert_eq!(recorded.preamble, Preamble::None, "no header in this mode");
    assert!(recorded.payload == data, "payload differs");
    recorded.peer
}

/// Waits until the listener has finished `n` streams.
async fn finished(listener: &Listener, n: usize) -> ListenerSnapshot {
    listener
        .status()
        .wait_for(|s| {
            s.active_streams == 0
                && s.recent_streams
                    .iter()
                    .filter(|e| e.state == StreamState::Ended)
                    .count()
                    == n
        })
        .await
}

#[tokio::test]
async fn proxy_v2_header_carries_the_local_client_and_its_site() {
    timeout(LIMIT, async {
        let (relay, mut target, listener) = setup(IdentityMode::ProxyV2).await;
        let branch_a = Proxy::spawn(relay.proxy_config_at("branch-a")).await;
        let branch_b = Proxy::spawn(relay.proxy_config_at("branch-b")).await;
        let no_site = Proxy::spawn(relay.proxy_config()).await;

        let mut seen = Vec::new();
        for (proxy, site) in [
            (&branch_a, "branch-a"),
            (&branch_b, "branch-b"),
            (&no_site, DEFAULT_SITE),
        ] {
            let data = random(256 * 1024);
            let client = exchange(proxy.addr(), &data).await;
            assert!(client.reply == data, "echo through {site} differs");
            let recorded = target.next().await;
            let header = recorded.proxy_header();
            assert!(header.proxy, "command must be PROXY");
            assert_eq!(
                &header.raw[12..14],
                &[0x21, 0x11],
                "v2 PROXY, TCP over IPv4"
            );
            assert_eq!(
                header.source,
                Some(client.local),
                "the local client's address"
            );
            assert_eq!(header.destination, Some(target.addr()));
            assert_eq!(header.site().as_deref(), Some(site));
            assert_eq!(header.tlvs.len(), 1, "{:?}", header.tlvs);
            assert!(recorded.payload == data, "payload after the header differs");
            seen.push((client.local, site, recorded.peer));
        }

        let status = finished(&listener, 3).await;
        for (client, site, source) in seen {
            let entry = entry_for(&status, source);
            assert_eq!(entry.client, client);
            assert_eq!(entry.client_from, ClientSource::FromHeader);
            assert_eq!(entry.site.as_deref(), Some(site));
        }
        assert_eq!(status.identity_collisions, 0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
// Long: one checklist of cases on one fixture; split, each would set the fixture up again.
async fn malformed_and_oversized_identity_headers_never_break_a_connection() {
    timeout(LIMIT, async {
        let (relay, mut target, listener) = setup(IdentityMode::ProxyV2).await;

        let long_site = "s".repeat(5000);
        let long_client = "1".repeat(10_000);
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[
                    ("X-Dongle-Relay-Client", "999.1.1.1:80"),
                    ("X-Dongle-Relay-Site", &long_site),
                ],
                &long_site[..MAX_SITE_LEN],
            ),
            (
                &[
                    ("X-Dongle-Relay-Client", &long_client),
                    ("X-Dongle-Relay-Site", "bad\tsite"),
                ],
                DEFAULT_SITE,
            ),
            (&[("X-Dongle-Relay-Client", "[::1]")], DEFAULT_SITE),
            (&[], DEFAULT_SITE),
        ];
        for (i, (headers, site)) in cases.into_iter().enumerate() {
            let data = random(10_000 + i);
            let reply = sender::send_with_headers(&relay, headers, &data)
                .await
                .expect("relay accepted the sender");
            assert!(reply == data, "case {i}: echo differs");
            let recorded = target.next().await;
            let header = recorded.proxy_header();
            // Fallback: the sender's address as the relay saw it.
            let source = header.source.expect("an address");
            assert_eq!(source.ip().to_string(), "127.0.0.1", "case {i}");
            assert_ne!(source.port(), 0, "case {i}");
            assert_eq!(header.site().as_deref(), Some(site), "case {i}");
            assert!(recorded.payload == data, "case {i}: payload differs");
            let status = finished(&listener, i + 1).await;
            let entry = entry_for(&status, recorded.peer);
            assert_eq!(entry.client_from, ClientSource::FromRelayEndpoint);
            assert_eq!(entry.client, source);
        }

        // A well-formed IPv6 client behind an IPv4 target: both sides sent as IPv6.
        let data = random(4096);
        let reply = sender::send_with_headers(
            &relay,
            &[
                ("X-Dongle-Relay-Client", "[2001:db8::7]:4242"),
                ("X-Dongle-Relay-Site", "branch-c"),
            ],
            &data,
        )
        .await
        .expect("sender");
        assert!(reply == data);
        let recorded = target.next().await;
        let header = recorded.proxy_header();
        assert_eq!(
            &header.raw[12..14],
            &[0x21, 0x21],
            "v2 PROXY, TCP over IPv6"
        );
        assert_eq!(
            header.source,
            Some("[2001:db8::7]:4242".parse().expect("addr"))
        );
        let mapped = header.destination.expect("destination");
        assert_eq!(mapped.ip().to_canonical(), target.addr().ip());
        assert_eq!(mapped.port(), target.addr().port());
        assert_eq!(header.site().as_deref(), Some("branch-c"));
        assert_eq!(
            listener.status().snapshot().rejected,
            0,
            "no connection was refused"
        );
    })
    .await
    .expect("timed out");
}

/// A plain target (one that records each connection's peer address) sees two distinct source
/// addresses for two clients at different sites, and the same one for repeated connections of
/// one client; a second client IP at the same site gets its own address too.
// Linux and Windows: the listener's loopback identity mode binds each target connection to a
// source in 127.0.0.0/8 (relay-listener's `loopback` module), which only those answer on
// without configuration. Under Wine the Windows build's bind reaches Linux's socket layer.
#[cfg(any(target_os = "linux", windows))]
#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn loopback_sources_are_stable_per_client_and_distinct_between_clients() {
    use std::net::{IpAddr, Ipv4Addr};

    use relay_listener::identity::default_loopback_range;
    use relay_listener::loopback::SourceRange;
    use test_support::client::exchange_from;

    timeout(LIMIT, async {
        let (relay, mut target, listener) = setup(IdentityMode::Loopback).await;
        let branch_a = Proxy::spawn(relay.proxy_config_at("branch-a")).await;
        let branch_b = Proxy::spawn(relay.proxy_config_at("branch-b")).await;
        let range = SourceRange::new(default_loopback_range()).expect("range");
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let second_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

        let mut served = Vec::new();
        for (proxy, from, site) in [
            (&branch_a, localhost, "branch-a"),
            (&branch_a, localhost, "branch-a"),
            (&branch_b, localhost, "branch-b"),
            (&branch_a, second_ip, "branch-a"),
        ] {
            let data = random(32 * 1024);
            let client = if from == localhost {
                exchange(proxy.addr(), &data).await
            } else {
                exchange_from(from, proxy.addr(), &data).await
            };
            assert!(client.reply == data, "echo differs");
            assert_eq!(client.local.ip(), from);
            let peer = plain(target.next().await, &data);
            served.push((client.local, site, peer));
        }
        let [first, again, other_site, other_client] =
            served.clone().try_into().expect("four connections");
        assert_ne!(
            first.0.port(),
            again.0.port(),
            "two connections of one client"
        );
        assert_eq!(first.2.ip(), again.2.ip(), "one client, one source address");
        assert_ne!(first.2.ip(), other_site.2.ip(), "other site, other address");
        assert_ne!(
            first.2.ip(),
            other_client.2.ip(),
            "other client, other address"
        );
        assert_ne!(other_site.2.ip(), other_client.2.ip());
        for (client, site, peer) in &served {
            let IpAddr::V4(v4) = peer.ip() else {
                panic!("{peer} is not IPv4");
            };
            assert!(default_loopback_range().contains(&v4), "{peer}");
            assert_eq!(
                v4,
                range.map(Some(site), client.ip()),
                "deterministic mapping"
            );
        }

        // A sender without a usable client header is mapped from the relay-reported endpoint.
        let data = random(1000);
        let reply =
            sender::send_with_headers(&relay, &[("X-Dongle-Relay-Client", "nonsense")], &data)
                .await
                .expect("sender");
        assert!(reply == data);
        let fallback = plain(target.next().await, &data);
        assert_eq!(
            fallback.ip(),
            IpAddr::V4(range.map(Some(DEFAULT_SITE), localhost))
        );

        let status = finished(&listener, 5).await;
        for (client, site, peer) in &served {
            let entry = entry_for(&status, *peer);
            assert_eq!(entry.client, *client);
            assert_eq!(entry.site.as_deref(), Some(*site));
            assert_eq!(entry.client_from, ClientSource::FromHeader);
        }
        assert_eq!(
            entry_for(&status, fallback).client_from,
            ClientSource::FromRelayEndpoint
        );
        assert_eq!(status.identity_collisions, 0);
    })
    .await
    .expect("timed out");
}
