//! TCP targets standing in for a license server, each on its own `127.0.0.1:0` port:
//!
//! - [`echo`]: echoes until EOF, then shuts its side down (honours half-close);
//! - [`answer_after_eof`]: answers only after the request ended (proves half-close crossed);
//! - [`recording`]: echoes like [`echo`] and reports every connection — the peer address it
//!   came from, a leading PROXY protocol v2 header parsed with `ppp`, and the payload after it;
//! - [`dead_port`]: an address nothing listens on.

use std::net::SocketAddr;

use ppp::v2::{Addresses, Command, Header, PROTOCOL_PREFIX};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Fixed part of a PROXY v2 header: signature, version/command, family/protocol, length.
const V2_FIXED: usize = 16;

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
    let addr = listener.local_addr().expect("target addr");
    (listener, addr)
}

/// A TCP echo target that honours half-close: echoes until EOF, then shuts down its side.
pub async fn echo() -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    addr
}

/// A target that answers only after the request ended: reads to EOF, then writes
/// `got N bytes after EOF`.
pub async fn answer_after_eof() -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).await.is_ok() {
                    let answer = format!("got {} bytes after EOF", request.len());
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    addr
}

/// A port nothing listens on (bound, then released).
pub async fn dead_port() -> SocketAddr {
    bind().await.1
}

/// A parsed PROXY protocol v2 header, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Command PROXY (`true`) or LOCAL (`false`).
    pub proxy: bool,
    /// Source address (the client), `None` for the UNSPEC family.
    pub source: Option<SocketAddr>,
    /// Destination address, `None` for the UNSPEC family.
    pub destination: Option<SocketAddr>,
    /// The TLVs in order: `(type, value)`.
    pub tlvs: Vec<(u8, Vec<u8>)>,
    /// The header's bytes as received.
    pub raw: Vec<u8>,
}

impl ProxyHeader {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let header = Header::try_from(bytes).map_err(|e| format!("{e:?}"))?;
        let (source, destination) = match header.addresses {
            Addresses::IPv4(a) => (
                Some(SocketAddr::from((a.source_address, a.source_port))),
                Some(SocketAddr::from((
                    a.destination_address,
                    a.destination_port,
                ))),
            ),
            Addresses::IPv6(a) => (
                Some(SocketAddr::from((a.source_address, a.source_port))),
                Some(SocketAddr::from((
                    a.destination_address,
                    a.destination_port,
                ))),
            ),
            Addresses::Unspecified | Addresses::Unix(_) => (None, None),
        };
        let tlvs = header
            .tlvs()
            .map(|t| t.map(|t| (t.kind, t.value.to_vec())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{e:?}"))?;
        Ok(Self {
            proxy: header.command == Command::Proxy,
            source,
            destination,
            tlvs,
            raw: bytes.to_vec(),
        })
    }

    /// The value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// The site name (TLV [`relay_listener::PP2_TYPE_SITE`]).
    pub fn site(&self) -> Option<String> {
        self.tlv(relay_listener::PP2_TYPE_SITE)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// What preceded the payload on a recorded connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// The bytes did not start with the PROXY v2 signature.
    None,
    /// A well-formed PROXY v2 header.
    ProxyV2(ProxyHeader),
    /// The PROXY v2 signature followed by something `ppp` rejects.
    Invalid(String),
}

/// One connection the recording target served, reported when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The peer address the target saw (the source address of the connection).
    pub peer: SocketAddr,
    /// A leading PROXY v2 header, if any.
    pub preamble: Preamble,
    /// Every byte after the preamble (all of which were echoed).
    pub payload: Vec<u8>,
}

impl Recorded {
    /// The PROXY v2 header; panics with the preamble if there was none.
    pub fn proxy_header(&self) -> &ProxyHeader {
        match &self.preamble {
            Preamble::ProxyV2(h) => h,
            other => panic!("expected a PROXY v2 header, got {other:?}"),
        }
    }
}

/// A recording echo target: its address and the connections it served, in the order they
/// ended.
pub struct Recording {
    addr: SocketAddr,
    served: mpsc::UnboundedReceiver<Recorded>,
}

impl Recording {
    /// Where the target listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next connection to end (waits for it).
    pub async fn next(&mut self) -> Recorded {
        self.served.recv().await.expect("recording target stopped")
    }
}

/// Starts a recording echo target.
pub async fn recording() -> Recording {
    let (listener, addr) = bind().await;
    let (tx, served) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(recorded) = record(stream, peer).await {
                    let _ = tx.send(recorded);
                }
            });
        }
    });
    Recording { addr, served }
}

/// Reads an optional PROXY v2 header, then echoes and keeps the payload until EOF.
async fn record(mut stream: TcpStream, peer: SocketAddr) -> std::io::Result<Recorded> {
    let (preamble, mut payload) = read_preamble(&mut stream).await?;
    stream.write_all(&payload).await?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&chunk[..n]);
        stream.write_all(&chunk[..n]).await?;
    }
    stream.shutdown().await?;
    Ok(Recorded {
        peer,
        preamble,
        payload,
    })
}

/// Reads until it is clear whether a PROXY v2 header leads; returns it and the bytes after.
async fn read_preamble(stream: &mut TcpStream) -> std::io::Result<(Preamble, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let seen = buf.len().min(PROTOCOL_PREFIX.len());
        if !PROTOCOL_PREFIX.starts_with(&buf[..seen]) {
            return Ok((Preamble::None, buf));
        }
        if buf.len() >= V2_FIXED {
            let total = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
            if buf.len() >= total {
                let rest = buf.split_off(total);
                let preamble = match ProxyHeader::parse(&buf) {
                    Ok(h) => Preamble::ProxyV2(h),
                    Err(e) => Preamble::Invalid(e),
                };
                return Ok((preamble, rest));
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // EOF inside a header is a broken header; inside a partial signature, plain bytes.
            if buf.len() >= PROTOCOL_PREFIX.len() {
                return Ok((Preamble::Invalid("truncated header".into()), buf));
            }
            return Ok((Preamble::None, buf));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
