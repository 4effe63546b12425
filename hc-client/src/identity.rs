//! Who the local client is, as the local-proxy tells the listener.
//!
//! - One relay connection per TCP connection: two custom headers of the connect request, which
//!   the relay passes to the listener in `accept.connectHeaders` ([`CLIENT_HEADER`],
//!   [`SITE_HEADER`]).
//! - Multiplexed (`dongle-relay.mux.v1`): one pooled connection carries many clients, so each
//!   stream starts with a PROXY protocol v2 header instead: the client as source, the proxy's
//!   local address as destination, the site in TLV [`PP2_TYPE_SITE`]. It is the same header
//!   format the relay-listener writes to a target in `proxy-v2` mode ([`proxy_v2_header`]
//!   builds both), and [`read_proxy_v2`] reads it; the bytes are the `proxy-header` crate's.

use std::io;
use std::net::SocketAddr;

use futures_util::io::{AsyncRead, AsyncReadExt as _};
use proxy_header::{FIXED_LEN, HeaderError};

/// The local client's address as the local-proxy saw it, `ip:port` (`[v6]:port`).
pub const CLIENT_HEADER: &str = "X-Dongle-Relay-Client";
/// The configured name of the client site (e.g. `branch-a`).
pub const SITE_HEADER: &str = "X-Dongle-Relay-Site";

/// The TLV type carrying the client's site name (UTF-8, at most 64 bytes).
pub const PP2_TYPE_SITE: u8 = proxy_header::PP2_TYPE_SITE;

/// A PROXY v2 header announcing `source` on a connection to `destination`, with the site TLV
/// when `site` is given ([`proxy_header::build`], which says how unknown clients and mixed
/// families are sent).
///
/// # Errors
/// Only if the header could not be encoded (it is far below the format's 64 KiB limit).
pub fn proxy_v2_header(
    source: Option<SocketAddr>,
    destination: SocketAddr,
    site: Option<&str>,
) -> io::Result<Vec<u8>> {
    proxy_header::build(source, destination, site)
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

/// Reads exactly one PROXY v2 header from the start of `reader` and parses it with
/// [`proxy_header::parse`].
///
/// # Errors
/// `InvalidData` when the bytes are not a PROXY v2 header (or an oversized one); the read
/// error, or `UnexpectedEof`, when the stream ends first.
pub async fn read_proxy_v2<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<ProxyV2> {
    let invalid = |e: HeaderError| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad PROXY v2 header: {e}"),
        )
    };
    let mut fixed = [0u8; FIXED_LEN];
    reader.read_exact(&mut fixed).await?;
    let total = proxy_header::header_len(&fixed).map_err(invalid)?;
    let mut buf = fixed.to_vec();
    buf.resize(total, 0);
    reader.read_exact(&mut buf[FIXED_LEN..]).await?;
    let announced = proxy_header::parse(&buf).map_err(invalid)?;
    Ok(ProxyV2 {
        source: announced.source,
        destination: announced.destination,
        site: announced.site.and_then(|s| String::from_utf8(s).ok()),
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
