//! HTTP headers as the JSON maps of control messages (`connectHeaders`, `requestHeaders`,
//! `responseHeaders`), in both directions: names in their usual spelling, repeated values
//! joined with `, `, and invalid names or values dropped. The relay and the listener both
//! convert with these, so the two ends spell and join headers the same way.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one HTTP connection or its framing, never an end-to-end message
/// (RFC 9110 §7.6.1, plus the framing headers each side sets itself): neither the relay nor
/// the listener copies them between a control message and an HTTP connection.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (lower case) is one of [`HOP_BY_HOP`].
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// `headers` as a control-message map, leaving out the (lower-case) names `skip` picks.
pub fn header_fields(headers: &HeaderMap, skip: impl Fn(&str) -> bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in headers.keys() {
        if skip(name.as_str()) {
            continue;
        }
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            out.insert(display_name(name.as_str()), values.join(", "));
        }
    }
    out
}

/// A control-message map as headers, leaving out the (lower-case) names `skip` picks and
/// the names or values HTTP cannot carry (they are logged at debug level).
pub fn header_map(fields: &BTreeMap<String, String>, skip: impl Fn(&str) -> bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            tracing::debug!(%name, "header dropped (invalid name or value)");
            continue;
        };
        if !skip(name.as_str()) {
            out.append(name, value);
        }
    }
    out
}

/// hyper lower-cases header names; give them their usual spelling back (Node clients
/// lower-case them anyway, .NET compares case-insensitively).
fn display_name(lower: &str) -> String {
    const KNOWN: [&str; 5] = [
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "WWW-Authenticate",
    ];
    if let Some(known) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(lower)) {
        return (*known).to_owned();
    }
    lower
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_spell_join_and_skip() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-key", HeaderValue::from_static("k"));
        headers.append("x-multi", HeaderValue::from_static("1"));
        headers.append("x-multi", HeaderValue::from_static("2"));
        headers.insert("connection", HeaderValue::from_static("close"));
        let fields = header_fields(&headers, |n| n == "connection");
        assert_eq!(
            fields.get("Sec-WebSocket-Key").map(String::as_str),
            Some("k")
        );
        assert_eq!(fields.get("X-Multi").map(String::as_str), Some("1, 2"));
        assert_eq!(fields.len(), 2);
        let mut fields = fields;
        fields.insert("Bad Name".to_owned(), "x".to_owned());
        fields.insert("Host".to_owned(), "h".to_owned());
        let back = header_map(&fields, |n| n == "host");
        assert_eq!(back.len(), 2);
        assert_eq!(back["x-multi"], "1, 2");
    }
}
