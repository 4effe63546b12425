//! HTTP request mode from both ends: a plain HTTPS client (hyper over the pinned TLS of
//! [`crate::client::connect_tls`]; one request per fresh connection to the relay), an HTTP
//! endpoint a relay-listener forwards requests to ([`echo_endpoint`]), and a listener that
//! takes `request` messages and never answers ([`silent_listener`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::StreamExt as _;
use hc_client::RelayAccess;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_protocol::ControlMessage;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use relay_server::tls::SelfSigned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Relay;

/// What [`echo_endpoint`] XORs every body byte with, so an answer proves it came from there.
pub const ECHO_XOR: u8 = 0x5a;

/// What came back.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The reason phrase, when the server sent one of its own.
    pub reason: Option<String>,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpReply {
    /// A header's value as text (`""` when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// Sends `method path` with `headers` and `body` to `addr` over TLS (certificate `cert`
/// pinned) and reads the whole answer.
pub async fn https_request(
    addr: SocketAddr,
    cert: &SelfSigned,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    let tls = crate::client::connect_tls(addr, cert).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = sender.send_request(request).await.expect("HTTP response");
    let status = response.status().as_u16();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    HttpReply {
        status,
        reason,
        headers,
        body,
    }
}

/// `data` XORed with [`ECHO_XOR`]: [`echo_endpoint`]'s answer to a body.
pub fn xored(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ ECHO_XOR).collect()
}

/// An HTTP endpoint on `127.0.0.1:0` for a relay-listener's `http_target`. It answers every
/// request with the status of its `x-status` header (default 200), the headers `x-method`,
/// `x-target` (path and query as it arrived), `x-app` (the request's `x-app`), `x-received`
/// (body length) and `x-authorization` (the request's `Authorization`, if any); its body is
/// the request body XORed with [`ECHO_XOR`], or `x-answer-bytes` bytes of 7 when asked.
pub async fn echo_endpoint() -> SocketAddr {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind endpoint");
    let addr = socket.local_addr().expect("endpoint addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = socket.accept().await {
            let service = hyper::service::service_fn(echo);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    addr
}

async fn echo(request: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let status = text("x-status").parse().unwrap_or(200);
    let answer = match text("x-answer-bytes").parse::<usize>() {
        Ok(n) => vec![7u8; n],
        Err(_) => xored(&body),
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let response = http::Response::builder()
        .status(status)
        .header("x-method", parts.method.as_str())
        .header("x-target", target)
        .header("x-app", text("x-app"))
        .header("x-received", body.len().to_string())
        .header("x-authorization", text("authorization"))
        .body(Full::new(Bytes::from(answer)))
        .expect("response");
    Ok(response)
}

/// A listener on `relay`'s hybrid connection that takes `request` messages and never answers
/// them (a hung application). Returns once its control channel is open; every request id
/// it got arrives on the receiver.
pub async fn silent_listener(relay: &Relay) -> (JoinHandle<()>, mpsc::UnboundedReceiver<String>) {
    let access = RelayAccess::new(relay.access(relay.listen_connection())).expect("access");
    let (control, _token) = access.listen("silent").await.expect("control channel");
    let (seen, requests) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut ws = control.ws;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message
                && let Ok(ControlMessage::Request(request)) = ControlMessage::parse(&text)
            {
                let _ = seen.send(request.id);
            }
        }
    });
    (task, requests)
}
