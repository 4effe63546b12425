//! PROXY protocol v2 in front of a license connection: the relay-listener (or any proxy on a
//! trusted address) announces the real client's address and site before the first frame, so
//! seats, per-IP licences, logs and status name the client instead of the listener.
//!
//! The first bytes are *peeked*: a legacy client's frame starts with `MXR2`, so nothing of it
//! is consumed. Only a connection whose first bytes are the start of the 12-byte v2 signature
//! is read as a header (the `proxy-header` crate's bytes, at most [`MAX_HEADER_LEN`], within
//! [`HEADER_TIMEOUT`]): from a trusted peer its source address and its site TLV
//! ([`PP2_TYPE_SITE`]) become the [`Peer`]; a `LOCAL` header (a proxy's own health check) keeps
//! the TCP peer. A header from an untrusted peer, a malformed one, or one that stalls closes the
//! connection without an answer: it is never read as a license request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proxy_header::{FIXED_LEN, PROTOCOL_PREFIX};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::connection::Peer;
use crate::config::TrustedProxies;

/// The TLV type carrying the client's site (UTF-8, 1 to [`MAX_SITE_LEN`] bytes), in the range
/// `0xE0`–`0xEF` the PROXY protocol leaves to applications. The relay-listener writes it.
pub const PP2_TYPE_SITE: u8 = proxy_header::PP2_TYPE_SITE;
/// The longest site name accepted.
pub const MAX_SITE_LEN: usize = 64;
/// The longest header accepted (signature, fixed part, addresses and TLVs). The relay-listener
/// sends at most 119 bytes; the format allows 64 KiB, which nobody needs here.
pub const MAX_HEADER_LEN: usize = proxy_header::MAX_HEADER_LEN;
/// A header must arrive completely within this time once its first byte came.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the header said, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedClient {
    /// The client's address (`None` for `LOCAL` or unspecified addresses: keep the TCP peer).
    pub addr: Option<SocketAddr>,
    /// The site TLV.
    pub site: Option<String>,
}

/// Why a connection was closed before it was served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A PROXY header from a peer outside `TrustedProxy=`.
    #[error("PROXY header from untrusted peer {0} refused (not in TrustedProxy=)")]
    Untrusted(SocketAddr),
    /// A header that cannot be parsed, or is too long.
    #[error("malformed PROXY header from {peer}: {reason}")]
    Malformed {
        /// The TCP peer.
        peer: SocketAddr,
        /// What is wrong.
        reason: String,
    },
    /// The header did not arrive within [`HEADER_TIMEOUT`].
    #[error("PROXY header from {0} incomplete after {HEADER_TIMEOUT:?}")]
    Timeout(SocketAddr),
}

/// Parses one complete v2 header (`bytes` holds exactly the header).
///
/// # Errors
/// A description of what is malformed.
pub fn parse(bytes: &[u8]) -> Result<ProxiedClient, String> {
    let announced = proxy_header::parse(bytes).map_err(|e| e.to_string())?;
    let site = announced.site.as_deref().map(site_name).transpose()?;
    // A LOCAL header (a proxy's health check) or no usable address keeps the TCP peer.
    let addr = announced
        .source
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()));
    Ok(ProxiedClient { addr, site })
}

/// A site TLV's value: UTF-8, 1 to 64 bytes, no control characters.
fn site_name(value: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(value).map_err(|_| "site TLV is not UTF-8".to_owned())?;
    if s.is_empty() || s.len() > MAX_SITE_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "site TLV must be 1 to {MAX_SITE_LEN} bytes without control characters"
        ));
    }
    Ok(s.to_owned())
}

/// Counters of PROXY headers seen by a server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    untrusted: AtomicU64,
    malformed: AtomicU64,
}

/// How many PROXY headers a server accepted and refused (since it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProxyHeaderStats {
    /// Headers accepted from trusted peers.
    pub accepted: u64,
    /// Connections refused because an untrusted peer sent a header.
    pub refused_untrusted: u64,
    /// Connections closed for a malformed, oversized or stalled header.
    pub malformed: u64,
}

impl Counters {
    pub(crate) fn stats(&self) -> ProxyHeaderStats {
        ProxyHeaderStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            refused_untrusted: self.untrusted.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }

    fn count(&self, outcome: &Result<Option<Peer>, Refusal>) {
        let counter = match outcome {
            Ok(_) => return,
            Err(Refusal::Untrusted(_)) => &self.untrusted,
            Err(Refusal::Malformed { .. } | Refusal::Timeout(_)) => &self.malformed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Works out who is at the other end of `stream` from TCP peer `tcp_peer`: reads a PROXY v2
/// header when one comes first, and otherwise consumes nothing. `Ok(None)`: the connection
/// ended (closed, idle for `idle`, or `shutdown`) before its first byte.
///
/// # Errors
/// The connection must be closed without serving it.
pub(crate) async fn identify(
    stream: &mut TcpStream,
    tcp_peer: SocketAddr,
    trusted: &TrustedProxies,
    counters: &Counters,
    idle: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Peer>, Refusal> {
    let mut first = [0u8; FIXED_LEN];
    let peeked = tokio::select! {
        biased;
        () = shutdown.cancelled() => return Ok(None),
        p = tokio::time::timeout(idle, stream.peek(&mut first)) => p,
    };
    let n = match peeked {
        Ok(Ok(n)) if n > 0 => n,
        // Closed, failed or idle before a byte: nothing to serve.
        _ => return Ok(None),
    };
    let seen = n.min(PROTOCOL_PREFIX.len());
    if first[..seen] != PROTOCOL_PREFIX[..seen] {
        // A license frame (or garbage the frame decoder answers): not a header.
        return Ok(Some(Peer::tcp(tcp_peer)));
    }
    let outcome =
        match tokio::time::timeout(HEADER_TIMEOUT, read_header(stream, tcp_peer, trusted)).await {
            Ok(r) => r.map(|client| {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                Some(Peer {
                    addr: client.addr.unwrap_or(tcp_peer),
                    site: client.site,
                })
            }),
            Err(_) => Err(Refusal::Timeout(tcp_peer)),
        };
    counters.count(&outcome);
    outcome
}

/// Reads the header whose first byte is waiting. Every byte read belongs to the header (or to
/// something that is neither a header nor a frame), so a legacy client loses nothing.
async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &TrustedProxies,
) -> Result<ProxiedClient, Refusal> {
    let malformed = |reason: String| Refusal::Malformed { peer, reason };
    let io = |e: std::io::Error| Refusal::Malformed {
        peer,
        reason: format!("connection ended inside the header ({e})"),
    };
    let mut bytes = vec![0u8; FIXED_LEN];
    stream
        .read_exact(&mut bytes[..PROTOCOL_PREFIX.len()])
        .await
        .map_err(io)?;
    if bytes[..PROTOCOL_PREFIX.len()] != *PROTOCOL_PREFIX {
        return Err(malformed(
            "neither a PROXY v2 signature nor a license frame".to_owned(),
        ));
    }
    // Refused before anything else is read: an untrusted peer's header is never interpreted.
    if !trusted.contains(peer.ip()) {
        return Err(Refusal::Untrusted(peer));
    }
    stream
        .read_exact(&mut bytes[PROTOCOL_PREFIX.len()..])
        .await
        .map_err(io)?;
    let fixed: [u8; FIXED_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| malformed("short fixed part".to_owned()))?;
    let total = proxy_header::header_len(&fixed).map_err(|e| malformed(e.to_string()))?;
    bytes.resize(total, 0);
    stream
        .read_exact(&mut bytes[FIXED_LEN..])
        .await
        .map_err(io)?;
    parse(&bytes).map_err(malformed)
}

#[cfg(test)]
mod tests {
    use ppp::v2::{Addresses, Builder, Command, IPv4, IPv6, Protocol, Version};

    use super::*;

    fn v4(src: &str, dst: &str) -> Builder {
        let s: SocketAddr = src.parse().expect("addr");
        let d: SocketAddr = dst.parse().expect("addr");
        let (SocketAddr::V4(s), SocketAddr::V4(d)) = (s, d) else {
            panic!("v4 only")
        };
        Builder::with_addresses(
            Version::Two | Command::Proxy,
            Protocol::Stream,
            IPv4::new(*s.ip(), *d.ip(), s.port(), d.port()),
        )
    }

    #[test]
    fn ipv4_source_and_site_tlv() {
        let bytes = v4("192.0.2.7:51234", "127.0.0.1:12300")
            .write_tlv(PP2_TYPE_SITE, b"branch-a")
            .expect("tlv")
            .build()
            .expect("build");
        assert_eq!(
            parse(&bytes),
            Ok(ProxiedClient {
                addr: Some("192.0.2.7:51234".parse().expect("addr")),
                site: Some("branch-a".into()),
            })
        );
    }

    #[test]
    fn the_listeners_documented_bytes_parse() {
        // docs/identity.md's example, byte for byte.
        let mut bytes = PROTOCOL_PREFIX.to_vec();
        bytes.extend([0x21, 0x11, 0x00, 0x17]);
        bytes.extend([192, 0, 2, 7, 127, 0, 0, 1, 0xc8, 0x22, 0x30, 0x0c]);
        bytes.extend([0xe0, 0x00, 0x08]);
        bytes.extend(b"branch-a");
        let c = parse(&bytes).expect("parse");
        assert_eq!(c.addr, Some("192.0.2.7:51234".parse().expect("addr")));
        assert_eq!(c.site.as_deref(), Some("branch-a"));
    }

    #[test]
    fn ipv6_mapped_source_is_ipv4_and_other_tlvs_are_skipped() {
        let bytes = Builder::with_addresses(
            Version::Two | Command::Proxy,
            Protocol::Stream,
            IPv6::new(
                "::ffff:10.1.2.3".parse::<std::net::Ipv6Addr>().expect("v6"),
                std::net::Ipv6Addr::LOCALHOST,
                4000,
                12300,
            ),
        )
        .write_tlv(ppp::v2::Type::NoOp, b"xx")
        .expect("tlv")
        .build()
        .expect("build");
        let c = parse(&bytes).expect("parse");
        assert_eq!(c.addr, Some("10.1.2.3:4000".parse().expect("addr")));
        assert_eq!(c.site, None);
    }

    #[test]
    fn local_and_unspecified_keep_the_peer() {
        let local = Builder::with_addresses(
            Version::Two | Command::Local,
            Protocol::Unspecified,
            Addresses::Unspecified,
        )
        .build()
        .expect("build");
        assert_eq!(parse(&local).expect("parse").addr, None);
        let unspec = Builder::with_addresses(
            Version::Two | Command::Proxy,
            Protocol::Unspecified,
            Addresses::Unspecified,
        )
        .build()
        .expect("build");
        assert_eq!(parse(&unspec).expect("parse").addr, None);
    }

    #[test]
    fn bad_site_tlvs_and_broken_headers_are_malformed() {
        let with_site = |site: &[u8]| {
            v4("10.0.0.1:1", "127.0.0.1:2")
                .write_tlv(PP2_TYPE_SITE, site)
                .expect("tlv")
                .build()
                .expect("build")
        };
        assert!(parse(&with_site(&[0xff, 0xfe])).is_err(), "not UTF-8");
        assert!(parse(&with_site(b"a\nb")).is_err(), "control character");
        assert!(parse(&with_site(&[b'x'; 65])).is_err(), "too long");
        assert!(parse(&with_site(b"")).is_err(), "empty");
        assert!(parse(&with_site(&[b'x'; 64])).is_ok());
        let good = with_site(b"site");
        // A TLV cut short.
        let mut cut = good.clone();
        cut[15] -= 1;
        cut.pop();
        assert!(parse(&cut).is_err());
        // Version 1 in the version nibble.
        let mut v1 = good.clone();
        v1[12] = 0x11;
        assert!(parse(&v1).is_err());
        // Bytes beyond the announced length.
        let mut long = good;
        long.push(0);
        assert!(parse(&long).is_err());
    }
}
