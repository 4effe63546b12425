//! The server side of WebSocket opening handshakes over hyper: checking an upgrade request,
//! answering `101 Switching Protocols`, subprotocol headers (including a quirk of the Node
//! `hyco-ws` listener), and turning the upgraded connection into a tungstenite stream with
//! bounded buffers.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::config::Limits;
use crate::refusal::{Body, Refusal};

/// A WebSocket over an upgraded hyper connection.
pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Largest control-channel message we read: an HTTP-mode `response` body of up to 64 KiB
/// (the guide's limit for the control channel) with room to spare; `renewToken` is a few
/// hundred bytes.
const CONTROL_MAX_MESSAGE: usize = 80 << 10;

/// Read buffer of a control channel (see [`control_ws_config`]).
const CONTROL_READ_BUFFER: usize = 1 << 10;

/// Checks that `req` is a WebSocket upgrade (RFC 6455 §4.2.1) and returns its
/// `Sec-WebSocket-Key`.
pub(crate) fn upgrade_key<B>(req: &Request<B>) -> Result<String, Refusal> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if req.method() != http::Method::GET
        || !has_token(header::CONNECTION, "upgrade")
        || !has_token(header::UPGRADE, "websocket")
    {
        return Err(Refusal::bad_request(
            "a WebSocket upgrade (GET with Connection: Upgrade, Upgrade: websocket) is required",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Refusal::bad_request("Sec-WebSocket-Version must be 13"));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Refusal::bad_request("Sec-WebSocket-Key is missing"))
}

/// The `101 Switching Protocols` answer to an upgrade with `key`, naming `protocol`.
pub(crate) fn switching_protocols(key: &str, protocol: Option<&str>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(value) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    response
}

/// The subprotocols a client offers, in order.
pub(crate) fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The subprotocol a listener chose on its rendezvous dial-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChosenProtocol {
    pub name: String,
    /// Whether it came as a real `Sec-WebSocket-Protocol` header and so must be echoed in
    /// the listener's `101` (see [`chosen_protocol`] for the other way).
    pub echo_to_listener: bool,
}

/// The protocol a listener's accept dial-back names: one `Sec-WebSocket-Protocol` value.
///
/// `hyco-ws` 1.0.5 names its choice in a proper header, but passes its other handshake
/// headers to `ws` 1.1.x as an array of `"Name: value"` strings, which `ws` sends as headers
/// named `0`, `1`, … (seen in practice: `0: Sec-WebSocket-Extensions: permessage-deflate`).
/// A numbered header carrying `Sec-WebSocket-Protocol: p` (an application may add one via
/// hyco-ws' `headers` event) also counts as choosing `p`, but must not be echoed to that
/// listener: `ws` fails a handshake whose response names a protocol it did not request.
pub(crate) fn chosen_protocol(headers: &HeaderMap) -> Result<Option<ChosenProtocol>, Refusal> {
    let offered = offered_protocols(headers);
    match offered.as_slice() {
        [] => {}
        [one] => {
            return Ok(Some(ChosenProtocol {
                name: one.clone(),
                echo_to_listener: true,
            }));
        }
        _ => {
            return Err(Refusal::bad_request(
                "the accept request must name at most one Sec-WebSocket-Protocol",
            ));
        }
    }
    let quirk = headers
        .iter()
        .filter(|(name, _)| name.as_str().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|(_, value)| value.to_str().ok())
        .filter_map(|v| v.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && !v.contains(','));
    Ok(quirk.map(|name| ChosenProtocol {
        name,
        echo_to_listener: false,
    }))
}

/// tungstenite settings of bridged connections: bounded message, frame and write buffer.
pub(crate) fn data_ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer_size)
        .write_buffer_size(limits.write_buffer_size)
        .max_write_buffer_size(limits.effective_max_write_buffer())
        .max_message_size(Some(limits.max_message_size))
        .max_frame_size(Some(limits.max_frame_size))
}

/// tungstenite settings of control channels: small messages only.
///
/// The read buffer is allocated (and zero-filled) with the channel and held for its life, so
/// at 10,000 listeners every KiB of it is 10 MB of relay memory. 1 KiB holds a `renewToken`
/// (a few hundred bytes) in one read; a larger HTTP-mode `response` grows the buffer for its
/// frame and is read 1 KiB at a time, which is rare enough not to matter.
pub(crate) fn control_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(CONTROL_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * CONTROL_MAX_MESSAGE)
        .max_message_size(Some(CONTROL_MAX_MESSAGE))
        .max_frame_size(Some(CONTROL_MAX_MESSAGE))
}

/// Waits for hyper to hand over the upgraded connection and wraps it as a server WebSocket.
///
/// # Errors
/// The hyper error when the connection closed before the upgrade completed.
pub(crate) async fn upgraded(upgrade: OnUpgrade, config: WebSocketConfig) -> hyper::Result<Ws> {
    let io = upgrade.await?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(config)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request() -> http::request::Builder {
        Request::get("/$hc/x")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
    }

    #[test]
    fn upgrade_checks() {
        let ok = upgrade_request()
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("req");
        assert_eq!(upgrade_key(&ok).as_deref(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
        let no_key = upgrade_request().body(()).expect("req");
        assert_eq!(
            upgrade_key(&no_key).map_err(|r| r.status),
            Err(StatusCode::BAD_REQUEST)
        );
        let plain = Request::get("/").body(()).expect("req");
        assert!(upgrade_key(&plain).is_err());
        // RFC 6455's example key and answer.
        let response = switching_protocols("dGhlIHNhbXBsZSBub25jZQ==", Some("p1"));
        assert_eq!(
            response.headers().get(header::SEC_WEBSOCKET_ACCEPT),
            Some(&HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        );
        assert_eq!(
            response.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
            Some(&HeaderValue::from_static("p1"))
        );
    }

    #[test]
    fn protocols_offered_and_chosen() {
        let mut headers = HeaderMap::new();
        headers.append(header::SEC_WEBSOCKET_PROTOCOL, "a, b".parse().expect("v"));
        headers.append(header::SEC_WEBSOCKET_PROTOCOL, "c".parse().expect("v"));
        assert_eq!(offered_protocols(&headers), ["a", "b", "c"]);
        assert!(chosen_protocol(&headers).is_err());

        let mut one = HeaderMap::new();
        one.insert(header::SEC_WEBSOCKET_PROTOCOL, "b".parse().expect("v"));
        assert_eq!(
            chosen_protocol(&one).expect("ok"),
            Some(ChosenProtocol {
                name: "b".into(),
                echo_to_listener: true
            })
        );

        let mut quirk = HeaderMap::new();
        quirk.insert("0", "Sec-WebSocket-Protocol: dongle.v1".parse().expect("v"));
        quirk.insert("1", "Sec-WebSocket-Extensions: x".parse().expect("v"));
        assert_eq!(
            chosen_protocol(&quirk).expect("ok"),
            Some(ChosenProtocol {
                name: "dongle.v1".into(),
                echo_to_listener: false
            })
        );
        assert_eq!(chosen_protocol(&HeaderMap::new()).expect("ok"), None);
    }
}
