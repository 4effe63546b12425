//! HTTP request mode on the listener's side: a `request` control message (an HTTP request a
//! client sent to `https://relay/{hc}[/more]`) is forwarded to a local HTTP endpoint — the
//! dongle host's admin endpoint (status page, JSON API, `/metrics`) — and its answer goes
//! back as a `response`, as the protocol guide describes:
//!
//! - A full request (method, target, headers, body inline) is answered on the control channel
//!   when the response body is at most [`MAX_INLINE_RESPONSE`] bytes, else on the request's
//!   rendezvous (`address`), which the listener dials for that one answer.
//! - A rendezvous-only request (just `address`) is fetched from its rendezvous and answered
//!   there.
//! - The hybrid connection's name is stripped from the path (`/license/api/status` reaches the
//!   endpoint as `/api/status`). The client's headers pass through, `Authorization: Bearer …`
//!   included, so the endpoint's own token check decides; the relay's token never arrives
//!   here (it travels in `ServiceBusAuthorization`, which the relay removes).
//! - `Host` names the relay, not the endpoint: an endpoint without a token answers only
//!   requests for a loopback host, so it refuses relayed requests instead of serving them to
//!   anyone who holds a Send token.
//!
//! Without a configured endpoint every request is answered `404` at once (instead of the
//! relay's `504` a minute later).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hc_client::RelayAccess;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::Frame;
use hc_client::tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use hc_protocol::headers::{header_fields, header_map, is_hop_by_hop};
use hc_protocol::{ControlMessage, HttpRequest, HttpResponse};
use http::{Method, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// Largest response body sent inline on the control channel (the relay's limit for a
/// control-channel message is a little above it).
pub const MAX_INLINE_RESPONSE: usize = 64 << 10;
/// Largest response body read from the endpoint (the relay's message limit is larger).
const MAX_RESPONSE: usize = 4 << 20;
/// How long the endpoint has to answer: well within the relay's 60 s response timeout.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request's rendezvous may take to open, deliver the request and take the answer.
const RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest frame of an answer body sent on a request's rendezvous.
const FRAGMENT: usize = 64 << 10;

/// Whether a header stays out of the request to the endpoint and out of the answer: the
/// hop-by-hop ones, and `Host` (set to the relay's name, see the module documentation).
fn not_forwarded(name: &str) -> bool {
    is_hop_by_hop(name) || name == "host"
}

/// One message for the control channel: a `response` text and its binary body, if any.
#[derive(Debug)]
pub struct Outgoing {
    /// The JSON text.
    pub text: String,
    /// The body, sent as the next binary message.
    pub body: Option<Bytes>,
}

/// Why the endpoint gave no answer (the client then gets a `502` saying so).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The request from the relay cannot be expressed as an HTTP request.
    #[error("the relayed request is malformed: {0}")]
    Malformed(String),
    /// Connecting to the endpoint or talking HTTP with it failed.
    #[error("the dongle host's HTTP endpoint {target} failed: {reason}")]
    Endpoint {
        /// The endpoint's address.
        target: String,
        /// Why.
        reason: String,
    },
    /// The endpoint did not answer in time.
    #[error("the dongle host's HTTP endpoint did not answer within {0:?}")]
    Timeout(Duration),
}

/// Where HTTP-mode requests go: the local endpoint and how paths and `Host` are rewritten.
#[derive(Debug, Clone)]
pub struct HttpForward {
    target: String,
    prefix: String,
    host: String,
}

impl HttpForward {
    /// Forwards to `target` (`host:port`, plain HTTP), stripping `/{entity_path}` from paths
    /// and naming `relay_host` in `Host`.
    pub fn new(target: &str, entity_path: &str, relay_host: &str) -> Self {
        Self {
            target: target.to_owned(),
            prefix: format!("/{}", entity_path.trim_matches('/')),
            host: relay_host.to_owned(),
        }
    }

    /// The endpoint's path and query for a relayed target (`/{hc}/api/status?x` →
    /// `/api/status?x`); the name matches case-insensitively, as the relay's routing does.
    pub fn local_target(&self, relayed: &str) -> String {
        let cut = self.prefix.len();
        let rest = match relayed.get(..cut) {
            Some(head)
                if head.eq_ignore_ascii_case(&self.prefix)
                    && matches!(relayed[cut..].chars().next(), None | Some('/' | '?')) =>
            {
                &relayed[cut..]
            }
            _ => relayed,
        };
        match rest.chars().next() {
            Some('/') => rest.to_owned(),
            Some(_) => format!("/{rest}"),
            None => "/".to_owned(),
        }
    }

    /// Sends `request` with `body` to the endpoint and reads its whole answer.
    ///
    /// # Errors
    /// [`ForwardError`] when no answer came.
    pub async fn call(
        &self,
        request: &HttpRequest,
        body: Bytes,
    ) -> Result<(HttpResponse, Bytes), ForwardError> {
        tokio::time::timeout(FORWARD_TIMEOUT, self.call_inner(request, body))
            .await
            .map_err(|_| ForwardError::Timeout(FORWARD_TIMEOUT))?
    }

    async fn call_inner(
        &self,
        request: &HttpRequest,
        body: Bytes,
    ) -> Result<(HttpResponse, Bytes), ForwardError> {
        let outbound = self.build(request, body)?;
        let failed = |reason: &dyn std::fmt::Display| ForwardError::Endpoint {
            target: self.target.clone(),
            reason: reason.to_string(),
        };
        let tcp = tokio::net::TcpStream::connect(&self.target)
            .await
            .map_err(|e| failed(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| failed(&e))?;
        let driver = tokio::spawn(connection);
        let answered = sender.send_request(outbound).await;
        let response = answered.map_err(|e| failed(&e))?;
        let (parts, incoming) = response.into_parts();
        let collected = Limited::new(incoming, MAX_RESPONSE).collect().await;
        driver.abort();
        let body = collected.map_err(|e| failed(&e))?.to_bytes();
        let headers = header_fields(&parts.headers, not_forwarded);
        let head = HttpResponse {
            request_id: request.id.clone(),
            status_code: parts.status.as_u16(),
            status_description: parts.status.canonical_reason().map(str::to_owned),
            response_headers: headers,
            body: !body.is_empty(),
        };
        Ok((head, body))
    }

    /// The HTTP request for the endpoint.
    fn build(
        &self,
        request: &HttpRequest,
        body: Bytes,
    ) -> Result<http::Request<Full<Bytes>>, ForwardError> {
        let malformed = |what: &dyn std::fmt::Display| ForwardError::Malformed(what.to_string());
        let method = request.method.as_deref().unwrap_or("GET");
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| malformed(&e))?;
        let target = self.local_target(request.request_target.as_deref().unwrap_or("/"));
        let mut built = http::Request::builder().method(method).uri(target);
        if let Some(headers) = built.headers_mut() {
            *headers = header_map(&request.request_headers, not_forwarded);
        }
        built = built.header(header::HOST, self.host.as_str());
        built.body(Full::new(body)).map_err(|e| malformed(&e))
    }
}

/// The answer to a request the endpoint could not answer (or that no endpoint serves).
fn refusal(id: &str, status: u16, text: &str) -> (HttpResponse, Bytes) {
    let mut headers = BTreeMap::new();
    headers.insert(
        "Content-Type".to_owned(),
        "text/plain; charset=utf-8".to_owned(),
    );
    let head = HttpResponse {
        request_id: id.to_owned(),
        status_code: status,
        status_description: None,
        response_headers: headers,
        body: true,
    };
    (head, Bytes::from(format!("{text}\n")))
}

/// The answer to `request`: the endpoint's, or a `502`/`404` saying why there is none.
async fn answer(
    forward: Option<&HttpForward>,
    request: &HttpRequest,
    body: Bytes,
) -> (HttpResponse, Bytes) {
    let Some(forward) = forward else {
        let text = "this relay-listener serves no HTTP requests (no http_target configured)";
        return refusal(&request.id, 404, text);
    };
    match forward.call(request, body).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(id = %request.id, "HTTP request not answered: {e}");
            refusal(&request.id, 502, &e.to_string())
        }
    }
}

/// What an HTTP-mode request needs from the listener.
#[derive(Clone)]
pub struct HttpContext {
    /// The endpoint, if one is configured.
    pub forward: Option<Arc<HttpForward>>,
    /// Relay access, for dialling request rendezvous.
    pub access: Arc<RelayAccess>,
    /// The control channel's outgoing queue, for inline answers.
    pub replies: mpsc::Sender<Outgoing>,
}

/// Handles one `request` (with its inline body, if any) to the end of its answer.
pub async fn handle(request: HttpRequest, body: Bytes, cx: HttpContext) {
    let id = request.id.clone();
    let result = if request.is_rendezvous_only() {
        let on_rendezvous = answer_on_rendezvous(&request.address, &cx);
        tokio::time::timeout(RENDEZVOUS_TIMEOUT, on_rendezvous)
            .await
            .unwrap_or_else(|_| Err("the request's rendezvous timed out".to_owned()))
    } else {
        let (head, body) = answer(cx.forward.as_deref(), &request, body).await;
        if body.len() <= MAX_INLINE_RESPONSE {
            let outgoing = Outgoing {
                text: ControlMessage::Response(head).to_json(),
                body: (!body.is_empty()).then_some(body),
            };
            cx.replies
                .send(outgoing)
                .await
                .map_err(|_| "the control channel closed before the answer".to_owned())
        } else {
            let on_rendezvous = send_on_rendezvous(&request.address, head, body, &cx);
            tokio::time::timeout(RENDEZVOUS_TIMEOUT, on_rendezvous)
                .await
                .unwrap_or_else(|_| Err("the request's rendezvous timed out".to_owned()))
        }
    };
    if let Err(e) = result {
        tracing::warn!(%id, "HTTP request: {e}");
    }
}

/// Dials the rendezvous of a rendezvous-only request, reads the request there and answers it.
async fn answer_on_rendezvous(address: &str, cx: &HttpContext) -> Result<(), String> {
    let stream = cx.access.accept(address, None).await;
    let mut ws = stream.map_err(|e| e.to_string())?.ws;
    let request = loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match ControlMessage::parse(text.as_str()) {
                Ok(ControlMessage::Request(request)) => break request,
                _ => tracing::debug!("request rendezvous: message other than a request ignored"),
            },
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                return Err("the request's rendezvous closed before the request".to_owned());
            }
            Some(Ok(_)) => {}
        }
    };
    let body = if request.body == Some(true) {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => break data,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return Err("the request's body did not arrive".to_owned()),
            }
        }
    } else {
        Bytes::new()
    };
    let (head, body) = answer(cx.forward.as_deref(), &request, body).await;
    respond(&mut ws, head, body).await
}

/// Dials a request's rendezvous to send an answer too large for the control channel.
async fn send_on_rendezvous(
    address: &str,
    head: HttpResponse,
    body: Bytes,
    cx: &HttpContext,
) -> Result<(), String> {
    let stream = cx.access.accept(address, None).await;
    let mut ws = stream.map_err(|e| e.to_string())?.ws;
    respond(&mut ws, head, body).await
}

/// Sends the answer on a request rendezvous and waits for the relay to close it.
async fn respond<S>(
    ws: &mut hc_client::tokio_tungstenite::WebSocketStream<S>,
    head: HttpResponse,
    body: Bytes,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sent = async {
        ws.feed(Message::text(ControlMessage::Response(head).to_json()))
            .await?;
        // One message in frames of at most FRAGMENT bytes, each sent on its own: the
        // WebSocket's write buffer is bounded (a few control-channel messages), so a body
        // fed whole fails once it is larger than that.
        let mut chunks = body.chunks(FRAGMENT).peekable();
        let mut opcode = OpCode::Data(Data::Binary);
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let frame = Frame::message(body.slice_ref(chunk), opcode, last);
            ws.send(Message::Frame(frame)).await?;
            opcode = OpCode::Data(Data::Continue);
        }
        ws.flush().await
    };
    sent.await.map_err(|e| e.to_string())?;
    // The relay closes the rendezvous once it has the answer; read on until it has.
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hybrid_connection_name_is_stripped_from_paths() {
        let f = HttpForward::new("127.0.0.1:1", "license", "relay.example");
        assert_eq!(f.local_target("/license/api/status"), "/api/status");
        assert_eq!(f.local_target("/License/metrics?x=1"), "/metrics?x=1");
        assert_eq!(f.local_target("/license"), "/");
        assert_eq!(f.local_target("/license?x"), "/?x");
        assert_eq!(f.local_target("/other/page"), "/other/page");
        assert_eq!(f.local_target("/licenses/x"), "/licenses/x");
        assert_eq!(f.local_target(""), "/");
    }

    #[test]
    fn host_names_the_relay_and_the_app_token_passes() {
        let f = HttpForward::new("127.0.0.1:1", "license", "relay.example");
        let request = HttpRequest {
            address: String::new(),
            id: "1".into(),
            request_target: Some("/license/api/status".into()),
            method: Some("GET".into()),
            remote_endpoint: None,
            request_headers: [
                ("Host".to_owned(), "127.0.0.1:12380".to_owned()),
                ("Authorization".to_owned(), "Bearer t".to_owned()),
                ("Connection".to_owned(), "close".to_owned()),
            ]
            .into(),
            body: Some(false),
        };
        let built = f.build(&request, Bytes::new()).expect("request");
        assert_eq!(built.uri(), "/api/status");
        assert_eq!(built.headers()[header::HOST], "relay.example");
        assert_eq!(built.headers()[header::AUTHORIZATION], "Bearer t");
        assert!(built.headers().get(header::CONNECTION).is_none());
        let bad = HttpRequest {
            method: Some("BAD METHOD".into()),
            ..request
        };
        assert!(matches!(
            f.build(&bad, Bytes::new()),
            Err(ForwardError::Malformed(_))
        ));
    }
}
