//! Dialling against loopback servers: certificate pinning (right and wrong fingerprint), CA-file
//! trust, refusal statuses, the token header and subprotocol offer, and egress through tiny
//! in-test SOCKS5 and HTTP CONNECT proxies.

#![allow(clippy::result_large_err)] // tungstenite's handshake callback signature.

use std::sync::Arc;
use std::time::Duration;

use hc_client::dial::{DialError, DialRequest, DialTimeouts, Dialer, ws_config};
use hc_client::egress::{Egress, ProxyAuth};
use hc_client::trust::{Fingerprint, TrustConfig};
use hc_protocol::Secret;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use url::Url;

const LIMIT: Duration = Duration::from_secs(20);

struct TestCert {
    pem: String,
    fingerprint: Fingerprint,
    config: Arc<rustls::ServerConfig>,
}

fn test_cert() -> TestCert {
    hc_client::install_crypto_provider();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let der = key.cert.der().clone();
    let fingerprint = Fingerprint::of(&der);
    let private = rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], private)
        .expect("server config");
    TestCert {
        pem: key.cert.pem(),
        fingerprint,
        config: Arc::new(config),
    }
}

/// A WebSocket server on loopback that accepts one connection at a time, optionally over TLS,
/// answering each upgrade with `answer` (which may refuse it).
async fn ws_server<F>(tls: Option<Arc<rustls::ServerConfig>>, answer: F) -> u16
where
    F: Fn(&Request, Response) -> Result<Response, ErrorResponse>
        + Clone
        + Send
        + Sync
        + Unpin
        + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let callback = move |req: &Request, resp: Response| answer(req, resp);
                match tls {
                    Some(cfg) => {
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                        else {
                            return;
                        };
                        if let Ok(mut ws) =
                            tokio_tungstenite::accept_hdr_async(stream, callback).await
                        {
                            let _ = ws.close(None).await;
                        }
                    }
                    None => {
                        if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                        {
                            let _ = ws.close(None).await;
                        }
                    }
                }
            });
        }
    });
    port
}

fn accept_all(_: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    Ok(resp)
}

fn dialer(trust: &TrustConfig, egress: Egress) -> Dialer {
    Dialer::new(
        trust.client_config().expect("trust"),
        egress,
        DialTimeouts::default(),
        ws_config(64 * 1024),
    )
}

async fn dial(dialer: &Dialer, url: &str) -> Result<hc_client::RelayStream, DialError> {
    let url = Url::parse(url).expect("url");
    dialer
        .dial(DialRequest {
            url: &url,
            token: None,
            headers: &[],
            subprotocols: &[],
        })
        .await
}

#[tokio::test]
async fn pinned_fingerprint_is_accepted_and_a_wrong_one_refused() {
    timeout(LIMIT, async {
        let cert = test_cert();
        let port = ws_server(Some(cert.config.clone()), accept_all).await;
        let url = format!("wss://127.0.0.1:{port}/$hc/hyco");
        let pinned = TrustConfig {
            pins: vec![cert.fingerprint],
            ..TrustConfig::default()
        };
        dial(&dialer(&pinned, Egress::Direct), &url)
            .await
            .expect("pinned certificate accepted");
        let wrong = TrustConfig {
            pins: vec![Fingerprint([0x42; 32])],
            ..TrustConfig::default()
        };
        let err = dial(&dialer(&wrong, Egress::Direct), &url)
            .await
            .expect_err("wrong pin refused");
        assert!(matches!(err, DialError::Tls { .. }), "{err}");
        assert!(
            err.to_string().contains("matches no pinned fingerprint"),
            "{err}"
        );
        // Without a pin or CA file the self-signed relay is not trusted.
        let err = dial(&dialer(&TrustConfig::default(), Egress::Direct), &url)
            .await
            .expect_err("untrusted");
        assert!(matches!(err, DialError::Tls { .. }), "{err}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn ca_file_trust_verifies_chain_and_name() {
    timeout(LIMIT, async {
        let cert = test_cert();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("relay-ca.pem");
        std::fs::write(&ca, &cert.pem).expect("write pem");
        let port = ws_server(Some(cert.config.clone()), accept_all).await;
        let trust = TrustConfig {
            public_roots: false,
            ca_file: Some(ca),
            pins: Vec::new(),
        };
        let d = dialer(&trust, Egress::Direct);
        dial(&d, &format!("wss://localhost:{port}/$hc/hyco"))
            .await
            .expect("trusted by CA file");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn refusals_carry_status_and_description_and_requests_carry_token_and_offer() {
    timeout(LIMIT, async {
        let port = ws_server(None, |req: &Request, mut resp: Response| {
            let token = req.headers().get("ServiceBusAuthorization");
            if token.is_none_or(|t| t != "SharedAccessSignature good") {
                let mut refusal = ErrorResponse::new(Some("token rejected by test relay".into()));
                *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                return Err(refusal);
            }
            let offer = req
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert_eq!(offer, "dongle-relay.raw, dongle-relay.v1");
            assert_eq!(
                req.headers()
                    .get("X-Dongle-Relay-Site")
                    .map(|v| v.as_bytes()),
                Some(&b"branch-a"[..])
            );
            resp.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("dongle-relay.v1"),
            );
            Ok(resp)
        })
        .await;
        let d = dialer(&TrustConfig::default(), Egress::Direct);
        let url = Url::parse(&format!("ws://127.0.0.1:{port}/$hc/hyco")).expect("url");
        let headers = vec![("X-Dongle-Relay-Site".to_owned(), "branch-a".to_owned())];
        let offer = hc_client::subprotocol::SENDER_OFFER;
        let bad = Secret::new("SharedAccessSignature bad");
        let request = |token| DialRequest {
            url: &url,
            token: Some(token),
            headers: &headers,
            subprotocols: &offer,
        };
        let err = d.dial(request(&bad)).await.expect_err("refused");
        assert_eq!(err.status(), Some(401));
        assert_eq!(err.to_string(), "401 token rejected by test relay");
        let good = Secret::new("SharedAccessSignature good");
        let stream = d.dial(request(&good)).await.expect("accepted");
        assert_eq!(stream.subprotocol.as_deref(), Some("dongle-relay.v1"));
        // Nothing listens on a freshly closed port: a clear connect error.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let err = dial(&d, &format!("ws://127.0.0.1:{closed_port}/$hc/hyco"))
            .await
            .expect_err("connect refused");
        assert!(
            err.to_string().starts_with("cannot connect to 127.0.0.1:"),
            "{err}"
        );
    })
    .await
    .expect("timed out");
}

/// Copies bytes both ways between a proxied client and its target.
async fn splice(mut client: TcpStream, target: &str) {
    if let Ok(mut upstream) = TcpStream::connect(target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// A minimal SOCKS5 server (RFC 1928 CONNECT, optional RFC 1929 password) for one test.
async fn socks5_proxy(credentials: Option<(&'static str, &'static str)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 2];
                c.read_exact(&mut head).await.expect("greeting");
                let mut methods = vec![0u8; head[1] as usize];
                c.read_exact(&mut methods).await.expect("methods");
                if let Some((user, pass)) = credentials {
                    c.write_all(&[5, 2]).await.expect("method");
                    let mut v = [0u8; 2];
                    c.read_exact(&mut v).await.expect("auth");
                    let mut u = vec![0u8; v[1] as usize];
                    c.read_exact(&mut u).await.expect("user");
                    let mut pl = [0u8; 1];
                    c.read_exact(&mut pl).await.expect("plen");
                    let mut p = vec![0u8; pl[0] as usize];
                    c.read_exact(&mut p).await.expect("pass");
                    let ok = u == user.as_bytes() && p == pass.as_bytes();
                    c.write_all(&[1, if ok { 0 } else { 1 }])
                        .await
                        .expect("auth reply");
                    if !ok {
                        return;
                    }
                } else {
                    c.write_all(&[5, 0]).await.expect("method");
                }
                let mut req = [0u8; 4];
                c.read_exact(&mut req).await.expect("request");
                let host = match req[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        c.read_exact(&mut ip).await.expect("ipv4");
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    3 => {
                        let mut len = [0u8; 1];
                        c.read_exact(&mut len).await.expect("len");
                        let mut name = vec![0u8; len[0] as usize];
                        c.read_exact(&mut name).await.expect("name");
                        String::from_utf8(name).expect("utf8")
                    }
                    other => panic!("address type {other}"),
                };
                let port = c.read_u16().await.expect("port");
                c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
                    .await
                    .expect("reply");
                splice(c, &format!("{host}:{port}")).await;
            });
        }
    });
    addr
}

/// A minimal HTTP CONNECT proxy that wants `Proxy-Authorization: Basic dTpw` (u:p).
async fn connect_proxy() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    c.read_exact(&mut byte).await.expect("head");
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).expect("utf8");
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                    .expect("CONNECT line")
                    .to_owned();
                if !head
                    .to_ascii_lowercase()
                    .contains("proxy-authorization: basic dtpw")
                {
                    let _ = c
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .expect("200");
                splice(c, &target).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn socks5_egress_reaches_the_relay() {
    timeout(LIMIT, async {
        let port = ws_server(None, accept_all).await;
        let url = format!("ws://localhost:{port}/$hc/hyco");
        let open = socks5_proxy(None).await;
        let egress = Egress::Socks5 {
            addr: open,
            auth: None,
        };
        dial(&dialer(&TrustConfig::default(), egress), &url)
            .await
            .expect("via socks5");
        let guarded = socks5_proxy(Some(("u", "p"))).await;
        let auth = |pass: &str| {
            Some(ProxyAuth {
                user: "u".into(),
                password: Secret::new(pass),
            })
        };
        let egress = Egress::Socks5 {
            addr: guarded.clone(),
            auth: auth("p"),
        };
        dial(&dialer(&TrustConfig::default(), egress), &url)
            .await
            .expect("with password");
        let egress = Egress::Socks5 {
            addr: guarded,
            auth: auth("wrong"),
        };
        let err = dial(&dialer(&TrustConfig::default(), egress), &url)
            .await
            .expect_err("bad password");
        assert!(err.to_string().contains("could not open a tunnel"), "{err}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn http_connect_egress_reaches_the_relay_over_tls() {
    timeout(LIMIT, async {
        let cert = test_cert();
        let port = ws_server(Some(cert.config.clone()), accept_all).await;
        let url = format!("wss://127.0.0.1:{port}/$hc/hyco");
        let proxy = connect_proxy().await;
        let trust = TrustConfig {
            pins: vec![cert.fingerprint],
            ..TrustConfig::default()
        };
        let egress = Egress::HttpConnect {
            addr: proxy.clone(),
            auth: Some(ProxyAuth {
                user: "u".into(),
                password: Secret::new("p"),
            }),
        };
        dial(&dialer(&trust, egress), &url)
            .await
            .expect("via CONNECT");
        let egress = Egress::HttpConnect {
            addr: proxy,
            auth: None,
        };
        let err = dial(&dialer(&trust, egress), &url).await.expect_err("407");
        assert!(err.to_string().contains("407"), "{err}");
    })
    .await
    .expect("timed out");
}
