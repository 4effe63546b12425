//! PROXY protocol v2 on the license port, over real TCP: a trusted peer's header names the
//! client and site (sessions, IP licences, status), a legacy client without a header loses no
//! byte, and a header from an untrusted peer, a malformed or a stalled one closes the
//! connection unanswered and is counted.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::{Raw, SLOT, at, config, start};
use license_core::engine::LicenseMode;
use license_core::protocol::Request;
use license_server::config::TrustedProxies;
use license_server::server::{PP2_TYPE_SITE, ProxyHeaderStats};
use ppp::v2::{Addresses, Builder, Command, IPv4, Protocol, Version};

/// A PROXY v2 header for `client` (IPv4) at `site`, destination the server.
fn header(client: &str, site: Option<&str>) -> Vec<u8> {
    let client: SocketAddr = client.parse().expect("addr");
    let SocketAddr::V4(c) = client else {
        panic!("IPv4 only")
    };
    let builder = Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        IPv4::new(*c.ip(), Ipv4Addr::LOCALHOST, c.port(), 12300),
    );
    match site {
        Some(s) => builder.write_tlv(PP2_TYPE_SITE, s.as_bytes()).expect("tlv"),
        None => builder,
    }
    .build()
    .expect("header")
}

/// A raw connection that starts with `header`.
async fn proxied(run: &common::Running, header: &[u8]) -> Raw {
    let mut raw = Raw::connect(run.addr).await;
    raw.send_bytes(header).await;
    raw
}

#[tokio::test(start_paused = true)]
async fn a_trusted_header_names_client_and_site() {
    let run = start(config(3)).await;
    let now = run.clock.unix_millis();
    let mut raw = proxied(&run, &header("192.0.2.7:51234", Some("branch-a"))).await;
    let mut session = raw.init(now).await;
    assert_eq!(
        raw.request(&mut session, &Request::Login(at(SLOT)), now)
            .await,
        2
    );
    let snap = run.server.snapshot();
    assert_eq!(snap.sessions.len(), 1);
    let s = &snap.sessions[0];
    assert_eq!(s.client_addr, "192.0.2.7:51234".parse().expect("addr"));
    assert_eq!(s.site.as_deref(), Some("branch-a"));
    assert_eq!(
        run.server.proxy_header_stats(),
        ProxyHeaderStats {
            accepted: 1,
            ..ProxyHeaderStats::default()
        }
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_without_header_is_served_untouched() {
    let run = start(config(3)).await;
    let api = run.client();
    assert_eq!(api.init().await, Ok(1));
    assert_eq!(api.login(at(SLOT)).await, Ok(2));
    let snap = run.server.snapshot();
    assert_eq!(snap.sessions[0].client_addr.ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(snap.sessions[0].site, None);
    assert_eq!(run.server.proxy_header_stats(), ProxyHeaderStats::default());
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn s6_7b_ip_licences_count_the_addresses_the_headers_report() {
    let mut cfg = config(3);
    cfg.license_mode = LicenseMode::Ip;
    let run = start(cfg).await;
    let now = run.clock.unix_millis();
    // Three processes at 10.0.0.1 (different ports), one at 10.0.0.2, all through the
    // same trusted peer.
    let mut clients = Vec::new();
    for (addr, site) in [
        ("10.0.0.1:1001", "a"),
        ("10.0.0.1:1002", "a"),
        ("10.0.0.1:1003", "a"),
        ("10.0.0.2:1001", "b"),
    ] {
        let mut raw = proxied(&run, &header(addr, Some(site))).await;
        let session = raw.init(now).await;
        clients.push((raw, session));
    }
    let mut left = Vec::new();
    for (raw, session) in &mut clients {
        left.push(raw.request(session, &Request::Login(at(SLOT)), now).await);
    }
    assert_eq!(
        left,
        [2, 2, 2, 1],
        "10.0.0.1 holds one seat, 10.0.0.2 another"
    );
    assert_eq!(run.taken(SLOT), 2);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_header_from_an_untrusted_peer_is_refused_unanswered() {
    let mut cfg = config(3);
    cfg.trusted_proxies = TrustedProxies::parse_list("10.9.9.9").expect("list");
    let run = start(cfg).await;
    let mut raw = proxied(&run, &header("192.0.2.7:1", Some("x"))).await;
    // Served as a frame, the header would get a -107 answer: it gets none.
    assert_eq!(raw.read().await, None, "closed without an answer");
    assert_eq!(
        run.server.proxy_header_stats(),
        ProxyHeaderStats {
            refused_untrusted: 1,
            ..ProxyHeaderStats::default()
        }
    );
    assert!(run.server.snapshot().sessions.is_empty());
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nobody_trusted_refuses_even_loopback() {
    let mut cfg = config(3);
    cfg.trusted_proxies = TrustedProxies::none();
    let run = start(cfg).await;
    let mut raw = proxied(&run, &header("192.0.2.7:1", None)).await;
    assert_eq!(raw.read().await, None);
    assert_eq!(run.server.proxy_header_stats().refused_untrusted, 1);
    // A plain client is still served.
    let api = run.client();
    assert_eq!(api.init().await, Ok(1));
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn malformed_oversized_and_stalled_headers_close_the_connection() {
    let run = start(config(3)).await;
    // A site TLV that is not UTF-8.
    let bad_site = Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        IPv4::new([10, 0, 0, 1], [127, 0, 0, 1], 1, 2),
    )
    .write_tlv(PP2_TYPE_SITE, &[0xff, 0xfe])
    .expect("tlv")
    .build()
    .expect("header");
    let mut raw = proxied(&run, &bad_site).await;
    assert_eq!(raw.read().await, None);
    // Announces 2000 bytes.
    let mut long = ppp::v2::PROTOCOL_PREFIX.to_vec();
    long.extend([0x21, 0x11, 0x07, 0xd0]);
    let mut raw = proxied(&run, &long).await;
    assert_eq!(raw.read().await, None);
    // Stops after the signature: closed after HEADER_TIMEOUT (paused time).
    let mut raw = proxied(&run, &ppp::v2::PROTOCOL_PREFIX[..10]).await;
    assert_eq!(raw.read().await, None);
    assert_eq!(
        run.server.proxy_header_stats(),
        ProxyHeaderStats {
            malformed: 3,
            ..ProxyHeaderStats::default()
        }
    );
    assert!(run.server.snapshot().sessions.is_empty());
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_header_in_pieces_and_a_local_header_work() {
    let run = start(config(3)).await;
    let now = run.clock.unix_millis();
    let bytes = header("192.0.2.9:7", Some("split"));
    let mut raw = Raw::connect(run.addr).await;
    for chunk in bytes.chunks(5) {
        raw.send_bytes(chunk).await;
        tokio::task::yield_now().await;
    }
    let _session = raw.init(now).await;
    // LOCAL (a proxy's own health check): the TCP peer stays the client.
    let local = Builder::with_addresses(
        Version::Two | Command::Local,
        Protocol::Unspecified,
        Addresses::Unspecified,
    )
    .build()
    .expect("header");
    let mut raw = proxied(&run, &local).await;
    let _session = raw.init(now).await;
    let mut addrs: Vec<_> = run
        .server
        .snapshot()
        .sessions
        .iter()
        .map(|s| (s.client_addr.ip().to_string(), s.site.clone()))
        .collect();
    addrs.sort();
    assert_eq!(
        addrs,
        [
            ("127.0.0.1".to_owned(), None),
            ("192.0.2.9".to_owned(), Some("split".to_owned()))
        ]
    );
    assert_eq!(run.server.proxy_header_stats().accepted, 2);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn clients_bound_to_other_loopback_addresses_count_as_other_ips() {
    let mut cfg = config(3);
    cfg.license_mode = LicenseMode::Ip;
    let run = start(cfg).await;
    let mut left = Vec::new();
    for local in ["127.0.0.2", "127.0.0.3", "127.0.0.3"] {
        let mut c = run.client_config();
        c.local_addr = Some(local.parse().expect("ip"));
        let api = license_client::RemoteApi::new(c);
        api.init().await.expect("init");
        left.push(api.login(at(SLOT)).await.expect("login"));
    }
    assert_eq!(left, [2, 1, 1]);
    let mut ips: Vec<String> = run
        .server
        .snapshot()
        .sessions
        .iter()
        .map(|s| s.client_addr.ip().to_string())
        .collect();
    ips.sort();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3", "127.0.0.3"]);
    run.stop().await;
}
