//! Control-channel messages: JSON objects with exactly one top-level key, sent in WebSocket
//! text frames on the listener's control channel.
//!
//! - `accept` (relay → listener): a sender is waiting; dial `address` to take the connection.
//! - `renewToken` (listener → relay): replace the channel's token before it expires.
//! - `request` (relay → listener, HTTP mode): an HTTP request, its body (if any) in the next
//!   binary message; without `method` it only names the rendezvous `address` to dial for it.
//! - `response` (listener → relay, HTTP mode): the answer to a `request`, its body (if any) in
//!   the next binary message, on the control channel or on the request's rendezvous.
//!
//! Unknown commands are reported as [`ControlMessage::Unrecognized`] so callers can log and
//! ignore them, as the Azure SDKs do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest unrecognised command text kept for logging (`MaxUnrecognizedJson` in .NET).
pub const MAX_UNRECOGNIZED_JSON: usize = 1024;

/// A control message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Not JSON, or a known command with the wrong shape.
    #[error("malformed control message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Not an object with exactly one key.
    #[error("control message must be an object with exactly one key")]
    NotEnvelope,
}

/// The sender's address as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    /// IP address.
    pub address: String,
    /// TCP port.
    pub port: u16,
}

/// `accept`: a sender is waiting for this listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accept {
    /// The rendezvous URI; dial it as-is (single use, valid about 30 s).
    pub address: String,
    /// Tracking id of the connection (`sb-hc-id` of the sender, or relay-generated).
    pub id: String,
    /// The sender's upgrade headers, including `Sec-WebSocket-Key` (Node clients require it)
    /// and any custom headers of the sender.
    #[serde(default)]
    pub connect_headers: BTreeMap<String, String>,
    /// Where the sender connected from (not in the public guide; sent by the service and
    /// exposed by the .NET SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<RemoteEndpoint>,
}

impl Accept {
    /// A connect header by name, case-insensitively (Node lower-cases header names).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.connect_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `renewToken`: the listener's fresh token for its control channel.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewToken {
    /// The new SAS token.
    pub token: String,
}

impl std::fmt::Debug for RenewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenewToken { token: *** }")
    }
}

/// `request`: an HTTP request for the listener (HTTP mode).
///
/// A *rendezvous-only* request carries just `address` and `id`: the listener dials `address`
/// and receives the full request there. Clients tell the two apart differently (.NET by a
/// missing `body`, hyco-https by a missing `method`), so a rendezvous-only request has
/// neither and a full one always has both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequest {
    /// The request's rendezvous URI (`sb-hc-action=request`), dialled as-is, for a
    /// rendezvous-only request or to answer with a large response.
    pub address: String,
    /// The request id, echoed as the response's `requestId`.
    pub id: String,
    /// Path and query of the request with every `sb-hc-*` parameter removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_target: Option<String>,
    /// The HTTP method; absent in a rendezvous-only request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Where the HTTP client connected from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<RemoteEndpoint>,
    /// The request headers, without hop-by-hop headers and the relay's token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    /// Whether a binary message with the body follows; absent in a rendezvous-only request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<bool>,
}

impl HttpRequest {
    /// Whether this only names the rendezvous where the full request waits.
    pub fn is_rendezvous_only(&self) -> bool {
        self.method.is_none()
    }
}

/// `response`: the listener's answer to an [`HttpRequest`] (HTTP mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpResponse {
    /// The `id` of the request answered.
    pub request_id: String,
    /// The HTTP status (a number; the guide's example shows a string, so both are read).
    #[serde(deserialize_with = "lenient::status")]
    pub status_code: u16,
    /// The reason phrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    /// Response headers (Node listeners may send numbers or arrays as values; they are read
    /// as text, arrays joined with `, `).
    #[serde(default, deserialize_with = "lenient::headers")]
    pub response_headers: BTreeMap<String, String>,
    /// Whether a binary message with the body follows.
    #[serde(default)]
    pub body: bool,
}

/// Readers for the loosely typed fields listeners send.
mod lenient {
    use std::collections::BTreeMap;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub fn status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| D::Error::custom("statusCode out of range")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| D::Error::custom("statusCode is not a number")),
            _ => Err(D::Error::custom("statusCode must be a number")),
        }
    }

    fn text(value: Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(items) => {
                let parts: Vec<String> = items.into_iter().filter_map(text).collect();
                Some(parts.join(", "))
            }
            Value::Null | Value::Object(_) => None,
        }
    }

    pub fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        let raw = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| text(v).map(|v| (k, v)))
            .collect())
    }
}

/// A control-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Relay → listener.
    Accept(Accept),
    /// Listener → relay.
    RenewToken(RenewToken),
    /// Relay → listener (HTTP mode).
    Request(HttpRequest),
    /// Listener → relay (HTTP mode).
    Response(HttpResponse),
    /// A command this implementation does not handle (for example .NET's `injectFault`); the
    /// text is truncated to [`MAX_UNRECOGNIZED_JSON`] bytes.
    Unrecognized {
        /// The top-level key.
        command: String,
        /// The (truncated) message text, for logging.
        text: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Known {
    Accept(Accept),
    RenewToken(RenewToken),
    Request(HttpRequest),
    Response(HttpResponse),
}

impl ControlMessage {
    /// Parses one text frame.
    ///
    /// # Errors
    /// [`ControlError`] when the text is not a one-key JSON object or a known command is
    /// malformed.
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let command = match value.as_object() {
            Some(obj) if obj.len() == 1 => obj.keys().next().cloned().unwrap_or_default(),
            _ => return Err(ControlError::NotEnvelope),
        };
        match command.as_str() {
            "accept" | "renewToken" | "request" | "response" => {
                Ok(match serde_json::from_value(value)? {
                    Known::Accept(a) => Self::Accept(a),
                    Known::RenewToken(r) => Self::RenewToken(r),
                    Known::Request(r) => Self::Request(r),
                    Known::Response(r) => Self::Response(r),
                })
            }
            _ => {
                let cut = (0..=MAX_UNRECOGNIZED_JSON.min(text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                Ok(Self::Unrecognized {
                    command,
                    text: text[..cut].to_owned(),
                })
            }
        }
    }

    /// Serialises the message for a text frame. `Unrecognized` serialises to its stored text.
    pub fn to_json(&self) -> String {
        let known = match self {
            Self::Accept(a) => Known::Accept(a.clone()),
            Self::RenewToken(r) => Known::RenewToken(r.clone()),
            Self::Request(r) => Known::Request(r.clone()),
            Self::Response(r) => Known::Response(r.clone()),
            Self::Unrecognized { text, .. } => return text.clone(),
        };
        // Serialising plain structs of strings and maps cannot fail.
        serde_json::to_string(&known).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guide_accept_example() {
        let text = r#"{"accept":{"address":"wss://dc-node.servicebus.windows.net:443/$hc/hyco?sb-hc-action=accept&sb-hc-id=4cb5","id":"4cb542c3-047a-4d40-a19f-bdc66441e736","connectHeaders":{"Host":"h","Sec-WebSocket-Key":"k","Sec-WebSocket-Version":"13"},"remoteEndpoint":{"address":"203.0.113.5","port":51234}}}"#;
        let ControlMessage::Accept(a) = ControlMessage::parse(text).expect("parse") else {
            panic!("not accept");
        };
        assert_eq!(a.id, "4cb542c3-047a-4d40-a19f-bdc66441e736");
        assert_eq!(a.header("sec-websocket-key"), Some("k"));
        assert_eq!(a.remote_endpoint.as_ref().map(|r| r.port), Some(51234));
        let again =
            ControlMessage::parse(&ControlMessage::Accept(a.clone()).to_json()).expect("re");
        assert_eq!(again, ControlMessage::Accept(a));
    }

    #[test]
    fn renew_token_round_trip_and_unknown_commands() {
        let msg = ControlMessage::RenewToken(RenewToken {
            token: "SharedAccessSignature x".into(),
        });
        let json = msg.to_json();
        assert_eq!(
            json,
            r#"{"renewToken":{"token":"SharedAccessSignature x"}}"#
        );
        assert_eq!(ControlMessage::parse(&json).expect("parse"), msg);
        let unknown = ControlMessage::parse(r#"{"injectFault":{"delay":"1"}}"#).expect("parse");
        assert!(
            matches!(unknown, ControlMessage::Unrecognized { ref command, .. } if command == "injectFault")
        );
        assert!(matches!(
            ControlMessage::parse("[]"),
            Err(ControlError::NotEnvelope)
        ));
        assert!(matches!(
            ControlMessage::parse(r#"{"a":1,"b":2}"#),
            Err(ControlError::NotEnvelope)
        ));
        assert!(matches!(
            ControlMessage::parse(r#"{"accept":{"id":1}}"#),
            Err(ControlError::Malformed(_))
        ));
        assert!(!format!("{msg:?}").contains("SharedAccessSignature"));
    }

    #[test]
    fn http_mode_messages() {
        // The guide's response example (status as a string) and a Node listener's headers.
        let text = r#"{"response":{"requestId":"42","statusCode":"200","responseHeaders":{"Content-Type":"text/plain","content-length":5,"set-cookie":["a=1","b=2"]},"body":true}}"#;
        let ControlMessage::Response(r) = ControlMessage::parse(text).expect("parse") else {
            panic!("not a response");
        };
        assert_eq!(
            (r.request_id.as_str(), r.status_code, r.body),
            ("42", 200, true)
        );
        assert_eq!(
            r.response_headers.get("content-length").map(String::as_str),
            Some("5")
        );
        assert_eq!(
            r.response_headers.get("set-cookie").map(String::as_str),
            Some("a=1, b=2")
        );
        let minimal = r#"{"response":{"requestId":"1","statusCode":204}}"#;
        assert!(
            matches!(ControlMessage::parse(minimal), Ok(ControlMessage::Response(r)) if !r.body)
        );
        // A rendezvous-only request has neither method nor body; a full one has both.
        let only = HttpRequest {
            address: "wss://r/$hc/x?sb-hc-action=request".into(),
            id: "7".into(),
            request_target: None,
            method: None,
            remote_endpoint: None,
            request_headers: BTreeMap::new(),
            body: None,
        };
        let json = ControlMessage::Request(only.clone()).to_json();
        assert_eq!(
            json,
            r#"{"request":{"address":"wss://r/$hc/x?sb-hc-action=request","id":"7"}}"#
        );
        let ControlMessage::Request(back) = ControlMessage::parse(&json).expect("parse") else {
            panic!("not a request");
        };
        assert!(back.is_rendezvous_only());
        assert_eq!(back, only);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ControlMessage::parse(&s);
        }
    }
}
