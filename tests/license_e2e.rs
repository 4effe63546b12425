//! The product's one path, end to end: a legacy license client → local-proxy → relay (TLS, real
//! SAS tokens) → relay-listener (PROXY v2 identity) → license server, all in-process on
//! `127.0.0.1:0` ports.
//!
//! Proves that the tunnel is transparent to the license protocol (the same script gets the same
//! answers, seat counts and error codes directly and tunnelled), that IP-based licences count
//! the real client addresses the PROXY headers carry (section 6.7b), that seats are shared and
//! exhausted across two sites and come back after logout and after the login timeout, that a
//! relay restart in the middle of a session leaves the seat count exact, and that a PROXY header
//! from an untrusted peer is refused and logged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use license_client::RemoteApi;
use license_core::engine::LicenseMode;
use license_core::{ErrorCode, SlotRef};
use license_server::ServerConfig;
use license_server::config::{DongleSection, TrustedProxies};
use relay_listener::IdentityMode;
use test_support::license::License;
use test_support::{LIMIT, Listener, Proxy, Relay};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

const SLOT: u16 = 1;

fn at() -> SlotRef {
    SlotRef::first_dongle(SLOT)
}

/// One simulated dongle whose AppSlot 1 has `limit` seats (AppSlot 2 has 10).
fn config(limit: u32) -> ServerConfig {
    ServerConfig {
        dongles: vec![DongleSection {
            number: 1,
            sernr: Some(1_234_567_890),
            name: Some("E2EDongle".into()),
            limits: [(SLOT, limit), (2, 10)].into(),
            slot_names: [(SLOT, "E2E App".to_owned())].into(),
            data: vec![5, 6, 7],
            ..DongleSection::default()
        }],
        key_file: None,
        ..ServerConfig::default()
    }
}

/// The tunnel in front of `license`: a TLS relay, a connected listener in PROXY v2 mode, and
/// one local-proxy per site.
async fn tunnel(license: &License, sites: &[&str]) -> (Relay, Listener, Vec<Proxy>) {
    tunnel_in(IdentityMode::ProxyV2, license, sites).await
}

/// [`tunnel`] with the listener in identity `mode`.
async fn tunnel_in(
    mode: IdentityMode,
    license: &License,
    sites: &[&str],
) -> (Relay, Listener, Vec<Proxy>) {
    let relay = Relay::start_tls().await;
    let mut config = relay.listener_config(license.addr());
    config.identity.mode = mode;
    let listener = Listener::connected(config).await;
    let mut proxies = Vec::new();
    for site in sites {
        proxies.push(Proxy::spawn(relay.proxy_config_at(site)).await);
    }
    (relay, listener, proxies)
}

/// Every answer of a script, labelled, for comparison.
type Transcript = Vec<(String, String)>;

fn note<T: std::fmt::Debug>(t: &mut Transcript, label: &str, value: T) {
    t.push((label.to_owned(), format!("{value:?}")));
}

/// A session-licence script with three processes on a two-seat AppSlot: init (counted),
/// dongle calls, logins up to -31, login counts with names, unknown AppSlot and dongle, logout
/// (and a second one), an administrator's disconnect (-105), calls without a session (-116),
/// release.
async fn session_script(license: &License, addr: SocketAddr) -> Transcript {
    let mut t = Transcript::new();
    let p: Vec<RemoteApi> = ["p0", "p1", "p2"]
        .iter()
        .map(|n| license.client(addr, n, None))
        .collect();
    note(&mut t, "p0 init", p[0].init().await);
    note(&mut t, "p0 init again", p[0].init().await);
    note(&mut t, "p0 dongle count", p[0].dongle_count().await);
    note(&mut t, "p0 serial", p[0].read_ser_nr(0, 1).await);
    note(&mut t, "p0 data", p[0].read_data(0, 1, 0, 3).await);
    note(&mut t, "p0 login", p[0].login(at()).await);
    note(&mut t, "p0 login again", p[0].login(at()).await);
    note(&mut t, "p1 init", p[1].init().await);
    note(&mut t, "p1 login", p[1].login(at()).await);
    note(&mut t, "p2 init", p[2].init().await);
    note(&mut t, "p2 login", p[2].login(at()).await);
    note(&mut t, "taken", license.taken());
    note(&mut t, "p2 login count", p[2].login_count(at()).await);
    note(&mut t, "p2 login count ex", p[2].login_count_ex(at()).await);
    let nowhere = SlotRef::first_dongle(7);
    note(&mut t, "p2 login AppSlot 7", p[2].login(nowhere).await);
    let dongle5 = SlotRef {
        dng_nr: 5,
        ..SlotRef::first_dongle(SLOT)
    };
    note(&mut t, "p2 login dongle 5", p[2].refresh(dongle5).await);
    note(&mut t, "p0 logout", p[0].logout(at()).await);
    note(&mut t, "p0 logout", p[0].logout(at()).await);
    note(&mut t, "p0 logout", p[0].logout(at()).await);
    note(&mut t, "p2 login after logout", p[2].refresh(at()).await);
    note(&mut t, "taken", license.taken());
    let id = p[1].session_id().await.expect("p1 session");
    note(
        &mut t,
        "disconnect p1",
        license.server().disconnect_session(id),
    );
    note(&mut t, "p1 refresh", p[1].refresh(at()).await);
    note(&mut t, "p1 release", p[1].release().await);
    note(&mut t, "p1 login without session", p[1].login(at()).await);
    note(&mut t, "p1 release without session", p[1].release().await);
    note(&mut t, "p2 logout", p[2].logout(at()).await);
    note(&mut t, "p2 release", p[2].release().await);
    note(&mut t, "p0 release", p[0].release().await);
    note(&mut t, "p0 release", p[0].release().await);
    note(&mut t, "taken", license.taken());
    t
}

#[tokio::test]
async fn tunnelled_answers_equal_direct_answers() {
    timeout(LIMIT, async {
        let direct = License::start_with(config(2)).await;
        let expected = session_script(&direct, direct.addr()).await;

        let tunnelled = License::start_with(config(2)).await;
        let (_relay, listener, proxies) = tunnel(&tunnelled, &["branch-a"]).await;
        let got = session_script(&tunnelled, proxies[0].addr()).await;

        for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(e, g, "step {i} differs (direct, tunnelled)");
        }
        assert_eq!(expected.len(), got.len());
        // The transcript is not vacuous: the codes that matter are in it.
        let answer = |label: &str| {
            got.iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(answer("p0 init"), "Ok(1)");
        assert_eq!(answer("p0 init again"), "Ok(2)");
        assert_eq!(answer("p0 serial"), "Ok(1234567890)");
        assert_eq!(answer("p0 login"), "Ok(1)");
        assert_eq!(answer("p1 login"), "Ok(0)");
        assert_eq!(
            answer("p2 login"),
            format!("Err({:?})", ErrorCode::NoLicense)
        );
        assert_eq!(
            answer("p2 login count ex"),
            r#"Ok((2, ["p0", "p1"]))"#,
            "seat holders by name"
        );
        assert_eq!(
            answer("p2 login dongle 5"),
            format!("Err({:?})", ErrorCode::NoDongle)
        );
        assert_eq!(answer("p2 login after logout"), "Ok(0)");
        assert_eq!(
            answer("p1 refresh"),
            format!("Err({:?})", ErrorCode::SessionPassword)
        );
        assert_eq!(
            answer("p1 login without session"),
            format!("Err({:?})", ErrorCode::NoSession)
        );
        assert!(
            got.iter()
                .any(|(_, v)| *v == format!("Err({:?})", ErrorCode::NotLoggedIn)),
            "a logout without login answers -11: {got:?}"
        );
        assert_eq!(got.last().map(|(_, v)| v.as_str()), Some("0"));
        // Through the tunnel the server saw PROXY headers, one per connection.
        assert!(tunnelled.server().proxy_header_stats().accepted > 10);
        assert_eq!(direct.server().proxy_header_stats().accepted, 0);
        assert!(listener.status().snapshot().accepted > 10);
        direct.stop().await;
        tunnelled.stop().await;
    })
    .await
    .expect("within the limit");
}

/// Section 6.7b through `addr`: clients at 127.0.0.2 and 127.0.0.3 take a seat each, three
/// processes at 127.0.0.4 take one between them, a fourth address finds none until the three
/// have logged out.
async fn ip_script(license: &License, addr: SocketAddr) -> Transcript {
    let mut t = Transcript::new();
    let clients = [
        ("a", "127.0.0.2"),
        ("b", "127.0.0.3"),
        ("c1", "127.0.0.4"),
        ("c2", "127.0.0.4"),
        ("c3", "127.0.0.4"),
        ("d", "127.0.0.5"),
    ];
    let apis: Vec<RemoteApi> = clients
        .iter()
        .map(|(name, ip)| license.client(addr, name, Some(ip.parse().expect("ip"))))
        .collect();
    for ((name, _), api) in clients.iter().zip(&apis) {
        note(&mut t, &format!("{name} init"), api.init().await);
        note(&mut t, &format!("{name} login"), api.login(at()).await);
        note(&mut t, &format!("taken after {name}"), license.taken());
    }
    for (i, name) in [(2, "c1"), (3, "c2"), (4, "c3")] {
        note(
            &mut t,
            &format!("{name} logout"),
            apis[i].logout(at()).await,
        );
        note(
            &mut t,
            &format!("taken after {name} logout"),
            license.taken(),
        );
    }
    note(&mut t, "d login again", apis[5].refresh(at()).await);
    note(&mut t, "taken", license.taken());
    let mut ips: Vec<String> = license
        .snapshot()
        .sessions
        .iter()
        .map(|s| s.client_addr.ip().to_string())
        .collect();
    ips.sort();
    note(&mut t, "session addresses", ips);
    t
}

/// [`ip_script`] run directly against one IP-licensed server and through the tunnel (listener
/// in identity `mode`, one site `branch-a`) against another.
struct IpRun {
    direct: License,
    tunnelled: License,
    expected: Transcript,
    got: Transcript,
    _tunnel: (Relay, Listener, Vec<Proxy>),
}

impl IpRun {
    async fn start(mode: IdentityMode) -> Self {
        let ip_config = || ServerConfig {
            license_mode: LicenseMode::Ip,
            ..config(3)
        };
        let direct = License::start_with(ip_config()).await;
        let expected = ip_script(&direct, direct.addr()).await;
        let tunnelled = License::start_with(ip_config()).await;
        let tunnel = tunnel_in(mode, &tunnelled, &["branch-a"]).await;
        let got = ip_script(&tunnelled, tunnel.2[0].addr()).await;
        Self {
            direct,
            tunnelled,
            expected,
            got,
            _tunnel: tunnel,
        }
    }

    async fn stop(self) {
        self.direct.stop().await;
        self.tunnelled.stop().await;
    }
}

#[tokio::test]
async fn ip_licences_through_the_tunnel_count_real_client_addresses() {
    timeout(LIMIT, async {
        let run = IpRun::start(IdentityMode::ProxyV2).await;
        let (tunnelled, expected, got) = (&run.tunnelled, &run.expected, &run.got);
        assert_eq!(got, expected, "direct and tunnelled differ");
        let value = |label: &str| {
            got.iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(value("taken after a"), "1");
        assert_eq!(value("taken after b"), "2", "two addresses, two seats");
        assert_eq!(
            value("taken after c3"),
            "3",
            "three processes, one address, one seat"
        );
        assert_eq!(value("c3 login"), "Ok(0)");
        assert_eq!(value("d login"), format!("Err({:?})", ErrorCode::NoLicense));
        assert_eq!(
            value("taken after c2 logout"),
            "3",
            "c3 still holds 127.0.0.4's seat"
        );
        assert_eq!(
            value("c3 logout"),
            "Ok(1)",
            "the address's last record frees it"
        );
        assert_eq!(value("d login again"), "Ok(0)");
        // Every tunnelled session carries the proxy's site.
        assert!(
            tunnelled
                .snapshot()
                .sessions
                .iter()
                .all(|s| s.site.as_deref() == Some("branch-a"))
        );
        run.stop().await;
    })
    .await
    .expect("within the limit");
}

/// What the vendor's server does on Windows, with dongle-relay's server standing in for it: it
/// reads no PROXY header and counts IP-based seats by peer address. With the listener in
/// `loopback` identity mode each real client reaches it from its own 127/8 address, so the IP
/// script gets the same answers and seat counts as direct, and the server sees one stable
/// mapped address per client. Runs on Linux and, as a Windows executable, under Wine.
#[cfg(any(target_os = "linux", windows))]
#[tokio::test]
async fn ip_licences_count_real_clients_through_loopback_identity_without_proxy_headers() {
    use relay_listener::identity::default_loopback_range;
    use relay_listener::loopback::SourceRange;

    timeout(LIMIT, async {
        let run = IpRun::start(IdentityMode::Loopback).await;
        let (tunnelled, expected, got) = (&run.tunnelled, &run.expected, &run.got);
        const ADDRESSES: &str = "session addresses";
        let answers = |t: &Transcript| -> Transcript {
            t.iter().filter(|(l, _)| l != ADDRESSES).cloned().collect()
        };
        assert_eq!(
            answers(got),
            answers(expected),
            "direct and tunnelled differ"
        );
        // The server saw each client at the address the listener mapped it to, never the
        // listener's own 127.0.0.1.
        let range = SourceRange::new(default_loopback_range()).expect("range");
        let mut mapped: Vec<String> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
            .iter()
            .map(|ip| {
                range
                    .map(Some("branch-a"), ip.parse().expect("ip"))
                    .to_string()
            })
            .collect();
        mapped.sort();
        let mut seen: Vec<String> = tunnelled
            .snapshot()
            .sessions
            .iter()
            .map(|s| s.client_addr.ip().to_string())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, mapped, "one mapped source per client");
        assert_eq!(
            tunnelled.server().proxy_header_stats().accepted,
            0,
            "no PROXY header was sent"
        );
        run.stop().await;
    })
    .await
    .expect("within the limit");
}

/// The server's LoginTimeOut in [`seats_are_shared_across_sites_and_return_after_logout_and_timeout`]:
/// short, as the test waits for a login to time out, but long enough for the calls before the
/// logouts. Longer under Windows: the Windows build's tests run under Wine, where each call
/// through the tunnel is much slower and 2 s proved flaky on a loaded machine.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(if cfg!(windows) { 6 } else { 2 });

#[tokio::test]
async fn seats_are_shared_across_sites_and_return_after_logout_and_timeout() {
    timeout(LIMIT, async {
        let license = License::start_with(ServerConfig {
            login_timeout: LOGIN_TIMEOUT,
            ..config(2)
        })
        .await;
        let (_relay, _listener, proxies) = tunnel(&license, &["branch-a", "branch-b"]).await;
        let (a, b) = (proxies[0].addr(), proxies[1].addr());
        let a1 = license.client(a, "a1", None);
        let a2 = license.client(a, "a2", None);
        let b1 = license.client(b, "b1", None);
        let b2 = license.client(b, "b2", None);
        for api in [&a1, &a2, &b1, &b2] {
            assert_eq!(api.init().await, Ok(1));
        }
        assert_eq!(a1.login(at()).await, Ok(1));
        assert_eq!(
            b1.login(at()).await,
            Ok(0),
            "the second site takes the last seat"
        );
        assert_eq!(b2.login(at()).await, Err(ErrorCode::NoLicense));
        assert_eq!(a2.login(at()).await, Err(ErrorCode::NoLicense));
        assert_eq!(license.taken(), 2);
        let mut sites: Vec<_> = license
            .snapshot()
            .sessions
            .iter()
            .map(|s| s.site.clone().unwrap_or_default())
            .collect();
        sites.sort();
        assert_eq!(sites, ["branch-a", "branch-a", "branch-b", "branch-b"]);
        assert_eq!(
            a2.login_count_ex(at()).await,
            Ok((2, vec!["a1".to_owned(), "b1".to_owned()]))
        );

        // Back after a logout, at the other site.
        assert_eq!(a1.logout(at()).await, Ok(1));
        assert_eq!(b2.refresh(at()).await, Ok(0));
        assert_eq!(b2.logout(at()).await, Ok(1));

        // Back after b1's login times out (LOGIN_TIMEOUT, no refresh).
        license
            .wait_until("b1's login to time out", |s| {
                s.slot(SLOT).is_some_and(|s| s.taken == 0)
            })
            .await;
        assert_eq!(
            a2.refresh(at()).await,
            Ok(1),
            "the timed-out seat is free again"
        );
        assert_eq!(
            b1.logout(at()).await,
            Err(ErrorCode::NotLoggedIn),
            "logging out a login that timed out"
        );
        assert_eq!(license.taken(), 1);
        license.stop().await;
    })
    .await
    .expect("within the limit");
}

/// A refresh, or — when the server no longer knows the session (-105, or -116 locally) — a new
/// init and login, as a legacy client library does.
async fn refresh_or_reinit(api: &RemoteApi) -> (Result<i32, ErrorCode>, bool) {
    match api.refresh(at()).await {
        Err(ErrorCode::SessionPassword | ErrorCode::NoSession) => {
            api.reset().await;
            assert_eq!(api.init().await, Ok(1));
            (api.login(at()).await, true)
        }
        other => (other, false),
    }
}

#[tokio::test]
async fn a_relay_restart_mid_session_leaves_the_seat_count_exact() {
    timeout(LIMIT, async {
        let license = License::start_with(config(3)).await;
        let (mut relay, listener, proxies) = tunnel(&license, &["branch-a"]).await;
        let addr = proxies[0].addr();
        // One client per call (the manual's pattern), one on a kept-open connection.
        let legacy = license.client(addr, "legacy", None);
        let persistent = {
            let mut c = legacy.settings();
            c.client_name = "persistent".into();
            c.persistent = true;
            RemoteApi::new(c)
        };
        for api in [&legacy, &persistent] {
            assert_eq!(api.init().await, Ok(1));
        }
        assert_eq!(legacy.login(at()).await, Ok(2));
        assert_eq!(persistent.login(at()).await, Ok(1));
        assert_eq!(license.taken(), 2);

        relay.restart().await;
        let status = listener
            .status()
            .wait_for(|s| s.connected && s.connections >= 2)
            .await;
        assert_eq!(status.reconnects, 1, "{status:?}");

        let (legacy_left, legacy_reinit) = refresh_or_reinit(&legacy).await;
        let (persistent_left, persistent_reinit) = refresh_or_reinit(&persistent).await;
        assert_eq!(legacy_left, Ok(1));
        assert_eq!(persistent_left, Ok(1));
        // The license server never restarted: both sessions survived the relay's restart.
        assert!(!legacy_reinit && !persistent_reinit);
        assert_eq!(license.taken(), 2, "no seat leaked or doubled");
        assert_eq!(license.snapshot().sessions.len(), 2);
        assert_eq!(license.snapshot().logins.len(), 2);
        assert_eq!(legacy.logout(at()).await, Ok(2));
        assert_eq!(persistent.logout(at()).await, Ok(3));
        assert_eq!(legacy.release().await, Ok(0));
        assert_eq!(persistent.release().await, Ok(0));
        assert_eq!(license.taken(), 0);
        assert!(license.snapshot().sessions.is_empty());
        license.stop().await;
    })
    .await
    .expect("within the limit");
}

/// Log lines written while a test runs (the current thread's default subscriber).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_proxy_header_from_an_untrusted_peer_is_refused_and_logged() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    // The test runtime is single-threaded: the server's tasks log through this subscriber.
    // A second live dispatcher: with only one registered, tracing takes a call site's interest
    // from the first thread to reach it, and another test's thread (no subscriber) would
    // silence that line for the whole process. With two, it asks every live dispatcher.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    timeout(LIMIT, async {
        // Only 10.9.9.9 may send headers: 127.0.0.1 (this test, and the listener) may not.
        let license = License::start_with(ServerConfig {
            trusted_proxies: TrustedProxies::parse_list("10.9.9.9").expect("list"),
            ..config(3)
        })
        .await;

        // A direct connection that claims to be 192.0.2.7 at site "forged".
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            ppp::v2::IPv4::new([192, 0, 2, 7], [127, 0, 0, 1], 4000, license.addr().port()),
        )
        .write_tlv(relay_listener::PP2_TYPE_SITE, b"forged")
        .expect("tlv")
        .build()
        .expect("header");
        let mut stream = TcpStream::connect(license.addr()).await.expect("connect");
        stream.write_all(&header).await.expect("write");
        // Closed unread (a reset, since the header's rest was never read) or at EOF: no
        // answer, not even the -107 a non-frame would get.
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer).await {
            Ok(_) => assert!(answer.is_empty(), "an answer: {answer:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(answer.is_empty(), "an answer: {answer:?}");
        assert_eq!(license.server().proxy_header_stats().refused_untrusted, 1);
        assert!(license.snapshot().sessions.is_empty());

        // A listener that sends headers is refused the same way: its client cannot init.
        let (_relay, _listener, proxies) = tunnel(&license, &["branch-a"]).await;
        let tunnelled = license.client(proxies[0].addr(), "via-untrusted-listener", None);
        assert!(tunnelled.init().await.is_err());
        assert_eq!(license.server().proxy_header_stats().refused_untrusted, 2);

        // A client without header on the same address is served as before.
        let direct = license.client(license.addr(), "direct", None);
        assert_eq!(direct.init().await, Ok(1));
        let sessions = license.snapshot().sessions;
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].client_name, "direct");
        assert_eq!(sessions[0].site, None);

        let text = logs.text();
        let refusals: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("PROXY header from untrusted peer 127.0.0.1:"))
            .collect();
        assert_eq!(refusals.len(), 2, "one warning per refusal:\n{text}");
        assert!(refusals.iter().all(|l| l.contains("WARN")), "{text}");
        license.stop().await;
    })
    .await
    .expect("within the limit");
}
