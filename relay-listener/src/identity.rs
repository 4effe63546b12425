//! Who is on the other end of a tunnelled connection, and how the target learns it.
//!
//! Every tunnelled connection reaches the target from the relay-listener's own socket, so
//! without help a license server sees all clients of all sites as one loopback address. The
//! local-proxy therefore sends its client's address (`X-Dongle-Relay-Client`) and its site name
//! (`X-Dongle-Relay-Site`) as custom headers of its connect request; the relay passes them on in
//! the `accept` message together with `remoteEndpoint`, the sender as the relay saw it.
//! [`RemoteClient::from_accept`] turns that into one identity: the header when present and
//! parseable (the sender authenticated with a Send key), else the relay-reported endpoint. A
//! malformed header is logged at debug and ignored; it never fails the connection.
//!
//! [`IdentityConfig`] chooses how the identity reaches the target ([`IdentityMode`]): not at all,
//! as a PROXY protocol v2 header ([`crate::proxy_v2`]), or as a distinct loopback source
//! address per client ([`crate::loopback`]). `docs/identity.md` explains the choice.
//!
//! On a multiplexed connection one sender carries many clients, so the headers say nothing
//! about a stream; the proxy starts each stream with a PROXY v2 header instead, and
//! [`RemoteClient::from_proxy_v2`] turns it into the same identity.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use hc_client::identity::{CLIENT_HEADER, ProxyV2, SITE_HEADER};
use hc_protocol::Accept;
pub use ipnet::Ipv4Net;
use serde::Deserialize;

/// Longest site name kept, in bytes; longer names are cut at a character boundary.
pub const MAX_SITE_LEN: usize = 64;

/// Longest `X-Dongle-Relay-Client` value considered (`[ffff:…:ffff%scope]:65535` fits).
const MAX_CLIENT_HEADER_LEN: usize = 64;

/// The default loopback range of [`IdentityMode::Loopback`]: 4 194 304 addresses, none of
/// them `127.0.0.1`, all local on Linux and Windows.
pub const DEFAULT_LOOPBACK_RANGE: &str = "127.64.0.0/10";

/// Where a [`RemoteClient`]'s address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientSource {
    /// The sender's `X-Dongle-Relay-Client` header: the local-proxy's own client.
    FromHeader,
    /// The relay-reported `remoteEndpoint`: the sender itself (a site's public address).
    FromRelayEndpoint,
    /// Neither was usable; the address is `0.0.0.0:0`.
    Unknown,
}

impl fmt::Display for ClientSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FromHeader => "header",
            Self::FromRelayEndpoint => "relay endpoint",
            Self::Unknown => "unknown",
        })
    }
}

/// The real client behind one tunnelled connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteClient {
    /// The client's address (IPv4-mapped IPv6 addresses are given as IPv4).
    pub addr: SocketAddr,
    /// The client's site: the sender's `X-Dongle-Relay-Site`, else the configured default.
    pub site: Option<String>,
    /// Where `addr` came from.
    pub source: ClientSource,
}

impl RemoteClient {
    /// Derives the client of `accept`. Never fails: an unusable header falls back to the
    /// relay-reported endpoint (then to [`ClientSource::Unknown`]), an unusable site to
    /// `default_site`.
    pub fn from_accept(accept: &Accept, default_site: Option<&str>) -> Self {
        let id = accept.id.as_str();
        let from_header = accept
            .header(CLIENT_HEADER)
            .and_then(|raw| match parse_client(raw) {
                Some(addr) => Some(addr),
                None => {
                    tracing::debug!(id, value = %printable(raw), "ignoring malformed {CLIENT_HEADER}");
                    None
                }
            });
        let from_relay = || {
            let endpoint = accept.remote_endpoint.as_ref()?;
            match endpoint.address.trim().parse::<IpAddr>() {
                Ok(ip) => Some(SocketAddr::new(ip.to_canonical(), endpoint.port)),
                Err(_) => {
                    tracing::debug!(id, value = %printable(&endpoint.address), "ignoring malformed remoteEndpoint");
                    None
                }
            }
        };
        let (addr, source) = match from_header {
            Some(addr) => (addr, ClientSource::FromHeader),
            None => match from_relay() {
                Some(addr) => (addr, ClientSource::FromRelayEndpoint),
                None => (
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                    ClientSource::Unknown,
                ),
            },
        };
        let site = accept
            .header(SITE_HEADER)
            .and_then(|raw| {
                let site = sanitize_site(raw);
                if site.is_none() {
                    tracing::debug!(id, value = %printable(raw), "ignoring unusable {SITE_HEADER}");
                }
                site
            })
            .or_else(|| default_site.map(str::to_owned));
        Self { addr, site, source }
    }

    /// Derives the client of a multiplexed stream from the PROXY v2 header the local-proxy
    /// wrote at its start: its source address, else unknown; its site TLV (sanitised like the
    /// header), else `default_site`.
    pub fn from_proxy_v2(header: &ProxyV2, default_site: Option<&str>) -> Self {
        let (addr, source) = match header.source {
            Some(a) => (
                SocketAddr::new(a.ip().to_canonical(), a.port()),
                ClientSource::FromHeader,
            ),
            None => (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                ClientSource::Unknown,
            ),
        };
        let site = header
            .site
            .as_deref()
            .and_then(sanitize_site)
            .or_else(|| default_site.map(str::to_owned));
        Self { addr, site, source }
    }

    /// The site for log lines (`-` when there is none).
    pub fn site_label(&self) -> &str {
        self.site.as_deref().unwrap_or("-")
    }
}

/// Parses an `X-Dongle-Relay-Client` value (`ip:port`, `[v6]:port`).
fn parse_client(raw: &str) -> Option<SocketAddr> {
    let raw = raw.trim();
    if raw.len() > MAX_CLIENT_HEADER_LEN {
        return None;
    }
    let addr = raw.parse::<SocketAddr>().ok()?;
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

/// A site name as kept: trimmed, at most [`MAX_SITE_LEN`] bytes (cut at a character
/// boundary). `None` for an empty name or one containing control characters, which would
/// corrupt log lines and surprise the license server.
pub fn sanitize_site(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return None;
    }
    let cut = (0..=MAX_SITE_LEN.min(trimmed.len()))
        .rev()
        .find(|&i| trimmed.is_char_boundary(i))
        .unwrap_or(0);
    Some(trimmed[..cut].trim_end().to_owned())
}

/// A header value for a debug line: at most 80 characters, control characters escaped.
fn printable(raw: &str) -> String {
    let mut out: String = raw.chars().take(80).flat_map(char::escape_debug).collect();
    if raw.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// How the target learns who the client is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// Plain TCP: the target sees the listener's address for every client. IP-based seat
    /// counting through the tunnel then counts all clients as one.
    #[default]
    None,
    /// A PROXY protocol v2 header precedes each connection's bytes (our license server).
    ProxyV2,
    /// Each client's connection comes from its own loopback address (vendor servers that count
    /// seats per IP and cannot read a PROXY header). Linux and Windows.
    Loopback,
}

impl IdentityMode {
    /// The names accepted by [`FromStr`] and the configuration file.
    pub const NAMES: [&'static str; 3] = ["none", "proxy-v2", "loopback"];
}

impl fmt::Display for IdentityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::ProxyV2 => "proxy-v2",
            Self::Loopback => "loopback",
        })
    }
}

impl FromStr for IdentityMode {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "proxy-v2" | "proxyv2" | "proxy" => Ok(Self::ProxyV2),
            "loopback" => Ok(Self::Loopback),
            _ => Err(IdentityError::Mode(s.to_owned())),
        }
    }
}

/// The identity settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not one of [`IdentityMode::NAMES`].
    #[error("unknown identity mode {0:?} (expected none, proxy-v2 or loopback)")]
    Mode(String),
    /// The default site is empty, too long or contains control characters.
    #[error(
        "default site {0:?} is unusable: it must be 1 to {MAX_SITE_LEN} bytes without control characters"
    )]
    Site(String),
    /// The loopback range is outside 127.0.0.0/8 or too small.
    #[error(
        "loopback range {0} is unusable: it must lie inside 127.0.0.0/8 and have a prefix of /30 or shorter"
    )]
    Range(Ipv4Net),
}

/// Client identity settings of a relay-listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// How the target learns the client (default [`IdentityMode::None`]).
    pub mode: IdentityMode,
    /// Site name for senders that send none (default: none).
    pub default_site: Option<String>,
    /// Source addresses of [`IdentityMode::Loopback`] (default [`DEFAULT_LOOPBACK_RANGE`]).
    pub loopback_range: Ipv4Net,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            mode: IdentityMode::None,
            default_site: None,
            loopback_range: default_loopback_range(),
        }
    }
}

impl IdentityConfig {
    /// Checks the default site and the loopback range.
    ///
    /// # Errors
    /// [`IdentityError`] naming the unusable value.
    pub fn validate(&self) -> Result<(), IdentityError> {
        if let Some(site) = &self.default_site
            && sanitize_site(site).as_deref() != Some(site.as_str())
        {
            return Err(IdentityError::Site(site.clone()));
        }
        crate::loopback::SourceRange::new(self.loopback_range)?;
        Ok(())
    }
}

/// `127.64.0.0/10`.
pub fn default_loopback_range() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(127, 64, 0, 0), 10).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hc_protocol::RemoteEndpoint;

    use super::*;

    fn accept(headers: &[(&str, &str)], endpoint: Option<(&str, u16)>) -> Accept {
        Accept {
            address: "wss://relay.test/$hc/license?sb-hc-action=accept&sb-hc-id=1".into(),
            id: "1".into(),
            connect_headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            remote_endpoint: endpoint.map(|(address, port)| RemoteEndpoint {
                address: address.into(),
                port,
            }),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn header_wins_over_the_relay_endpoint() {
        let a = accept(
            &[
                ("X-Dongle-Relay-Client", "192.0.2.7:51234"),
                ("X-Dongle-Relay-Site", "branch-a"),
            ],
            Some(("203.0.113.5", 40000)),
        );
        let c = RemoteClient::from_accept(&a, Some("hq"));
        assert_eq!(c.addr, addr("192.0.2.7:51234"));
        assert_eq!(c.source, ClientSource::FromHeader);
        assert_eq!(c.site.as_deref(), Some("branch-a"));
    }

    #[test]
    fn missing_header_falls_back_to_the_relay_endpoint_and_default_site() {
        let a = accept(&[], Some(("203.0.113.5", 40000)));
        let c = RemoteClient::from_accept(&a, Some("hq"));
        assert_eq!(c.addr, addr("203.0.113.5:40000"));
        assert_eq!(c.source, ClientSource::FromRelayEndpoint);
        assert_eq!(c.site.as_deref(), Some("hq"));
        assert_eq!(RemoteClient::from_accept(&a, None).site, None);
    }

    #[test]
    fn header_names_are_case_insensitive_and_mapped_addresses_are_ipv4() {
        let a = accept(
            &[("x-dongle-relay-client", "[::ffff:10.1.2.3]:7")],
            Some(("::ffff:203.0.113.5", 1)),
        );
        let c = RemoteClient::from_accept(&a, None);
        assert_eq!(c.addr, addr("10.1.2.3:7"));
        let a = accept(&[], Some(("::ffff:203.0.113.5", 1)));
        assert_eq!(
            RemoteClient::from_accept(&a, None).addr,
            addr("203.0.113.5:1")
        );
        let a = accept(&[("X-Dongle-Relay-Client", "[2001:db8::7]:443")], None);
        assert_eq!(
            RemoteClient::from_accept(&a, None).addr,
            addr("[2001:db8::7]:443")
        );
    }

    #[test]
    fn malformed_and_oversized_headers_fall_back() {
        let long = "9".repeat(10_000);
        for bad in [
            "",
            "not an address",
            "192.0.2.7",
            "999.0.0.1:80",
            "192.0.2.7:99999",
            "[::1]",
            long.as_str(),
        ] {
            let a = accept(
                &[
                    ("X-Dongle-Relay-Client", bad),
                    ("X-Dongle-Relay-Site", "\u{7}"),
                ],
                Some(("203.0.113.5", 40000)),
            );
            let c = RemoteClient::from_accept(&a, Some("hq"));
            assert_eq!(c.source, ClientSource::FromRelayEndpoint, "{bad:?}");
            assert_eq!(c.addr, addr("203.0.113.5:40000"));
            assert_eq!(c.site.as_deref(), Some("hq"));
        }
        // Nothing usable at all: unknown, never a failure.
        let a = accept(
            &[("X-Dongle-Relay-Client", "garbage")],
            Some(("not-an-ip", 1)),
        );
        let c = RemoteClient::from_accept(&a, None);
        assert_eq!(c.source, ClientSource::Unknown);
        assert_eq!(c.addr, addr("0.0.0.0:0"));
    }

    #[test]
    fn sites_are_trimmed_bounded_and_printable() {
        assert_eq!(sanitize_site("  branch-a "), Some("branch-a".into()));
        assert_eq!(sanitize_site("Zürich Süd"), Some("Zürich Süd".into()));
        assert_eq!(sanitize_site(""), None);
        assert_eq!(sanitize_site("   "), None);
        assert_eq!(sanitize_site("a\tb"), None);
        assert_eq!(sanitize_site("a\nb"), None);
        let long = sanitize_site(&"x".repeat(5000)).expect("cut");
        assert_eq!(long.len(), MAX_SITE_LEN);
        // Multi-byte characters are never split.
        let cut = sanitize_site(&"ü".repeat(100)).expect("cut");
        assert!(cut.len() <= MAX_SITE_LEN && cut.chars().all(|c| c == 'ü'));
        assert_eq!(printable("a\u{1b}b"), "a\\u{1b}b");
    }

    #[test]
    fn modes_parse_and_config_validates() {
        assert_eq!("none".parse::<IdentityMode>(), Ok(IdentityMode::None));
        assert_eq!(
            "PROXY-V2".parse::<IdentityMode>(),
            Ok(IdentityMode::ProxyV2)
        );
        assert_eq!(
            "loopback".parse::<IdentityMode>(),
            Ok(IdentityMode::Loopback)
        );
        assert!("v3".parse::<IdentityMode>().is_err());
        for name in IdentityMode::NAMES {
            let mode: IdentityMode = name.parse().expect("name");
            assert_eq!(mode.to_string(), name);
        }
        let ok = IdentityConfig::default();
        assert_eq!(ok.loopback_range.to_string(), DEFAULT_LOOPBACK_RANGE);
        assert_eq!(ok.validate(), Ok(()));
        let bad_site = IdentityConfig {
            default_site: Some("x".repeat(65)),
            ..IdentityConfig::default()
        };
        assert!(matches!(bad_site.validate(), Err(IdentityError::Site(_))));
        let bad_range = IdentityConfig {
            loopback_range: "10.0.0.0/8".parse().expect("net"),
            ..IdentityConfig::default()
        };
        assert!(matches!(bad_range.validate(), Err(IdentityError::Range(_))));
    }
}
