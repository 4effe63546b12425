//! The client library against a real server: the reference counting of sections 6.5 and
//! 6.7a, the IP licence of 6.7b with three processes on one address, connect errors and
//! timeouts, SOCKS5 egress (section 9) and `mxnetapi.ini`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{LIMIT, SLOT, at, config, start};
use license_client::{ClientConfig, Password, RemoteApi, SocksConfig};
use license_core::ErrorCode;
use license_core::engine::LicenseMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn s6_5_one_session_per_process_whatever_the_threads() {
    let run = start(config(3)).await;
    let process = run.client();
    assert_eq!(process.init().await, Ok(1));
    assert_eq!(process.init().await, Ok(2));
    assert_eq!(process.init().await, Ok(3));
    assert_eq!(
        run.server.snapshot().sessions.len(),
        1,
        "only the first init was sent"
    );
    assert_eq!(process.release().await, Ok(2));
    assert_eq!(process.release().await, Ok(1));
    assert_eq!(
        run.server.snapshot().sessions.len(),
        1,
        "not sent while the count is above 1"
    );
    assert_eq!(process.release().await, Ok(0));
    assert!(
        run.server.snapshot().sessions.is_empty(),
        "the last release was sent"
    );
    assert_eq!(process.release().await, Err(ErrorCode::NoSession));
    run.stop().await;
}

/// Section 6.7a: three threads of process A log in and out; only the first login takes a seat
/// (the others are sent and refresh it, section 6.6) and only the last logout reaches the
/// server. Process B takes its own seat.
#[tokio::test]
async fn s6_7a_session_licence_with_client_counting() {
    let run = start(config(3)).await;
    let (a, b) = (run.client(), run.client());
    a.init().await.expect("a");
    b.init().await.expect("b");
    assert_eq!(a.login(at(SLOT)).await, Ok(2)); // thread 1: sent, takes a seat
    assert_eq!(a.login(at(SLOT)).await, Ok(2)); // thread 2: sent as a refresh, counted
    assert_eq!(a.login(at(SLOT)).await, Ok(2)); // thread 3: sent as a refresh, counted
    assert_eq!(a.login_refs(at(SLOT)).await, 3);
    assert_eq!(run.taken(SLOT), 1);
    assert_eq!(
        b.login(at(SLOT)).await,
        Ok(1),
        "process B takes its own seat"
    );
    assert_eq!(a.logout(at(SLOT)).await, Ok(2)); // thread 2: counted
    assert_eq!(a.logout(at(SLOT)).await, Ok(2)); // thread 3: counted
    assert_eq!(run.taken(SLOT), 2, "still held: the logouts were not sent");
    assert_eq!(a.logout(at(SLOT)).await, Ok(2)); // thread 1: sent, frees the seat
    assert_eq!(run.taken(SLOT), 1);
    assert_eq!(
        a.logout(at(SLOT)).await,
        Err(ErrorCode::NotLoggedIn),
        "sent: -11"
    );
    run.stop().await;
}

/// Section 6.7b over TCP: three processes on 127.0.0.1 share one seat.
#[tokio::test]
async fn s6_7b_ip_licence_three_processes_one_address() {
    let mut cfg = config(1);
    cfg.license_mode = LicenseMode::Ip;
    let run = start(cfg).await;
    let p: Vec<RemoteApi> = (0..3).map(|_| run.client()).collect();
    for api in &p {
        api.init().await.expect("init");
    }
    assert_eq!(p[0].login(at(SLOT)).await, Ok(0));
    assert_eq!(p[1].login(at(SLOT)).await, Ok(0), "refreshes IP1's login");
    assert_eq!(p[2].login(at(SLOT)).await, Ok(0), "refreshes IP1's login");
    assert_eq!(run.server.snapshot().logins.len(), 3);
    assert_eq!(run.taken(SLOT), 1);
    assert_eq!(p[1].logout(at(SLOT)).await, Ok(0));
    assert_eq!(p[0].logout(at(SLOT)).await, Ok(0));
    assert_eq!(run.taken(SLOT), 1);
    assert_eq!(
        p[2].logout(at(SLOT)).await,
        Ok(1),
        "the last record frees the seat"
    );
    assert_eq!(run.taken(SLOT), 0);
    assert_eq!(p[0].login_count_ex(at(SLOT)).await, Ok((0, Vec::new())));
    run.stop().await;
}

#[tokio::test]
async fn connect_failure_is_minus_100() {
    // A port nothing listens on: bind, note, close.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let api = RemoteApi::new(ClientConfig::for_server("127.0.0.1", port));
    assert_eq!(api.init().await, Err(ErrorCode::Connect));
    assert_eq!(api.init_count().await, 0, "a failed init leaves no count");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_receive_error() {
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let (_s, _) = silent.accept().await.expect("accept");
        std::future::pending::<()>().await;
    });
    let mut cfg = ClientConfig::for_server(addr.ip().to_string(), addr.port());
    cfg.io_timeout = Duration::from_millis(200);
    let r = tokio::time::timeout(LIMIT, RemoteApi::new(cfg).init()).await;
    assert_eq!(r.expect("bounded"), Err(ErrorCode::Receive));
    hold.abort();
}

// ----- SOCKS5 (section 9) -----

/// A minimal SOCKS5 proxy for the tests: optional username/password, CONNECT only.
async fn socks_proxy(
    auth: Option<(&'static str, &'static str)>,
    version: u8,
) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 2];
                s.read_exact(&mut head).await.ok()?;
                let mut methods = vec![0u8; usize::from(head[1])];
                s.read_exact(&mut methods).await.ok()?;
                match auth {
                    None => s.write_all(&[version, 0]).await.ok()?,
                    Some((user, pass)) => {
                        if !methods.contains(&2) {
                            s.write_all(&[version, 0xFF]).await.ok()?;
                            return None;
                        }
                        s.write_all(&[version, 2]).await.ok()?;
                        let mut v = [0u8; 2];
                        s.read_exact(&mut v).await.ok()?;
                        let mut u = vec![0u8; usize::from(v[1])];
                        s.read_exact(&mut u).await.ok()?;
                        let mut pl = [0u8; 1];
                        s.read_exact(&mut pl).await.ok()?;
                        let mut p = vec![0u8; usize::from(pl[0])];
                        s.read_exact(&mut p).await.ok()?;
                        let ok = u == user.as_bytes() && p == pass.as_bytes();
                        s.write_all(&[1, if ok { 0 } else { 1 }]).await.ok()?;
                        if !ok {
                            return None;
                        }
                    }
                }
                let mut req = [0u8; 4];
                s.read_exact(&mut req).await.ok()?;
                let host = match req[3] {
                    1 => {
                        let mut a = [0u8; 4];
                        s.read_exact(&mut a).await.ok()?;
                        std::net::Ipv4Addr::from(a).to_string()
                    }
                    3 => {
                        let mut l = [0u8; 1];
                        s.read_exact(&mut l).await.ok()?;
                        let mut name = vec![0u8; usize::from(l[0])];
                        s.read_exact(&mut name).await.ok()?;
                        String::from_utf8(name).ok()?
                    }
                    _ => return None,
                };
                let mut p = [0u8; 2];
                s.read_exact(&mut p).await.ok()?;
                let mut target = TcpStream::connect((host.as_str(), u16::from_be_bytes(p)))
                    .await
                    .ok()?;
                s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok()?;
                count.fetch_add(1, Ordering::SeqCst);
                tokio::io::copy_bidirectional(&mut s, &mut target)
                    .await
                    .ok()?;
                Some(())
            });
        }
    });
    (port, tunnels)
}

fn via(run: &common::Running, port: u16, auth: Option<(&str, &str)>) -> RemoteApi {
    let mut cfg = run.client_config();
    cfg.socks = Some(SocksConfig {
        host: "127.0.0.1".into(),
        port,
        auth: auth.map(|(u, p)| (u.to_owned(), Password::new(p))),
    });
    RemoteApi::new(cfg)
}

#[tokio::test]
async fn s9_calls_go_through_a_socks5_proxy() {
    let run = start(config(3)).await;
    let (port, tunnels) = socks_proxy(None, 5).await;
    let api = via(&run, port, None);
    assert_eq!(api.init().await, Ok(1));
    assert_eq!(api.login(at(SLOT)).await, Ok(2));
    assert_eq!(api.release().await, Ok(0));
    assert_eq!(tunnels.load(Ordering::SeqCst), 3, "one tunnel per call");
    run.stop().await;
}

#[tokio::test]
async fn s9_socks5_username_and_password() {
    let run = start(config(3)).await;
    let (port, _) = socks_proxy(Some(("alice", "s3cret")), 5).await;
    assert_eq!(
        via(&run, port, Some(("alice", "s3cret"))).init().await,
        Ok(1)
    );
    assert_eq!(
        via(&run, port, Some(("alice", "wrong"))).init().await,
        Err(ErrorCode::SocksAuth)
    );
    assert_eq!(
        via(&run, port, None).init().await,
        Err(ErrorCode::SocksNoAuthMethod)
    );
    run.stop().await;
}

#[tokio::test]
async fn s9_socks_errors_have_their_codes() {
    let run = start(config(3)).await;
    let (port, _) = socks_proxy(None, 4).await;
    assert_eq!(
        via(&run, port, None).init().await,
        Err(ErrorCode::SocksVersion)
    );
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    assert_eq!(
        via(&run, closed, None).init().await,
        Err(ErrorCode::Connect)
    );
    run.stop().await;
}

// ----- mxnetapi.ini -----

#[test]
fn mxnetapi_ini_as_the_manual_writes_it() {
    let cfg = ClientConfig::from_ini_str(
        "[Options]\n# MxNet2 server IP address\nip=192.168.1.5\n# MxNet2 Server Port\nport=12301\n\
         # Connect timeout(in millsec)\ntimeout=1500\nremote=1\n\
         [SocksServer]\nPort=1081\nIP=10.0.0.9\nUser=alice\nPassword=s3cret\n",
    )
    .expect("parse");
    assert_eq!((cfg.host.as_str(), cfg.port), ("192.168.1.5", 12301));
    assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));
    let socks = cfg.socks.expect("socks");
    assert_eq!((socks.host.as_str(), socks.port), ("10.0.0.9", 1081));
    let (user, pass) = socks.auth.expect("auth");
    assert_eq!((user.as_str(), pass.expose()), ("alice", "s3cret"));
    assert_eq!(format!("{pass:?}"), "Password(<redacted>)");
    assert!(!cfg.persistent);
}

#[test]
fn mxnetapi_ini_errors_name_the_key() {
    let err = |t: &str| {
        ClientConfig::from_ini_str(t)
            .expect_err("error")
            .to_string()
    };
    assert!(err("[Options]\nremote=0\n").contains("remote"));
    assert!(err("[Options]\nport=x\n").contains("port"));
    assert!(err("[Options]\nfoo=1\n").contains("[Options] foo: unknown key"));
    assert!(err("[SocksServer]\nIP=1.2.3.4\nUserPass=AWhXmTv\n").contains("User= and Password="));
    assert!(err("[SocksServer]\nPort=1080\n").contains("IP"));
    assert!(err("[Options]\nserverkey=abc\n").contains("serverkey"));
    let key = license_core::protocol::ServerIdentity::generate()
        .expect("key")
        .public_key();
    let cfg = ClientConfig::from_ini_str(&format!("[Option]\nserverkey={key}\npersistent=1\n"))
        .expect("parse");
    assert_eq!(cfg.pinned_key, Some(key));
    assert!(cfg.persistent);
}

#[test]
fn mxnetapi_ini_file_errors_name_the_file_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mxnetapi.ini");
    std::fs::write(&file, "[Options\nip=10.0.0.5\n").expect("write");
    let err = ClientConfig::load(&file).expect_err("syntax").to_string();
    let path = file.display().to_string();
    assert!(err.starts_with(&format!("{path}: ")), "{err}");
    assert_eq!(err.matches("mxnetapi.ini").count(), 1, "{err}");
    std::fs::write(&file, "[Options]\nport=x\n").expect("write");
    let err = ClientConfig::load(&file)
        .expect_err("bad value")
        .to_string();
    assert!(err.starts_with(&format!("{path}: [Options] port")), "{err}");
    let missing = dir.path().join("missing.ini");
    let err = ClientConfig::load(&missing).expect_err("missing");
    assert_eq!(err.to_string().matches("missing.ini").count(), 1, "{err}");
    assert!(
        std::error::Error::source(&err).is_none(),
        "the message has the reason"
    );
}

#[test]
fn mxnetapi_ini_local_address() {
    let cfg = ClientConfig::from_ini_str("[Options]\nlocalip=127.0.0.2\n").expect("parse");
    assert_eq!(cfg.local_addr, Some("127.0.0.2".parse().expect("ip")));
    assert_eq!(ClientConfig::default().local_addr, None);
    let err = ClientConfig::from_ini_str("[Options]\nlocalip=my-pc\n")
        .expect_err("error")
        .to_string();
    assert!(err.contains("localip"), "{err}");
}
