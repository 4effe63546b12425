//! Identity mode `proxy-v2`: each target connection starts with a PROXY protocol version 2
//! header (HAProxy's binary format, built with the `ppp` crate) that names the real client.
//!
//! The header is: the 12-byte signature; `0x21` (version 2, command PROXY); `0x11` (TCP over
//! IPv4) or `0x21` (TCP over IPv6); the length; the client's address and port as **source** and
//! the target address the listener connected to as **destination**; then, when the client has
//! a site, one TLV of type [`PP2_TYPE_SITE`] (`0xE0`, in the range the specification leaves to
//! applications) holding the site name in UTF-8. Mixed families are sent as IPv6 with the IPv4
//! side IPv4-mapped. A client whose address is unknown (neither header nor relay endpoint was
//! usable) gets family and protocol `0x00` (UNSPEC: the receiver keeps the connection's own
//! addresses) and no TLV, because parsers (`ppp` among them) read everything after an UNSPEC
//! header as address bytes. Header and TLV go out in one write before the first payload byte.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::identity::{ClientSource, RemoteClient};
use crate::target::{Connected, TargetConnector, TargetRequest, TcpTarget};

/// The TLV type carrying the client's site name (UTF-8, at most
/// [`MAX_SITE_LEN`](crate::identity::MAX_SITE_LEN) bytes). `0xE0`–`0xEF` are reserved for
/// applications by the PROXY protocol specification.
pub const PP2_TYPE_SITE: u8 = hc_client::identity::PP2_TYPE_SITE;

/// The PROXY v2 header announcing `client` on a connection to `destination` (built by
/// [`hc_client::identity::proxy_v2_header`], which the local-proxy uses for multiplexed
/// streams too).
///
/// # Errors
/// Only if the header could not be encoded (it is far below the format's 64 KiB limit).
pub fn header(client: &RemoteClient, destination: SocketAddr) -> std::io::Result<Vec<u8>> {
    let source = (client.source != ClientSource::Unknown).then_some(client.addr);
    hc_client::identity::proxy_v2_header(source, destination, client.site.as_deref())
}

/// A TCP target that is sent a PROXY v2 header naming the client before any payload.
#[derive(Debug, Clone)]
pub struct ProxyV2Target {
    tcp: TcpTarget,
}

impl ProxyV2Target {
    /// Wraps a plain TCP target.
    pub fn new(tcp: TcpTarget) -> Self {
        Self { tcp }
    }
}

impl TargetConnector for ProxyV2Target {
    type Stream = TcpStream;

    async fn connect(&self, request: &TargetRequest<'_>) -> std::io::Result<Connected<TcpStream>> {
        let mut connected = self.tcp.connect(request).await?;
        let destination = connected.stream.peer_addr()?;
        let header = header(request.client, destination)?;
        connected.stream.write_all(&header).await?;
        Ok(connected)
    }

    fn describe(&self) -> String {
        format!("{} (PROXY v2)", self.tcp.describe())
    }
}

#[cfg(test)]
mod tests {
    use ppp::v2::{Addresses, Command, Header, Protocol, Type};

    use super::*;

    fn client(addr: &str, site: Option<&str>, source: ClientSource) -> RemoteClient {
        RemoteClient {
            addr: addr.parse().expect("addr"),
            site: site.map(str::to_owned),
            source,
        }
    }

    fn dest(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn ipv4_header_with_site_tlv_has_the_documented_layout() {
        let c = client(
            "192.0.2.7:51234",
            Some("branch-a"),
            ClientSource::FromHeader,
        );
        let bytes = header(&c, dest("127.0.0.1:12300")).expect("header");
        let mut expected = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        expected.extend([0x21, 0x11, 0, 12 + 3 + 8]);
        expected.extend([192, 0, 2, 7, 127, 0, 0, 1]);
        expected.extend(51234u16.to_be_bytes());
        expected.extend(12300u16.to_be_bytes());
        expected.extend([0xE0, 0, 8]);
        expected.extend(b"branch-a");
        assert_eq!(bytes, expected);

        let parsed = Header::try_from(bytes.as_slice()).expect("ppp parses it");
        assert_eq!(parsed.command, Command::Proxy);
        assert_eq!(parsed.protocol, Protocol::Stream);
        let tlvs: Vec<_> = parsed.tlvs().collect::<Result<_, _>>().expect("tlvs");
        assert_eq!(tlvs.len(), 1);
        assert_eq!(tlvs[0].kind, PP2_TYPE_SITE);
        assert_eq!(tlvs[0].value.as_ref(), b"branch-a");
        assert_ne!(PP2_TYPE_SITE, u8::from(Type::NoOp));
    }

    #[test]
    fn ipv6_mixed_families_and_no_site() {
        let c = client("[2001:db8::7]:443", None, ClientSource::FromRelayEndpoint);
        let bytes = header(&c, dest("127.0.0.1:12300")).expect("header");
        let parsed = Header::try_from(bytes.as_slice()).expect("parse");
        let Addresses::IPv6(a) = parsed.addresses else {
            panic!("not IPv6: {parsed:?}");
        };
        assert_eq!(
            a.source_address,
            "2001:db8::7".parse::<std::net::Ipv6Addr>().expect("ip")
        );
        assert_eq!(a.source_port, 443);
        assert_eq!(
            a.destination_address.to_ipv4_mapped(),
            Some("127.0.0.1".parse().expect("ip"))
        );
        assert_eq!(parsed.tlvs().count(), 0);
        assert_eq!(bytes.len(), 16 + 36);
    }

    #[test]
    fn unknown_client_is_unspec_without_tlvs() {
        let c = client("0.0.0.0:0", Some("hq"), ClientSource::Unknown);
        let bytes = header(&c, dest("127.0.0.1:12300")).expect("header");
        assert_eq!(&bytes[12..], &[0x21, 0x00, 0, 0]);
        let parsed = Header::try_from(bytes.as_slice()).expect("parse");
        assert_eq!(parsed.command, Command::Proxy);
        assert_eq!(parsed.addresses, Addresses::Unspecified);
    }
}
