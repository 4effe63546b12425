//! The local-proxy: accepts local clients (allow/deny lists, connection limit, keepalive,
//! optional TLS) and opens one relay sender WebSocket per client (`sb-hc-action=connect`, fresh
//! `sb-hc-id`, the half-close subprotocol offer, and the client's address and site as custom
//! headers), then pumps. A refusal by the relay closes the client's connection and is logged
//! as one line with the status and reason. Shutdown stops accepting at once and lets tunnels
//! drain for the grace period.

use std::net::SocketAddr;
use std::sync::Arc;

use hc_client::access::AccessError;
use hc_client::dial::DialError;
use hc_client::identity::{CLIENT_HEADER, SITE_HEADER};
use hc_client::pump::pump;
use hc_client::subprotocol::{Framing, SENDER_OFFER};
use hc_client::{RelayAccess, RelayStream};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ProxyConfig;
use crate::local_tls::LocalTlsError;
use crate::status::ProxyStatus;

/// The proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Relay access settings are unusable.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Local TLS files are unusable.
    #[error(transparent)]
    LocalTls(#[from] LocalTlsError),
}

/// Binds the local listening socket with an explicit backlog (`SO_REUSEADDR` on Unix so a
/// restart does not wait for `TIME_WAIT`). Must be called inside a Tokio runtime.
///
/// # Errors
/// The socket error.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// A configured local-proxy.
pub struct LocalProxy {
    config: Arc<ProxyConfig>,
    access: Arc<RelayAccess>,
    tls: Option<TlsAcceptor>,
    status: ProxyStatus,
}

impl LocalProxy {
    /// Validates the configuration and loads TLS material.
    ///
    /// # Errors
    /// [`ProxyError`] naming the unusable setting.
    pub fn new(config: ProxyConfig) -> Result<Self, ProxyError> {
        let access = RelayAccess::new(config.access.clone())?;
        let tls = match &config.local_tls {
            Some(files) => Some(TlsAcceptor::from(files.server_config()?)),
            None => None,
        };
        Ok(Self {
            config: Arc::new(config),
            access: Arc::new(access),
            tls,
            status: ProxyStatus::default(),
        })
    }

    /// A handle on the live counters.
    pub fn status(&self) -> ProxyStatus {
        self.status.clone()
    }

    /// Accepts on `listener` until `shutdown`, then drains.
    ///
    /// # Errors
    /// None today; accept errors (e.g. too many open files) are logged and retried.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ProxyError> {
        let tunnels = TaskTracker::new();
        let abort = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let local = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        tracing::info!(
            "local-proxy on {local}{} forwarding to {} ({})",
            if self.tls.is_some() { " (TLS)" } else { "" },
            self.access.describe(),
            self.access.dialer().egress().label()
        );
        self.status.update(|s| s.listening = true);
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!("accept on {local} failed: {e}");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                    }
                }
            };
            if !self.config.access_list.permits(peer.ip()) {
                self.status.update(|s| s.denied += 1);
                tracing::warn!(
                    "refused local connection from {peer}: not allowed by allow/deny lists"
                );
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                self.status.update(|s| s.over_limit += 1);
                tracing::warn!(
                    "refused local connection from {peer}: {} connections open (max_connections)",
                    self.config.max_connections
                );
                continue;
            };
            hc_client::net::tune(&tcp, self.config.tcp_keepalive);
            self.status.update(|s| {
                s.accepted += 1;
                s.active += 1;
            });
            let tunnel = Tunnel {
                config: self.config.clone(),
                access: self.access.clone(),
                tls: self.tls.clone(),
                status: self.status.clone(),
                abort: abort.child_token(),
                peer,
                _permit: permit,
            };
            tunnels.spawn(tunnel.run(tcp));
        }
        drop(listener);
        self.status.update(|s| s.listening = false);
        tunnels.close();
        if tokio::time::timeout(self.config.shutdown_grace, tunnels.wait())
            .await
            .is_err()
        {
            tracing::info!("closing {} tunnels after the grace period", tunnels.len());
            abort.cancel();
            tunnels.wait().await;
        }
        Ok(())
    }
}

/// One local client's tunnel.
struct Tunnel {
    config: Arc<ProxyConfig>,
    access: Arc<RelayAccess>,
    tls: Option<TlsAcceptor>,
    status: ProxyStatus,
    abort: CancellationToken,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl Tunnel {
    async fn run(self, tcp: TcpStream) {
        let completed = self.forward(tcp).await;
        self.status.update(|s| {
            s.active = s.active.saturating_sub(1);
            if completed {
                s.completed += 1;
            }
        });
    }

    /// Returns whether the tunnel ended normally.
    async fn forward(&self, tcp: TcpStream) -> bool {
        let peer = self.peer;
        let local = match &self.tls {
            None => Either::Left(tcp),
            Some(acceptor) => {
                match tokio::time::timeout(self.config.local_tls_timeout, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(stream)) => Either::Right(stream),
                    Ok(Err(e)) => {
                        return self.failed(format!("local TLS handshake with {peer} failed: {e}"));
                    }
                    Err(_) => {
                        return self.failed(format!("local TLS handshake with {peer} timed out"));
                    }
                }
            }
        };
        let relay = tokio::select! {
            _ = self.abort.cancelled() => return false,
            r = self.dial() => r,
        };
        let relay = match relay {
            Ok(stream) => stream,
            Err(AccessError::Dial(e @ DialError::Refused { .. })) => {
                let line = format!("{peer}: {e}");
                tracing::warn!("relay refused connection for {line}");
                self.status.update(|s| {
                    s.refused += 1;
                    s.last_refusal = Some(line);
                });
                return false;
            }
            Err(e) => return self.failed(format!("cannot reach relay for {peer}: {e}")),
        };
        let framing = Framing::from_subprotocol(relay.subprotocol.as_deref());
        let report = pump(
            local,
            relay.ws,
            framing,
            &self.config.pump,
            self.status.bytes(),
            &self.abort,
        )
        .await;
        tracing::debug!(%peer, sent = report.sent, received = report.received, end = ?report.end, "tunnel ended");
        report.end.is_normal()
    }

    /// Opens the sender WebSocket. A listener that ignores our offer makes a strict client
    /// refuse the 101; the connection is then retried once without an offer (raw framing).
    async fn dial(&self) -> Result<RelayStream, AccessError> {
        let mut headers = vec![(CLIENT_HEADER.to_owned(), self.peer.to_string())];
        if let Some(site) = &self.config.site {
            headers.push((SITE_HEADER.to_owned(), site.clone()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        match self.access.connect(&id, &headers, &SENDER_OFFER).await {
            Err(AccessError::Dial(DialError::NoSubprotocol { .. })) => {
                tracing::debug!(peer = %self.peer, "listener chose no subprotocol; retrying without offer");
                let id = uuid::Uuid::new_v4().to_string();
                self.access.connect(&id, &headers, &[]).await
            }
            other => other,
        }
    }

    fn failed(&self, line: String) -> bool {
        tracing::warn!("{line}");
        self.status.update(|s| s.failed += 1);
        false
    }
}
