//! How TCP reaches the relay from a site that may only leave through a proxy: directly, through
//! a SOCKS5 proxy (tokio-socks; the proxy resolves the relay's name), or through an HTTP proxy's
//! `CONNECT` (hyper's client and upgrade; `Proxy-Authorization: Basic` when configured).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hc_protocol::Secret;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::net;

/// Credentials for an egress proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    /// User name.
    pub user: String,
    /// Password (never logged).
    pub password: Secret,
}

impl fmt::Debug for ProxyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyAuth {{ user: {:?}, password: *** }}", self.user)
    }
}

/// The way out to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Egress {
    /// Connect to the relay directly.
    #[default]
    Direct,
    /// Through a SOCKS5 proxy at `addr` (`host:port`).
    Socks5 {
        /// The proxy's `host:port`.
        addr: String,
        /// User name and password (RFC 1929), if the proxy wants them.
        auth: Option<ProxyAuth>,
    },
    /// Through an HTTP proxy's `CONNECT` at `addr` (`host:port`).
    HttpConnect {
        /// The proxy's `host:port`.
        addr: String,
        /// Basic credentials, if the proxy wants them.
        auth: Option<ProxyAuth>,
    },
}

/// Why the way out failed. Connect errors of the proxy itself are reported as such.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// TCP to the relay (direct) or to the proxy failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Who we tried to reach.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The proxy refused or failed the tunnel.
    #[error("proxy {proxy} could not open a tunnel to {target}: {reason}")]
    Proxy {
        /// The proxy's address.
        proxy: String,
        /// The relay address asked for.
        target: String,
        /// What the proxy said.
        reason: String,
    },
}

impl Egress {
    /// A short label for logs: `direct`, `socks5 proxy:1080`, `http-connect proxy:3128`.
    pub fn label(&self) -> String {
        match self {
            Self::Direct => "direct".into(),
            Self::Socks5 { addr, .. } => format!("socks5 {addr}"),
            Self::HttpConnect { addr, .. } => format!("http-connect {addr}"),
        }
    }

    /// Opens a TCP stream to `host:port` by this way out, with `TCP_NODELAY` set. The caller
    /// bounds it with its connect timeout.
    ///
    /// # Errors
    /// [`EgressError`] naming the proxy or the relay.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, EgressError> {
        let target = format!("{host}:{port}");
        match self {
            Self::Direct => {
                net::connect(host, port, None)
                    .await
                    .map_err(|source| EgressError::Connect {
                        addr: target,
                        source,
                    })
            }
            Self::Socks5 { addr, auth } => {
                let tcp = proxy_socket(addr).await?;
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let result = match auth {
                    None => {
                        tokio_socks::tcp::Socks5Stream::connect_with_socket(tcp, (bare, port)).await
                    }
                    Some(a) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                            tcp,
                            (bare, port),
                            &a.user,
                            a.password.expose(),
                        )
                        .await
                    }
                };
                result
                    .map(|s| s.into_inner())
                    .map_err(|e| EgressError::Proxy {
                        proxy: addr.clone(),
                        target,
                        reason: e.to_string(),
                    })
            }
            Self::HttpConnect { addr, auth } => http_connect(addr, &target, auth.as_ref()).await,
        }
    }
}

async fn proxy_socket(addr: &str) -> Result<TcpStream, EgressError> {
    let connect = async {
        let stream = TcpStream::connect(addr).await?;
        net::tune(&stream, None);
        Ok(stream)
    };
    connect.await.map_err(|source| EgressError::Connect {
        addr: format!("proxy {addr}"),
        source,
    })
}

/// `CONNECT target` through an HTTP proxy with hyper, then takes the raw socket back.
async fn http_connect(
    proxy: &str,
    target: &str,
    auth: Option<&ProxyAuth>,
) -> Result<TcpStream, EgressError> {
    let fail = |reason: String| EgressError::Proxy {
        proxy: proxy.to_owned(),
        target: target.to_owned(),
        reason,
    };
    let tcp = proxy_socket(proxy).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| fail(e.to_string()))?;
    // The connection task ends when the upgrade hands the socket back (or the proxy closes).
    let conn_task = tokio::spawn(conn.with_upgrades());
    let mut request = http::Request::connect(target).header(http::header::HOST, target);
    if let Some(a) = auth {
        let basic = BASE64.encode(format!("{}:{}", a.user, a.password.expose()));
        request = request.header(http::header::PROXY_AUTHORIZATION, format!("Basic {basic}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => {
            conn_task.abort();
            return Err(fail(e.to_string()));
        }
    };
    if !response.status().is_success() {
        conn_task.abort();
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let parts = upgraded
        .downcast::<TokioIo<TcpStream>>()
        .map_err(|_| fail("tunnel is not a TCP socket".into()))?;
    // TLS (or the WebSocket request) speaks first, so a proxy that already sent bytes after its
    // 200 is broken; refusing is safer than guessing where they belong.
    if !parts.read_buf.is_empty() {
        return Err(fail("proxy sent data before the tunnel was used".into()));
    }
    Ok(parts.io.into_inner())
}
