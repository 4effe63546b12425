//! Stand-ins for legacy license clients: connect to a proxy, send bytes, half-close, read the
//! answer to EOF — from `127.0.0.1` or from another loopback address — and what a refused
//! client sees.

use std::net::{IpAddr, SocketAddr};

use hc_client::trust::{Fingerprint, TrustConfig};
use rand::RngCore as _;
use relay_server::SelfSigned;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// `len` random bytes.
pub fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// One client connection's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The client's own address (what the proxy saw as its peer).
    pub local: SocketAddr,
    /// Everything that came back until EOF.
    pub reply: Vec<u8>,
}

/// Sends `data` through the proxy at `proxy`, half-closes, and returns what came back until
/// EOF.
pub async fn round_trip(proxy: SocketAddr, data: &[u8]) -> Vec<u8> {
    exchange(proxy, data).await.reply
}

/// [`round_trip`], also returning the client's address.
pub async fn exchange(proxy: SocketAddr, data: &[u8]) -> Exchange {
    let stream = TcpStream::connect(proxy).await.expect("connect proxy");
    send_and_read(stream, data).await
}

/// [`exchange`] from a chosen local address, e.g. `127.0.0.2` to be a second client (every
/// 127/8 address works on Linux).
pub async fn exchange_from(local: IpAddr, proxy: SocketAddr, data: &[u8]) -> Exchange {
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind client address");
    let stream = socket.connect(proxy).await.expect("connect proxy");
    send_and_read(stream, data).await
}

async fn send_and_read(stream: TcpStream, data: &[u8]) -> Exchange {
    let local = stream.local_addr().expect("client addr");
    let reply = write_then_read(stream, data).await;
    Exchange { local, reply }
}

/// Writes `data` and half-closes while reading everything that comes back until EOF.
pub async fn write_then_read<S: AsyncRead + AsyncWrite>(stream: S, data: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = async {
        wr.write_all(data).await.expect("write");
        wr.shutdown().await.expect("shutdown");
    };
    let reader = async {
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.expect("read");
        got
    };
    tokio::join!(writer, reader).1
}

/// What a refused client sees: the connection closes without data. Panics otherwise.
pub async fn refused_client(proxy: SocketAddr) {
    let mut stream = TcpStream::connect(proxy).await.expect("connect proxy");
    let _ = stream.write_all(b"hello?").await;
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    assert!(got.is_empty(), "refused client got {got:?}");
}

/// Connects to a proxy serving local TLS with `cert` (pinned; server name `localhost`).
pub async fn connect_tls(proxy: SocketAddr, cert: &SelfSigned) -> TlsStream<TcpStream> {
    connect_tls_pinned(proxy, &cert.sha256_fingerprint).await
}

/// Connects over TLS to `addr`, trusting exactly the certificate with SHA-256 `fingerprint`
/// (server name `localhost`).
pub async fn connect_tls_pinned(addr: SocketAddr, fingerprint: &str) -> TlsStream<TcpStream> {
    hc_client::install_crypto_provider();
    let trust = TrustConfig {
        pins: vec![fingerprint.parse::<Fingerprint>().expect("fp")],
        ..TrustConfig::default()
    };
    let connector = tokio_rustls::TlsConnector::from(trust.client_config().expect("client config"));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("tls")
}
