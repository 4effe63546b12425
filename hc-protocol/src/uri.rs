//! Relay endpoints and the `/$hc/{path}` URIs of the protocol, with their relay-owned
//! `sb-hc-*` query parameters.
//!
//! Shapes (see `docs/hc-protocol.md`):
//!
//! ```text
//! listen:  wss://{host}/$hc/{path}?sb-hc-action=listen&sb-hc-id={id}
//! connect: wss://{host}/$hc/{path}[/suffix]?[app-query&]sb-hc-action=connect&sb-hc-id={id}
//! accept:  the `address` of an accept message, used as-is
//! reject:  accept address + &sb-hc-statusCode={n}&sb-hc-statusDescription={text}
//! ```

use std::fmt;

use url::Url;

use crate::secret::Secret;

/// Query parameter: what the WebSocket is for.
pub const PARAM_ACTION: &str = "sb-hc-action";
/// Query parameter: client tracking id, surfaced to the listener as `accept.id`.
pub const PARAM_ID: &str = "sb-hc-id";
/// Query parameter: a URL-encoded SAS token (alternative to the `ServiceBusAuthorization` header).
pub const PARAM_TOKEN: &str = "sb-hc-token";
/// Query parameter of a reject: the HTTP status the sender should see.
pub const PARAM_STATUS_CODE: &str = "sb-hc-statusCode";
/// Query parameter of a reject: the status description the sender should see.
pub const PARAM_STATUS_DESCRIPTION: &str = "sb-hc-statusDescription";
/// Path prefix of every Hybrid Connections WebSocket.
pub const HC_PATH_PREFIX: &str = "/$hc/";

/// Why a URI could not be built or understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    /// Not an absolute URI, or a scheme the protocol does not use.
    #[error("{0:?} is not a relay endpoint (expected sb://, wss:// or ws:// with a host)")]
    BadEndpoint(String),
    /// The accept address is not a URI.
    #[error("accept address {0:?} is not a URI")]
    BadAddress(String),
    /// The entity path is empty.
    #[error("hybrid connection path is empty")]
    EmptyPath,
}

/// The WebSocket action a client performs, carried in `sb-hc-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A listener's control channel.
    Listen,
    /// A sender's connection.
    Connect,
    /// A listener's rendezvous for one accepted connection.
    Accept,
    /// A listener's rendezvous for an HTTP request (HTTP mode).
    Request,
}

impl Action {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::Connect => "connect",
            Self::Accept => "accept",
            Self::Request => "request",
        }
    }

    /// Parses the wire value (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Listen, Self::Connect, Self::Accept, Self::Request]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a relay is: host, port and whether the WebSocket runs over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayEndpoint {
    /// `true` for `wss://` (and `sb://`), `false` for plain `ws://`.
    pub tls: bool,
    /// Host name or IP address.
    pub host: String,
    /// TCP port (443 unless given).
    pub port: u16,
}

impl RelayEndpoint {
    /// Parses `sb://host[:port]/`, `wss://host[:port]/` or `ws://host[:port]/`.
    ///
    /// # Errors
    /// [`UriError::BadEndpoint`] for other schemes or a missing host.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let bad = || UriError::BadEndpoint(s.to_owned());
        let url = Url::parse(s.trim()).map_err(|_| bad())?;
        let (tls, default_port) = match url.scheme() {
            "sb" | "wss" | "https" => (true, 443),
            "ws" => (false, 80),
            _ => return Err(bad()),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        // IPv6 literals come back bracketed; keep them bracketed for URL building.
        Ok(Self {
            tls,
            host: host.to_owned(),
            port: url.port().unwrap_or(default_port),
        })
    }

    /// Whether the host is this machine (`localhost` or a loopback address): the only place a
    /// plain `ws://` relay is accepted by default, since the token would cross a network in
    /// clear.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The scheme of WebSocket URIs to this endpoint.
    pub fn ws_scheme(&self) -> &'static str {
        if self.tls { "wss" } else { "ws" }
    }

    /// `host:port`, for dialling.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Builds the URI for a listen or connect WebSocket on hybrid connection `path`.
    ///
    /// `app_query` holds the sender's own query parameters (forwarded to the listener);
    /// parameters starting with `sb-hc-` are dropped from it because the relay owns them.
    /// `token`, when given, goes into `sb-hc-token`; callers normally send it in the
    /// `ServiceBusAuthorization` header instead, which keeps it out of access logs.
    ///
    /// # Errors
    /// [`UriError::EmptyPath`] for an empty path.
    pub fn hc_url(
        &self,
        path: &str,
        action: Action,
        id: Option<&str>,
        app_query: &[(String, String)],
        token: Option<&Secret>,
    ) -> Result<Url, UriError> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Err(UriError::EmptyPath);
        }
        let base = format!(
            "{}://{}{HC_PATH_PREFIX}{path}",
            self.ws_scheme(),
            self.authority()
        );
        let mut url = Url::parse(&base).map_err(|_| UriError::BadEndpoint(base.clone()))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in app_query.iter().filter(|(k, _)| !is_relay_param(k)) {
                q.append_pair(k, v);
            }
            q.append_pair(PARAM_ACTION, action.as_str());
            if let Some(id) = id {
                q.append_pair(PARAM_ID, id);
            }
            if let Some(token) = token {
                q.append_pair(PARAM_TOKEN, token.expose());
            }
        }
        Ok(url)
    }
}

impl fmt::Display for RelayEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.ws_scheme(), self.authority())
    }
}

/// Whether a query parameter is owned by the relay (`sb-hc-` prefix, any case).
pub fn is_relay_param(name: &str) -> bool {
    name.len() >= 6 && name[..6].eq_ignore_ascii_case("sb-hc-")
}

/// The path after `/$hc/` of a request path, or `None` when it is not a Hybrid Connections path.
pub fn hc_path(request_path: &str) -> Option<&str> {
    request_path
        .strip_prefix(HC_PATH_PREFIX)
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
}

/// The URI a listener dials to reject a connection: the accept address plus the status the
/// sender should see. The relay answers it with HTTP 410 by design.
///
/// # Errors
/// [`UriError::BadAddress`] when the accept address is not a URI.
pub fn reject_url(accept_address: &str, status: u16, description: &str) -> Result<Url, UriError> {
    let mut url =
        Url::parse(accept_address).map_err(|_| UriError::BadAddress(accept_address.to_owned()))?;
    url.query_pairs_mut()
        .append_pair(PARAM_STATUS_CODE, &status.to_string())
        .append_pair(PARAM_STATUS_DESCRIPTION, description);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_schemes_and_default_ports() {
        let sb = RelayEndpoint::parse("sb://ns.servicebus.windows.net/").expect("sb");
        assert_eq!((sb.tls, sb.port), (true, 443));
        let ws = RelayEndpoint::parse("ws://127.0.0.1:8080").expect("ws");
        assert_eq!(
            (ws.tls, ws.host.as_str(), ws.port),
            (false, "127.0.0.1", 8080)
        );
        assert!(RelayEndpoint::parse("http://h/").is_err());
        assert!(RelayEndpoint::parse("sb:///").is_err());
    }

    #[test]
    fn listen_and_connect_urls() {
        let ep = RelayEndpoint::parse("sb://ns.example:9443/").expect("ep");
        let url = ep
            .hc_url("hyco", Action::Listen, Some("abc"), &[], None)
            .expect("url");
        assert_eq!(
            url.as_str(),
            "wss://ns.example:9443/$hc/hyco?sb-hc-action=listen&sb-hc-id=abc"
        );
        let app = vec![
            ("site".to_owned(), "Branch A".to_owned()),
            ("sb-hc-action".to_owned(), "listen".to_owned()),
        ];
        let url = ep
            .hc_url(
                "/hyco/",
                Action::Connect,
                None,
                &app,
                Some(&Secret::new("t&k")),
            )
            .expect("url");
        assert_eq!(
            url.as_str(),
            "wss://ns.example:9443/$hc/hyco?site=Branch+A&sb-hc-action=connect&sb-hc-token=t%26k"
        );
        assert_eq!(
            ep.hc_url("/", Action::Listen, None, &[], None),
            Err(UriError::EmptyPath)
        );
    }

    #[test]
    fn relay_params_and_paths() {
        assert!(is_relay_param("SB-HC-Token"));
        assert!(!is_relay_param("sb-h"));
        assert!(!is_relay_param("site"));
        assert_eq!(hc_path("/$hc/hyco/x"), Some("hyco/x"));
        assert_eq!(hc_path("/$hc/"), None);
        assert_eq!(hc_path("/other"), None);
        assert_eq!(Action::parse("LISTEN"), Some(Action::Listen));
        assert_eq!(Action::parse("nope"), None);
    }

    #[test]
    fn reject_url_appends_status() {
        let url = reject_url(
            "wss://r:1/$hc/hyco?sb-hc-action=accept&sb-hc-id=1",
            502,
            "target down",
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "wss://r:1/$hc/hyco?sb-hc-action=accept&sb-hc-id=1&sb-hc-statusCode=502&sb-hc-statusDescription=target+down"
        );
    }
}
