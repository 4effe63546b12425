//! Test support: an in-process relay on `127.0.0.1:0` (plain or TLS with a generated
//! certificate) and raw tokio-tungstenite clients that play listener and sender.

#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hc_protocol::{Accept, ControlMessage, SasToken, Secret};
use relay_server::config::{HybridConnectionConfig, RelayConfig, Right, SasRule, TlsConfig};
use relay_server::{RelayError, RelayStats, SelfSigned};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// Every async test body runs under this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const HC: &str = "license";
pub const LISTEN_KEY: &str = "listen-key-0123456789";
pub const SEND_KEY: &str = "send-key-0123456789";
pub const MANAGE_KEY: &str = "manage-key-0123456789";

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Box<dyn Io>>;
pub type WsResult = Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error>;

/// What a client needs to reach the relay: its address and the certificate to trust.
#[derive(Clone)]
pub struct Client {
    pub addr: std::net::SocketAddr,
    pub root: Option<rustls_pki_types::CertificateDer<'static>>,
}

impl Client {
    pub fn scheme(&self) -> &'static str {
        if self.root.is_some() { "wss" } else { "ws" }
    }

    /// `ws(s)://localhost:{port}{path_and_query}` (TLS clients verify `localhost`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}://localhost:{}{path_and_query}",
            self.scheme(),
            self.addr.port()
        )
    }

    /// Opens a WebSocket to `url` with extra headers.
    pub async fn ws(&self, url: &str, headers: &[(&str, &str)]) -> WsResult {
        let mut request = url.into_client_request().expect("request");
        for (name, value) in headers {
            request.headers_mut().append(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let stream: Box<dyn Io> = match &self.root {
            None => Box::new(tcp),
            Some(root) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(root.clone()).expect("root");
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .expect("TLS handshake");
                Box::new(tls)
            }
        };
        tokio_tungstenite::client_async(request, stream).await
    }
}

pub struct TestRelay {
    pub client: Client,
    pub addr: std::net::SocketAddr,
    pub stats: RelayStats,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), RelayError>>,
    pub cert: Option<SelfSigned>,
}

pub fn rules() -> Vec<SasRule> {
    vec![
        SasRule::new("listen", LISTEN_KEY, &[Right::Listen]),
        SasRule::new("send", SEND_KEY, &[Right::Send]),
        SasRule::new("manage", MANAGE_KEY, &[Right::Manage]),
    ]
}

pub fn key_of(rule: &str) -> &'static str {
    match rule {
        "listen" => LISTEN_KEY,
        "send" => SEND_KEY,
        _ => MANAGE_KEY,
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

impl TestRelay {
    /// A relay hosting `license` (rules listen/send/manage), adjusted by `tweak`.
    pub async fn start(tls: bool, tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        let cert =
            tls.then(|| relay_server::tls::self_signed(&["localhost", "127.0.0.1"]).expect("cert"));
        let tls_config = cert
            .as_ref()
            .map_or(TlsConfig::Plain, SelfSigned::tls_config);
        let mut config =
            RelayConfig::new(tls_config, vec![HybridConnectionConfig::new(HC, rules())]);
        // Tests drop their clients before stopping; a short grace bounds stragglers.
        config.limits.shutdown_grace = Duration::from_millis(500);
        tweak(&mut config);
        let stats = config.stats();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(relay_server::run(config, listener, shutdown.clone()));
        stats.wait_serving().await;
        Self {
            client: Client {
                addr,
                root: cert.as_ref().map(|c| c.cert_der.clone()),
            },
            addr,
            stats,
            shutdown,
            task,
            cert,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        self.client.url(path_and_query)
    }

    pub fn token_for(&self, entity: &str, rule: &str, key: &str, ttl: i64) -> String {
        let expiry = (unix_now() as i64 + ttl).max(1) as u64;
        let resource = format!("http://localhost:{}/{entity}", self.addr.port());
        SasToken::sign(&resource, rule, &Secret::new(key), expiry)
            .expect("sign")
            .expose()
            .to_owned()
    }

    pub fn token(&self, rule: &str, ttl: i64) -> String {
        self.token_for(HC, rule, key_of(rule), ttl)
    }

    pub async fn ws(&self, url: &str, headers: &[(&str, &str)]) -> WsResult {
        self.client.ws(url, headers).await
    }

    /// Opens a listener control channel (token in the `ServiceBusAuthorization` header) and
    /// waits until the relay has registered it.
    pub async fn listen(&self) -> Ws {
        let before = self.stats.listener_count(HC);
        let token = self.token("listen", 3600);
        let (ws, _) = self
            .ws(
                &self.url("/$hc/license?sb-hc-action=listen"),
                &[("ServiceBusAuthorization", &token)],
            )
            .await
            .expect("listen");
        self.stats.wait_for_listeners(HC, before + 1).await;
        ws
    }

    /// Starts a sender in the background: its upgrade completes only after a rendezvous.
    pub fn sender(
        &self,
        path_and_query: &str,
        headers: Vec<(String, String)>,
    ) -> JoinHandle<WsResult> {
        let url = self.url(path_and_query);
        let client = self.client.clone();
        tokio::spawn(async move {
            let refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            client.ws(&url, &refs).await
        })
    }

    /// A sender on `license` with the send token in the query, after `extra_query`.
    pub fn sender_with_token(
        &self,
        extra_query: &str,
        headers: Vec<(String, String)>,
    ) -> JoinHandle<WsResult> {
        let token = urlencode(&self.token("send", 3600));
        self.sender(
            &format!("/$hc/license?{extra_query}sb-hc-action=connect&sb-hc-token={token}"),
            headers,
        )
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("relay task").expect("relay result");
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The next accept message on a control channel (pings skipped).
pub async fn next_accept(control: &mut Ws) -> Accept {
    loop {
        match control
            .next()
            .await
            .expect("control open")
            .expect("control ok")
        {
            Message::Text(text) => match ControlMessage::parse(text.as_str()).expect("json") {
                ControlMessage::Accept(accept) => return accept,
                other => panic!("unexpected control message {other:?}"),
            },
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next data or close message (pings skipped).
pub async fn next_message(ws: &mut Ws) -> Option<Message> {
    loop {
        match ws.next().await? {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(m) => return Some(m),
            Err(_) => return None,
        }
    }
}

/// The HTTP status and reason phrase of a refused handshake.
pub fn refused(result: WsResult) -> (u16, String) {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got a WebSocket"),
    }
}

pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}
