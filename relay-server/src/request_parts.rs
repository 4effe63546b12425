//! The parts of a relay request that the protocol actions read: the entity path under
//! `/$hc/`, the query (relay-owned `sb-hc-*` parameters versus the application's own, kept
//! as encoded), and headers turned into the JSON maps of `accept` and `request` messages.

use std::collections::BTreeMap;

use hc_protocol::SERVICE_BUS_AUTHORIZATION;
use hc_protocol::headers::header_fields;
use hc_protocol::uri::{HC_PATH_PREFIX, is_relay_param};
use http::HeaderMap;

/// The parsed query of a request: decoded pairs, plus the raw text for forwarding.
pub(crate) struct Query<'a> {
    raw: &'a str,
    pub pairs: Vec<(String, String)>,
}

impl<'a> Query<'a> {
    pub fn parse(raw: &'a str) -> Self {
        Self {
            raw,
            pairs: url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The application's own parameters, exactly as the sender encoded them.
    pub fn app_part(&self) -> String {
        self.raw
            .split('&')
            .filter(|part| !part.is_empty())
            .filter(|part| {
                let name = part.split('=').next().unwrap_or_default();
                let name = url::form_urlencoded::parse(name.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                !is_relay_param(&name)
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The entity path after `/$hc/`; clients that percent-encode `$` are tolerated.
pub(crate) fn hc_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(HC_PATH_PREFIX).or_else(|| {
        let prefix = path.get(..7)?;
        prefix.eq_ignore_ascii_case("/%24hc/").then(|| &path[7..])
    })?;
    Some(rest.trim_matches('/')).filter(|p| !p.is_empty())
}

/// `connectHeaders` of an accept message: the sender's headers without its token.
pub(crate) fn connect_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    header_fields(headers, |name| {
        name.eq_ignore_ascii_case(SERVICE_BUS_AUTHORIZATION)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_query_keeps_encoding_and_drops_relay_params() {
        let q = Query::parse("site=Branch%20A&sb-hc-action=connect&SB-HC-Token=x&flag&b=1%262");
        assert_eq!(q.app_part(), "site=Branch%20A&flag&b=1%262");
        assert_eq!(q.get("sb-hc-action"), Some("connect"));
        assert_eq!(q.get("sb-hc-token"), Some("x"));
    }

    #[test]
    fn hc_paths() {
        assert_eq!(hc_path("/$hc/license/x/"), Some("license/x"));
        assert_eq!(hc_path("/%24HC/license"), Some("license"));
        assert_eq!(hc_path("/$hc/"), None);
        assert_eq!(hc_path("/license"), None);
    }

    #[test]
    fn header_names_and_token_stripping() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-key", "k".parse().expect("v"));
        headers.insert("x-dongle-site", "a".parse().expect("v"));
        headers.insert("servicebusauthorization", "secret".parse().expect("v"));
        headers.append("x-multi", "1".parse().expect("v"));
        headers.append("x-multi", "2".parse().expect("v"));
        let out = connect_headers(&headers);
        assert_eq!(out.get("Sec-WebSocket-Key").map(String::as_str), Some("k"));
        assert_eq!(out.get("X-Dongle-Site").map(String::as_str), Some("a"));
        assert_eq!(out.get("X-Multi").map(String::as_str), Some("1, 2"));
        assert!(!out.values().any(|v| v == "secret"));
    }
}
