//! HTTP request mode: a plain HTTP request to `https://relay/{hc}[/more]` becomes a `request`
//! message on a listener's control channel, and the listener's `response` goes back to the
//! HTTP client — as Azure Relay does for `hyco-https`, the .NET `RequestHandler` and Azure
//! Relay Bridge's HTTP mode.
//!
//! - Authorization: a Send token in `ServiceBusAuthorization`, the `sb-hc-token` parameter, or
//!   `Authorization` (taken only when it holds a `SharedAccessSignature …`, so an application's own
//!   `Authorization: Bearer …` flows through to the listener).
//! - The listener gets method, target (path and query without `sb-hc-*`), headers (without
//!   hop-by-hop headers and the relay's token; `Via` names the relay) and, when the request
//!   is small (body ≤ 64 KiB, headers ≤ 32 KiB), the body inline as the next binary message.
//!   Larger requests send only the rendezvous `address`; the listener dials it and receives
//!   the request there.
//! - The listener answers on its control channel or, for large responses, on the request's
//!   rendezvous (`sb-hc-action=request`), which the relay closes after the response.
//! - Limits and statuses: bodies up to `max_message_bytes` (else `413`); no listener `502`;
//!   no response within `limits.http_response_timeout` (the guide's 60 s) `504`; the listener gone before answering `502`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hc_protocol::SERVICE_BUS_AUTHORIZATION;
use hc_protocol::headers::{header_fields, header_map, is_hop_by_hop};
use hc_protocol::sas::TOKEN_PREFIX;
use hc_protocol::uri::{Action, HC_PATH_PREFIX, PARAM_ACTION, PARAM_ID, PARAM_TOKEN};
use hc_protocol::{ControlMessage, HttpRequest, RemoteEndpoint};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;

use crate::bridge::CLOSE_GRACE;
use crate::handshake::{self, Ws, switching_protocols, upgrade_key};
use crate::http_exchange::{ListenerReply, Rendezvous};
use crate::hub::{ListenerHandle, Outbound};
use crate::refusal::{Body, Refusal};
use crate::router::{Target, Unanswered, hand_over};

/// Largest body sent inline on the control channel.
const MAX_INLINE_BODY: usize = 64 << 10;
/// Largest header metadata sent inline on the control channel.
const MAX_INLINE_HEADERS: usize = 32 << 10;

/// Request headers that never reach the listener besides the hop-by-hop ones: the client's
/// `Host` (the relay's own) and the relay's token header.
const REQUEST_RELAY_ONLY: [&str; 2] = ["host", "servicebusauthorization"];

/// The Send token of an HTTP request, and whether it came in `Authorization` (which is then
/// the relay's and is not forwarded).
fn http_token<'a>(
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
) -> (Option<&'a str>, bool) {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = text(SERVICE_BUS_AUTHORIZATION) {
        return (Some(token), false);
    }
    if let Some((_, token)) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(PARAM_TOKEN))
    {
        return (Some(token.as_str()), false);
    }
    match text(header::AUTHORIZATION.as_str()) {
        Some(token) if token.trim_start().starts_with(TOKEN_PREFIX) => (Some(token), true),
        _ => (None, false),
    }
}

/// Serves one HTTP request for hybrid connection `at.hc`; `path` is the request's path.
pub(crate) async fn serve(
    at: &Target<'_>,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let Target {
        relay,
        conn,
        hc,
        query,
    } = *at;
    let (token, in_authorization) = http_token(req.headers(), &query.pairs);
    at.authorize_send(token, req.headers())?;
    if !hc.has_listeners() {
        return Err(no_listener(&hc.name));
    }
    let (parts, body) = req.into_parts();
    let timeout = relay.limits.http_response_timeout;
    let body = read_body(body, relay.limits.max_message_size, timeout).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let full = describe(at, path, &parts, in_authorization, &id, !body.is_empty());
    let inline = body.len() <= MAX_INLINE_BODY
        && full
            .request_headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            <= MAX_INLINE_HEADERS;
    let (reply, _guard) = relay.hub.exchanges.open(&id, hc);
    let exchanges = relay.hub.exchanges.clone();
    let query_text = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(PARAM_ACTION, Action::Request.as_str())
        .append_pair(PARAM_ID, &id)
        .finish();
    let message = |listener: &ListenerHandle| {
        let mut request = full.clone();
        request.address = format!(
            "{}{HC_PATH_PREFIX}{}?{query_text}",
            listener.base_url, hc.name
        );
        let complete = Outbound {
            text: ControlMessage::Request(request.clone()).to_json(),
            body: (!body.is_empty()).then(|| body.clone()),
        };
        if inline {
            exchanges.assign(&id, listener.id, None);
            return complete;
        }
        exchanges.assign(&id, listener.id, Some(complete));
        let only = HttpRequest {
            address: request.address,
            id: id.clone(),
            request_target: None,
            method: None,
            remote_endpoint: None,
            request_headers: Default::default(),
            body: None,
        };
        Outbound::from(ControlMessage::Request(only).to_json())
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let unanswered = Unanswered {
        no_listener: no_listener(&hc.name),
        timed_out: Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "GatewayTimeout: the listener did not respond within {:?}",
                timeout
            ),
        ),
    };
    tracing::debug!(hc = %hc.name, %id, peer = %conn.peer, inline, "HTTP request");
    match hand_over(relay, hc, message, reply, deadline, unanswered).await? {
        Ok(reply) => into_response(reply),
        Err(_) => Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "the listener went away before it responded",
        )),
    }
}

/// The `request` control message for a request (its address is the listener's, filled in
/// per listener): the target (the path and the application's part of the query), the method,
/// the sender's address, and the headers less hop-by-hop and relay-only ones (and less
/// `Authorization` when it carried the relay token), with this relay added to `Via`.
fn describe(
    at: &Target<'_>,
    path: &str,
    parts: &http::request::Parts,
    in_authorization: bool,
    id: &str,
    has_body: bool,
) -> HttpRequest {
    let mut headers = header_fields(&parts.headers, |name| {
        is_hop_by_hop(name)
            || REQUEST_RELAY_ONLY.contains(&name)
            || (in_authorization && name == header::AUTHORIZATION.as_str())
    });
    let via = format!("1.1 {}", at.relay.system_name(at.conn));
    headers
        .entry("Via".to_owned())
        .and_modify(|v| *v = format!("{v}, {via}"))
        .or_insert(via);
    let app_query = at.query.app_part();
    let target = if app_query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{app_query}")
    };
    HttpRequest {
        address: String::new(),
        id: id.to_owned(),
        request_target: Some(target),
        method: Some(parts.method.to_string()),
        remote_endpoint: Some(RemoteEndpoint {
            address: at.conn.peer.ip().to_canonical().to_string(),
            port: at.conn.peer.port(),
        }),
        request_headers: headers,
        body: Some(has_body),
    }
}

fn no_listener(hc: &str) -> Refusal {
    Refusal::new(
        StatusCode::BAD_GATEWAY,
        format!("EndpointNotFound: no listener is connected to hybrid connection '{hc}'"),
    )
}

/// Reads the whole request body, up to `limit` bytes and within the response timeout.
async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, Refusal> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds this relay's limit of {limit} bytes"),
        )),
        Ok(Err(_)) => Err(Refusal::bad_request("the request body could not be read")),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
    }
}

/// The HTTP response for the client from the listener's `response`.
fn into_response(reply: ListenerReply) -> Result<Response<Body>, Refusal> {
    let ListenerReply { head, body } = reply;
    let status = StatusCode::from_u16(head.status_code)
        .ok()
        .filter(|s| !s.is_informational())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the listener answered with an invalid status {}",
                    head.status_code
                ),
            )
        })?;
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = header_map(&head.response_headers, is_hop_by_hop);
    if let Some(reason) = head
        .status_description
        .as_deref()
        .filter(|d| !d.is_empty() && Some(*d) != status.canonical_reason())
        .and_then(|d| ReasonPhrase::try_from(d.as_bytes().to_vec()).ok())
    {
        response.extensions_mut().insert(reason);
    }
    Ok(response)
}

/// A listener dials a request's rendezvous (`sb-hc-action=request`): the relay sends it the
/// request if it was held back, then reads its response there.
pub(crate) fn rendezvous(
    at: &Target<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let Target {
        relay,
        conn,
        hc,
        query,
    } = *at;
    let key = upgrade_key(&req)?;
    let invalid =
        || Refusal::forbidden("the request address is not valid, was already used, or has expired");
    let id = query.get(PARAM_ID).ok_or_else(invalid)?;
    let taken = relay
        .hub
        .exchanges
        .take_rendezvous(id, hc)
        .ok_or_else(invalid)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let config = handshake::data_ws_config(&relay.limits);
    let slot = conn.slot.clone();
    let timeout = relay.limits.http_response_timeout;
    let span = tracing::debug_span!("http-rendezvous", hc = %hc.name, %id, peer = %conn.peer);
    relay.tasks.spawn(
        async move {
            let serve = async move {
                let Ok(ws) = handshake::upgraded(upgrade, config).await else {
                    return tracing::debug!("upgrade did not complete");
                };
                exchange_on(ws, taken).await;
            };
            if tokio::time::timeout(timeout, serve).await.is_err() {
                tracing::debug!("no response on the rendezvous in time");
            }
            drop(slot);
        }
        .instrument(span),
    );
    Ok(switching_protocols(&key, None))
}

/// Sends the held-back request (if any) on the rendezvous, reads the response and its body,
/// hands them over and closes the rendezvous.
async fn exchange_on(mut ws: Ws, Rendezvous { deferred, reply }: Rendezvous) {
    if let Some(request) = deferred {
        let sent = async {
            ws.feed(Message::text(request.text)).await?;
            if let Some(body) = request.body {
                ws.feed(Message::binary(body)).await?;
            }
            ws.flush().await
        };
        if sent.await.is_err() {
            return;
        }
    }
    let head = loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match ControlMessage::parse(text.as_str()) {
                Ok(ControlMessage::Response(head)) => break head,
                _ => tracing::debug!("rendezvous: message other than a response ignored"),
            },
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    };
    let body = if head.body {
        read_binary(&mut ws).await
    } else {
        Bytes::new()
    };
    let _ = reply.send(ListenerReply { head, body });
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        ws.close(Some(frame)).await?;
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}

/// The next binary message (the body); empty when something else comes first.
async fn read_binary(ws: &mut Ws) -> Bytes {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => return data,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            _ => return Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use hc_protocol::HttpResponse;

    use super::*;

    #[test]
    fn tokens_from_header_query_or_sas_authorization_only() {
        let sas = "SharedAccessSignature sr=http%3A%2F%2Fh%2Fhc&sig=x&se=1&skn=send";
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer app-token".parse().expect("v"));
        assert_eq!(http_token(&headers, &[]), (None, false));
        let query = vec![("sb-hc-token".to_owned(), sas.to_owned())];
        assert_eq!(http_token(&headers, &query), (Some(sas), false));
        headers.insert("authorization", sas.parse().expect("v"));
        assert_eq!(http_token(&headers, &[]), (Some(sas), true));
        headers.insert("servicebusauthorization", "t".parse().expect("v"));
        assert_eq!(http_token(&headers, &[]), (Some("t"), false));
    }

    #[test]
    fn response_headers_status_and_reason() {
        let head = HttpResponse {
            request_id: "1".into(),
            status_code: 201,
            status_description: Some("Made".into()),
            response_headers: [
                ("Content-Type".to_owned(), "text/plain".to_owned()),
                ("Transfer-Encoding".to_owned(), "chunked".to_owned()),
                ("Bad Name".to_owned(), "x".to_owned()),
            ]
            .into(),
            body: true,
        };
        let response = into_response(ListenerReply {
            head: head.clone(),
            body: Bytes::from_static(b"hi"),
        })
        .expect("response");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers().len(), 1);
        assert_eq!(
            response
                .extensions()
                .get::<ReasonPhrase>()
                .map(|r| r.as_bytes()),
            Some(&b"Made"[..])
        );
        let informational = HttpResponse {
            status_code: 101,
            ..head
        };
        let refused = into_response(ListenerReply {
            head: informational,
            body: Bytes::new(),
        })
        .expect_err("101");
        assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    }
}
