//! Control-channel messages: JSON objects with exactly one top-level key, sent in WebSocket
//! text frames on the listener's control channel.
//!
//! - `accept` (relay → listener): a sender is waiting; dial `address` to take the connection.
//! - `renewToken` (listener → relay): replace the channel's token before it expires.
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

/// A control-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Relay → listener.
    Accept(Accept),
    /// Listener → relay.
    RenewToken(RenewToken),
    /// A command this implementation does not handle (for example HTTP-mode `request`); the
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
            "accept" | "renewToken" => Ok(match serde_json::from_value(value)? {
                Known::Accept(a) => Self::Accept(a),
                Known::RenewToken(r) => Self::RenewToken(r),
            }),
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

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ControlMessage::parse(&s);
        }
    }
}
