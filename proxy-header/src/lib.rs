//! The PROXY protocol v2 header as dongle-relay uses it, byte-level only (no I/O): the
//! local-proxy writes one in front of each multiplexed stream and the relay-listener one in
//! front of each target connection in `proxy-v2` mode; the relay-listener reads the first kind
//! and the license server the second. Encoding and decoding are the `ppp` crate's; this crate
//! owns what both sides must agree on: the site TLV ([`PP2_TYPE_SITE`]), how the length is
//! taken from the fixed part and bounded ([`header_len`]), how a complete header becomes
//! addresses and a site ([`parse`]), and how one is built ([`build`]).
//!
//! Each reader keeps its own I/O because their transports and policies differ: the license
//! server peeks a TCP stream (a legacy frame must lose no byte) and refuses untrusted peers
//! after the signature; the listener reads a multiplexed stream that always starts with one.

use std::net::{IpAddr, SocketAddr};

use ppp::v2::{Addresses, Builder, Command, Header, IPv4, IPv6, Protocol, Version};

pub use ppp::v2::PROTOCOL_PREFIX;

/// The TLV type carrying the client's site name (UTF-8), in the range `0xE0`–`0xEF` the PROXY
/// protocol specification leaves to applications.
pub const PP2_TYPE_SITE: u8 = 0xE0;

/// Signature (12) + version/command (1) + family/protocol (1) + length (2).
pub const FIXED_LEN: usize = 16;

/// The longest header accepted (fixed part, addresses and TLVs). Ours are under 120 bytes; the
/// format allows 64 KiB, which nobody here needs and a reader should not buffer.
pub const MAX_HEADER_LEN: usize = 1024;

/// Why bytes are not a header this crate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first 12 bytes are not the v2 signature.
    #[error("not a PROXY v2 header (no signature)")]
    NoSignature,
    /// The announced length exceeds [`MAX_HEADER_LEN`].
    #[error("{0} bytes, more than the {MAX_HEADER_LEN} accepted")]
    TooLong(usize),
    /// `ppp` could not decode it.
    #[error("{0}")]
    Malformed(String),
    /// Bytes follow the header's announced end.
    #[error("{0} bytes after the header's announced end")]
    Trailing(usize),
}

/// What a header announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// `LOCAL` (a proxy's own connection, e.g. a health check): the TCP peer is the client.
    pub local: bool,
    /// The source (client) address as sent (IPv4-mapped IPv6 left as it is); `None` for
    /// `LOCAL`, UNSPEC and UNIX addresses.
    pub source: Option<SocketAddr>,
    /// The destination address, when given.
    pub destination: Option<SocketAddr>,
    /// The raw value of the first site TLV, if any (each reader applies its own rules to it).
    pub site: Option<Vec<u8>>,
}

/// The header's total length from its first [`FIXED_LEN`] bytes.
///
/// # Errors
/// [`HeaderError::NoSignature`] or [`HeaderError::TooLong`].
pub fn header_len(fixed: &[u8; FIXED_LEN]) -> Result<usize, HeaderError> {
    if !fixed.starts_with(PROTOCOL_PREFIX) {
        return Err(HeaderError::NoSignature);
    }
    let total = FIXED_LEN + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if total > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong(total));
    }
    Ok(total)
}

/// Parses exactly one complete header (`bytes` holds the header and nothing else).
///
/// # Errors
/// [`HeaderError::Malformed`] (including a malformed TLV) or [`HeaderError::Trailing`].
pub fn parse(bytes: &[u8]) -> Result<Announced, HeaderError> {
    let header = Header::try_from(bytes).map_err(|e| HeaderError::Malformed(e.to_string()))?;
    if header.len() != bytes.len() {
        return Err(HeaderError::Trailing(bytes.len() - header.len()));
    }
    let mut site = None;
    for tlv in header.tlvs() {
        let tlv = tlv.map_err(|e| HeaderError::Malformed(e.to_string()))?;
        if tlv.kind == PP2_TYPE_SITE && site.is_none() {
            site = Some(tlv.value.to_vec());
        }
    }
    let local = header.command == Command::Local;
    let (source, destination) = match (local, header.addresses) {
        (false, Addresses::IPv4(a)) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        (false, Addresses::IPv6(a)) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        // LOCAL, or no usable address: the specification says to keep the connection's own.
        _ => (None, None),
    };
    Ok(Announced {
        local,
        source,
        destination,
        site,
    })
}

/// A header (version 2, command PROXY) announcing `source` on a connection to `destination`,
/// with the site TLV when `site` is given. `source == None` (unknown client) gives family and
/// protocol `0x00` (UNSPEC) and no TLV, because parsers (`ppp` among them) read everything
/// after an UNSPEC header as address bytes. Mixed families are sent as IPv6, IPv4-mapped.
///
/// # Errors
/// Only if the header could not be encoded (it is far below the format's 64 KiB limit).
pub fn build(
    source: Option<SocketAddr>,
    destination: SocketAddr,
    site: Option<&str>,
) -> std::io::Result<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn fixed(bytes: &[u8]) -> [u8; FIXED_LEN] {
        bytes[..FIXED_LEN].try_into().expect("16 bytes")
    }

    #[test]
    fn built_headers_parse_back() {
        let bytes = build(
            Some(addr("192.0.2.7:51234")),
            addr("127.0.0.1:12300"),
            Some("branch-a"),
        )
        .expect("build");
        assert_eq!(header_len(&fixed(&bytes)), Ok(bytes.len()));
        let a = parse(&bytes).expect("parse");
        assert_eq!(a.source, Some(addr("192.0.2.7:51234")));
        assert_eq!(a.destination, Some(addr("127.0.0.1:12300")));
        assert_eq!(a.site.as_deref(), Some(&b"branch-a"[..]));
        assert!(!a.local);
    }

    #[test]
    fn mixed_families_go_as_mapped_ipv6() {
        let bytes = build(Some(addr("10.0.0.1:5")), addr("[::1]:6"), None).expect("build");
        let a = parse(&bytes).expect("parse");
        assert_eq!(a.source, Some(addr("[::ffff:10.0.0.1]:5")));
        assert_eq!(a.site, None);
    }

    #[test]
    fn unknown_source_is_unspec_without_tlv() {
        let bytes = build(None, addr("127.0.0.1:1"), Some("x")).expect("build");
        let a = parse(&bytes).expect("parse");
        assert_eq!((a.source, a.destination, a.site), (None, None, None));
    }

    #[test]
    fn length_is_bounded_and_signature_checked() {
        let mut bytes = build(Some(addr("10.0.0.1:1")), addr("10.0.0.2:2"), None).expect("b");
        bytes[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(header_len(&fixed(&bytes)), Err(HeaderError::TooLong(2016)));
        assert_eq!(
            header_len(&fixed(b"GET / HTTP/1.1\r\nHost")),
            Err(HeaderError::NoSignature)
        );
    }

    #[test]
    fn trailing_bytes_and_garbage_are_errors() {
        let mut bytes = build(Some(addr("10.0.0.1:1")), addr("10.0.0.2:2"), None).expect("b");
        bytes.push(0);
        assert!(matches!(
            parse(&bytes),
            Err(HeaderError::Malformed(_) | HeaderError::Trailing(_))
        ));
        assert!(matches!(
            parse(b"not a header"),
            Err(HeaderError::Malformed(_))
        ));
    }
}
