//! Who the local client is, as the local-proxy tells the listener.
//!
//! - One relay connection per TCP connection: two custom headers of the connect request, which
//!   the relay passes to the listener in `accept.connectHeaders` ([`CLIENT_HEADER`],
//!   [`SITE_HEADER`]).
//! - Multiplexed (`dongle-relay.mux.v1`): one pooled connection carries many clients, so each
//!   stream starts with a PROXY protocol v2 header instead: the client as source, the proxy's
//!   local address as destination, the site in TLV [`PP2_TYPE_SITE`]. It is the same header
//!   format the relay-listener writes to a target in `proxy-v2` mode ([`proxy_v2_header`]
//!   builds both), and [`read_proxy_v2`] parses it with `ppp`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use futures_util::io::{AsyncRead, AsyncReadExt as _};
use ppp::v2::{
    Addresses, Builder, Command, Header, IPv4, IPv6, PROTOCOL_PREFIX, Protocol, Version,
};

/// The local client's address as the local-proxy saw it, `ip:port` (`[v6]:port`).
pub const CLIENT_HEADER: &str = "X-Dongle-Relay-Client";
/// The configured name of the client site (e.g. `branch-a`).
pub const SITE_HEADER: &str = "X-Dongle-Relay-Site";

/// The TLV type carrying the client's site name (UTF-8, at most 64 bytes). `0xE0`–`0xEF` are
/// reserved for applications by the PROXY protocol specification.
pub const PP2_TYPE_SITE: u8 = 0xE0;

/// Fixed part of a PROXY v2 header: signature, version/command, family/protocol, length.
const FIXED: usize = 16;

/// Longest address-and-TLV part accepted when reading (ours are under 100 bytes).
const MAX_BODY: usize = 1024;

/// A PROXY v2 header (version 2, command PROXY) announcing `source` on a connection to
/// `destination`, with the site TLV when `site` is given. `source == None` (unknown client)
/// gives family and protocol `0x00` (UNSPEC) and no TLV, because parsers read everything after
/// an UNSPEC header as address bytes. Mixed families are sent as IPv6, IPv4-mapped.
///
/// # Errors
/// Only if the header could not be encoded (it is far below the format's 64 KiB limit).
pub fn proxy_v2_header(
    source: Option<SocketAddr>,
    destination: SocketAddr,
    site: Option<&str>,
) -> io::Result<Vec<u8>> {
    let proxy = Version::Two | Command::Proxy;
    let Some(source) = source else {
        return Builder::with_addresses(proxy, Protocol::Unspecified, Addresses::Unspecified)
            .build();
    };
    let builder = Builder::with_addresses(proxy, Protocol::Stream, addresses(source, destination));
    match site {
        Some(site) => builder.write_tlv(PP2_TYPE_SITE, site.as_bytes())?.build(),
        None => builder.build(),
    }
}

/// Source and destination in one family (IPv4-mapped IPv6 when they differ).
fn addresses(source: SocketAddr, destination: SocketAddr) -> Addresses {
    let v6 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => IPv4::new(s, d, source.port(), destination.port()).into(),
        (s, d) => IPv6::new(v6(s), v6(d), source.port(), destination.port()).into(),
    }
}

/// What a PROXY v2 header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyV2 {
    /// The source (client) address; `None` for UNSPEC or a LOCAL command.
    pub source: Option<SocketAddr>,
    /// The destination address, when given.
    pub destination: Option<SocketAddr>,
    /// The site TLV, when present and valid UTF-8 (not yet sanitised).
    pub site: Option<String>,
}

/// Reads exactly one PROXY v2 header from the start of `reader` and parses it with `ppp`.
///
/// # Errors
/// `InvalidData` when the bytes are not a PROXY v2 header (or an oversized one); the read
/// error, or `UnexpectedEof`, when the stream ends first.
pub async fn read_proxy_v2<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<ProxyV2> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut buf = vec![0u8; FIXED];
    reader.read_exact(&mut buf).await?;
    if !buf.starts_with(PROTOCOL_PREFIX) {
        return Err(invalid(
            "stream does not start with a PROXY v2 header".into(),
        ));
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if body > MAX_BODY {
        return Err(invalid(format!(
            "PROXY v2 header of {body} bytes is too long"
        )));
    }
    buf.resize(FIXED + body, 0);
    reader.read_exact(&mut buf[FIXED..]).await?;
    let header = Header::try_from(buf.as_slice())
        .map_err(|e| invalid(format!("bad PROXY v2 header: {e:?}")))?;
    let (source, destination) = match (header.command, header.addresses) {
        (Command::Proxy, Addresses::IPv4(a)) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        (Command::Proxy, Addresses::IPv6(a)) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        _ => (None, None),
    };
    let site = header
        .tlvs()
        .filter_map(Result::ok)
        .find(|t| t.kind == PP2_TYPE_SITE)
        .and_then(|t| String::from_utf8(t.value.to_vec()).ok());
    Ok(ProxyV2 {
        source,
        destination,
        site,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[tokio::test]
    async fn written_headers_read_back() {
        let bytes = proxy_v2_header(
            Some(addr("192.0.2.7:51234")),
            addr("127.0.0.1:12300"),
            Some("branch-a"),
        )
        .expect("header");
        let mut input = bytes.clone();
        input.extend_from_slice(b"payload");
        let mut reader = futures_util::io::Cursor::new(input);
        let parsed = read_proxy_v2(&mut reader).await.expect("parse");
        assert_eq!(parsed.source, Some(addr("192.0.2.7:51234")));
        assert_eq!(parsed.destination, Some(addr("127.0.0.1:12300")));
        assert_eq!(parsed.site.as_deref(), Some("branch-a"));
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.expect("rest");
        assert_eq!(rest, b"payload");

        let unknown = proxy_v2_header(None, addr("127.0.0.1:1"), Some("x")).expect("header");
        let parsed = read_proxy_v2(&mut futures_util::io::Cursor::new(unknown))
            .await
            .expect("parse");
        assert_eq!((parsed.source, parsed.site), (None, None));
    }

    #[tokio::test]
    async fn garbage_and_truncation_are_errors() {
        let mut plain =
            futures_util::io::Cursor::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
        let err = read_proxy_v2(&mut plain).await.expect_err("not a header");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut bytes =
            proxy_v2_header(Some(addr("10.0.0.1:1")), addr("10.0.0.2:2"), None).expect("header");
        bytes.truncate(20);
        let err = read_proxy_v2(&mut futures_util::io::Cursor::new(bytes))
            .await
            .expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
