//! Getting a frame to the server and its answer back: a direct TCP connection or one through a
//! SOCKS5 proxy (section 9), under the connect timeout, optionally from a chosen local address;
//! one connection per call (the manual's pattern, section 6.4) or one kept open across calls.

use futures_util::{SinkExt as _, StreamExt as _};
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream, lookup_host};
use tokio_util::codec::Framed;

use crate::config::ClientConfig;
use license_core::error::ErrorCode;
use license_core::protocol::{CodecError, Frame, FrameCodec};

/// Any byte stream to the server.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Conn = Framed<Box<dyn Stream>, FrameCodec>;

/// The connection side of a client.
#[derive(Default)]
pub(crate) struct Transport {
    conn: Option<Conn>,
}

impl Transport {
    /// Sends `frame` and reads the answer. A kept-open connection that turns out to be closed
    /// (the server restarted or idled it out) is replaced once.
    pub(crate) async fn call(
        &mut self,
        config: &ClientConfig,
        frame: Frame,
    ) -> Result<Frame, ErrorCode> {
        if let Some(mut conn) = self.conn.take() {
            match exchange(&mut conn, config, frame.clone()).await {
                Ok(answer) => {
                    self.conn = Some(conn);
                    return Ok(answer);
                }
                Err(Failure::Stale) => {}
                Err(Failure::Code(code)) => return Err(code),
            }
        }
        let mut conn = connect(config).await?;
        let answer = match exchange(&mut conn, config, frame).await {
            Ok(answer) => answer,
            Err(Failure::Stale) => return Err(ErrorCode::Receive),
            Err(Failure::Code(code)) => return Err(code),
        };
        if config.persistent {
            self.conn = Some(conn);
        }
        Ok(answer)
    }

    /// Drops a kept-open connection.
    pub(crate) fn close(&mut self) {
        self.conn = None;
    }
}

enum Failure {
    /// The connection was closed before any answer: worth one retry on a new connection.
    Stale,
    Code(ErrorCode),
}

async fn exchange(conn: &mut Conn, config: &ClientConfig, frame: Frame) -> Result<Frame, Failure> {
    let io = config.io_timeout;
    match tokio::time::timeout(io, conn.send(frame)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(Failure::Stale),
        Err(_) => return Err(Failure::Code(ErrorCode::Send)),
    }
    match tokio::time::timeout(io, conn.next()).await {
        Ok(Some(Ok(answer))) => Ok(answer),
        Ok(Some(Err(CodecError::Frame(e)))) => Err(Failure::Code(e.code)),
        Ok(None | Some(Err(CodecError::Io(_)))) => Err(Failure::Stale),
        Err(_) => Err(Failure::Code(ErrorCode::Receive)),
    }
}

async fn connect(config: &ClientConfig) -> Result<Conn, ErrorCode> {
    let timeout = config.connect_timeout;
    let stream: Box<dyn Stream> = match &config.socks {
        None => {
            let tcp = tokio::time::timeout(
                timeout,
                tcp_connect(&config.host, config.port, config.local_addr),
            )
            .await
            .map_err(|_| ErrorCode::Connect)?
            .map_err(|e| {
                tracing::debug!("connect to {}:{} failed: {e}", config.host, config.port);
                ErrorCode::Connect
            })?;
            let _ = tcp.set_nodelay(true);
            Box::new(tcp)
        }
        Some(socks) => {
            let proxy = tokio::time::timeout(
                timeout,
                tcp_connect(&socks.host, socks.port, config.local_addr),
            )
            .await
            .map_err(|_| ErrorCode::Connect)?
            .map_err(|e| {
                tracing::debug!(
                    "connect to SOCKS proxy {}:{} failed: {e}",
                    socks.host,
                    socks.port
                );
                ErrorCode::Connect
            })?;
            let _ = proxy.set_nodelay(true);
            let target = (config.host.as_str(), config.port);
            let handshake = async {
                match &socks.auth {
                    None => {
                        tokio_socks::tcp::Socks5Stream::connect_with_socket(proxy, target).await
                    }
                    Some((user, password)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                            proxy,
                            target,
                            user,
                            password.expose(),
                        )
                        .await
                    }
                }
            };
            let stream = tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| ErrorCode::Receive)?
                .map_err(socks_error)?;
            Box::new(stream)
        }
    };
    Ok(Framed::new(stream, FrameCodec))
}

/// Connects to `host:port`, from `local` when given (trying each address of `host` of the
/// same family in turn).
async fn tcp_connect(host: &str, port: u16, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last = None;
    for addr in lookup_host((host, port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address of the family of local address {local}"),
        )
    }))
}

/// Maps SOCKS failures to the codes of section 9.
fn socks_error(e: tokio_socks::Error) -> ErrorCode {
    use tokio_socks::Error as E;
    tracing::debug!("SOCKS5: {e}");
    match e {
        E::InvalidResponseVersion => ErrorCode::SocksVersion,
        E::NoAcceptableAuthMethods | E::UnknownAuthMethod | E::AuthorizationRequired => {
            ErrorCode::SocksNoAuthMethod
        }
        E::PasswordAuthFailure(_) | E::InvalidAuthValues(_) => ErrorCode::SocksAuth,
        E::Io(e) if e.kind() == std::io::ErrorKind::WriteZero => ErrorCode::Send,
        E::Io(_) => ErrorCode::Receive,
        // The proxy could not reach the server.
        _ => ErrorCode::Connect,
    }
}
