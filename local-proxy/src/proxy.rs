//! The local-proxy: accepts local clients (allow/deny lists, connection limit, keepalive,
//! optional TLS) and carries each one to the listener in the configured [`TunnelMode`]:
//!
//! - **multiplexed** (`auto` with a listener that multiplexes, `mux`): a new stream on the
//!   least busy pooled connection ([`crate::pool`]), starting with a PROXY v2 header that names
//!   the client and site, then spliced;
//! - **1:1** (`single`, or `auto` while no pooled connection is up or the listener does not
//!   multiplex): one relay sender WebSocket per client (`sb-hc-action=connect`, fresh
//!   `sb-hc-id`, the half-close subprotocol offer, and the client's address and site as custom
//!   headers), then pumped;
//! - **azbridge**: 1:1, with Azure Relay Bridge's preamble first.
//!
//! A refusal by the relay closes the client's connection and is logged as one line with the
//! status and reason. Shutdown stops accepting at once, lets tunnels drain for the grace
//! period, then closes the pooled connections.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::SinkExt as _;
use futures_util::io::AsyncWriteExt as _;
use hc_client::access::AccessError;
use hc_client::azbridge;
use hc_client::dial::DialError;
use hc_client::identity::{CLIENT_HEADER, proxy_v2_header};
use hc_client::pump::{PumpEnd, pump};
use hc_client::slots::{FairSlots, Held, Slot, SlotLimits};
use hc_client::splice::splice;
use hc_client::subprotocol::{Framing, SENDER_OFFER};
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::{RelayIo, RelayStream, Replicas};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ProxyConfig, TunnelMode};
use crate::local_tls::LocalTlsError;
use crate::pool::{Pool, Pooled};
use crate::preopen::{Parked, Refill, Shelf};
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
    /// The azbridge port name is unusable.
    #[error(transparent)]
    Azbridge(#[from] azbridge::AzbridgeError),
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
    /// The relay replicas (one, unless `access.relays` names more).
    relays: Arc<Replicas>,
    tls: Option<TlsAcceptor>,
    status: ProxyStatus,
}

impl LocalProxy {
    /// Validates the configuration and loads TLS material.
    ///
    /// # Errors
    /// [`ProxyError`] naming the unusable setting.
    pub fn new(config: ProxyConfig) -> Result<Self, ProxyError> {
        let relays = Replicas::new(&config.access)?;
        if let Some(name) = &config.azbridge_port_name {
            azbridge::preamble(name)?;
        }
        let tls = match &config.local_tls {
            Some(files) => Some(TlsAcceptor::from(files.server_config()?)),
            None => None,
        };
        Ok(Self {
            config: Arc::new(config),
            relays: Arc::new(relays),
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
        let local = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        tracing::info!(
            "local-proxy on {local}{} forwarding to {} ({}); at most {} live tunnels",
            if self.tls.is_some() { " (TLS)" } else { "" },
            self.relays.describe(),
            self.relays.primary().dialer().egress().label(),
            self.config.max_connections,
        );
        let pool_tasks = TaskTracker::new();
        let pool_stop = CancellationToken::new();
        // Names with several addresses are several replicas before the first dial, and are
        // followed while the proxy runs.
        self.relays.refresh().await;
        let (relays, stop) = (self.relays.clone(), pool_stop.clone());
        pool_tasks.spawn(async move { relays.follow(&stop).await });
        let pool = matches!(self.config.mode, TunnelMode::Auto | TunnelMode::Mux).then(|| {
            Pool::start(
                self.config.clone(),
                self.relays.clone(),
                self.status.clone(),
                &pool_tasks,
                pool_stop.clone(),
            )
        });
        let shelf = (self.config.preopen > 0).then(|| {
            let shelf = Arc::new(Shelf::default());
            let refill = Refill {
                shelf: shelf.clone(),
                config: self.config.clone(),
                relays: self.relays.clone(),
                status: self.status.clone(),
                pool: pool.clone(),
            };
            pool_tasks.spawn(refill.run(pool_stop.clone()));
            shelf
        });
        let port_name: Arc<str> = match &self.config.azbridge_port_name {
            Some(name) => name.as_str().into(),
            None => listener
                .local_addr()
                .map_or_else(|_| "0".to_owned(), |a| a.port().to_string())
                .into(),
        };
        let tunnels = TaskTracker::new();
        let abort = CancellationToken::new();
        let accepting = Accepting {
            proxy: &self,
            tunnels: &tunnels,
            abort: &abort,
            pool,
            shelf,
            port_name,
            slots: FairSlots::default(),
        };
        accepting.accept_loop(&listener, &local, &shutdown).await;
        drop(listener);
        self.status.update(|s| s.listening = false);
        self.drain(&tunnels, &abort).await;
        pool_stop.cancel();
        pool_tasks.close();
        pool_tasks.wait().await;
        Ok(())
    }

    /// Lets open tunnels finish for the grace period, then closes the rest.
    async fn drain(&self, tunnels: &TaskTracker, abort: &CancellationToken) {
        tunnels.close();
        if tokio::time::timeout(self.config.shutdown_grace, tunnels.wait())
            .await
            .is_err()
        {
            tracing::info!("closing {} tunnels after the grace period", tunnels.len());
            abort.cancel();
            tunnels.wait().await;
        }
    }
}

/// The accept loop's state: what every new tunnel is given.
struct Accepting<'a> {
    proxy: &'a LocalProxy,
    tunnels: &'a TaskTracker,
    abort: &'a CancellationToken,
    pool: Option<Arc<Pool>>,
    /// Pre-opened 1:1 tunnels, when `preopen` is on.
    shelf: Option<Arc<Shelf>>,
    port_name: Arc<str>,
    slots: FairSlots<IpAddr>,
}

impl Accepting<'_> {
    /// Accepts until `shutdown`, beating the heartbeat while it waits.
    async fn accept_loop(&self, listener: &TcpListener, local: &str, shutdown: &CancellationToken) {
        let status = &self.proxy.status;
        // Live from the moment it listens; then the loop beats while it waits.
        status.heartbeat().beat();
        status.update(|s| s.listening = true);
        let beat = || status.heartbeat().beat();
        let what = format!("local-proxy on {local}");
        let interval = ops_http::heartbeat::HEARTBEAT_INTERVAL;
        let admit = |tcp, peer| self.admit(tcp, peer);
        ops_http::accept::accept_until(listener, &what, shutdown, interval, beat, admit).await;
    }

    /// Checks the access lists and the client's slot, then starts its tunnel.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr) {
        let proxy = self.proxy;
        let config = &proxy.config;
        if !config.access_list.permits(peer.ip()) {
            proxy.status.update(|s| s.denied += 1);
            tracing::warn!("refused local connection from {peer}: not allowed by allow/deny lists");
            return;
        }
        let limits = SlotLimits {
            capacity: config.max_connections.max(1),
            per_key: config
                .max_connections_per_client
                .unwrap_or(config.max_connections),
        };
        let slot = match self.slots.try_acquire(peer.ip().to_canonical(), limits) {
            Ok(slot) => slot,
            Err(why) => {
                proxy.status.update(|s| s.over_limit += 1);
                tracing::warn!("refused local connection from {peer}: {why} (max_connections)");
                return;
            }
        };
        hc_client::net::tune(&tcp, config.tcp_keepalive);
        proxy.status.update(|s| {
            s.accepted += 1;
            s.active += 1;
        });
        let tunnel = Tunnel {
            config: config.clone(),
            relays: proxy.relays.clone(),
            tls: proxy.tls.clone(),
            status: proxy.status.clone(),
            abort: self.abort.child_token(),
            pool: self.pool.clone(),
            shelf: self.shelf.clone(),
            port_name: self.port_name.clone(),
            local_addr: tcp.local_addr().ok(),
            peer,
        };
        // The slot goes with the client: released when it closes, not when teardown ends.
        self.tunnels.spawn(tunnel.run(Held::new(tcp, slot)));
    }
}

/// One local client's tunnel.
struct Tunnel {
    config: Arc<ProxyConfig>,
    relays: Arc<Replicas>,
    tls: Option<TlsAcceptor>,
    status: ProxyStatus,
    abort: CancellationToken,
    pool: Option<Arc<Pool>>,
    shelf: Option<Arc<Shelf>>,
    port_name: Arc<str>,
    local_addr: Option<SocketAddr>,
    peer: SocketAddr,
}

/// A local client's TCP connection, holding its slot until the client has gone.
type Client = Held<TcpStream, Slot<IpAddr>>;

/// A local client connection: TCP, or TLS over TCP. The TLS stream is boxed: inline, its
/// 1.2 KiB of state would size every plain connection's task too, once per future that holds
/// the connection.
type Local = Either<Client, Box<tokio_rustls::server::TlsStream<Client>>>;

impl Tunnel {
    async fn run(self, tcp: Client) {
        let completed = self.forward(tcp).await;
        self.status.update(|s| {
            s.active = s.active.saturating_sub(1);
            if completed {
                s.completed += 1;
            }
        });
    }

    /// Returns whether the tunnel ended normally.
    async fn forward(&self, tcp: Client) -> bool {
        let peer = self.peer;
        if self.config.open_on_first_byte && !self.first_byte(&tcp).await {
            return false;
        }
        let local = match &self.tls {
            None => Either::Left(tcp),
            Some(acceptor) => {
                // Boxed for the same reason as the stream it makes.
                let accept = Box::pin(acceptor.accept(tcp));
                match tokio::time::timeout(self.config.local_tls_timeout, accept).await {
                    Ok(Ok(stream)) => Either::Right(Box::new(stream)),
                    Ok(Err(e)) => {
                        return self.failed(format!("local TLS handshake with {peer} failed: {e}"));
                    }
                    Err(_) => {
                        return self.failed(format!("local TLS handshake with {peer} timed out"));
                    }
                }
            }
        };
        // Each path is boxed so that the task of an idle tunnel holds only the state of the
        // path it took (the 1:1 pump's state is several times a splice's).
        let local = match Box::pin(self.multiplexed(local)).await {
            Ok(completed) => return completed,
            Err(local) => local,
        };
        Box::pin(self.single(local)).await
    }

    /// Carries the client as a stream of a pooled connection, when the mode and the pool allow
    /// it. Gives the connection back when it is to go 1:1 instead.
    async fn multiplexed(&self, local: Local) -> Result<bool, Local> {
        let peer = self.peer;
        let Some(pool) = &self.pool else {
            return Err(local);
        };
        let pooled = match self.config.mode {
            TunnelMode::Mux => {
                let limit =
                    self.config.access.timeouts.connect + self.config.access.timeouts.handshake;
                let waited = tokio::select! {
                    _ = self.abort.cancelled() => return Ok(false),
                    p = pool.wait_pick(limit) => p,
                };
                match waited {
                    Some(p) => p,
                    None => {
                        return Ok(self.failed(format!(
                            "no multiplexed relay connection for {peer} within {limit:?}"
                        )));
                    }
                }
            }
            _ if pool.single_only() => return Err(local),
            _ => match pool.pick() {
                Some(p) => p,
                None => return Err(local),
            },
        };
        match self.stream(local, &pooled).await {
            Ok(completed) => Ok(completed),
            Err(local) if self.config.mode == TunnelMode::Auto => Err(local),
            Err(_) => Ok(self.failed(format!(
                "multiplexed relay connection failed before {peer}'s stream opened"
            ))),
        }
    }

    /// One stream on `pooled`: PROXY v2 header (client, site), then splice.
    async fn stream(&self, local: Local, pooled: &Arc<Pooled>) -> Result<bool, Local> {
        let peer = self.peer;
        let opened = tokio::select! {
            _ = self.abort.cancelled() => return Ok(false),
            r = pooled.open() => r,
        };
        let Ok((mut stream, _guard)) = opened else {
            return Err(local);
        };
        let header = match self.stream_header() {
            Ok(h) => h,
            Err(e) => return Ok(self.failed(format!("PROXY v2 header for {peer}: {e}"))),
        };
        if stream.write_all(&header).await.is_err() {
            return Err(local);
        }
        self.status.update(|s| s.multiplexed += 1);
        let report = splice(
            local,
            stream,
            self.config.pump.max_frame,
            self.config.pump.idle_timeout,
            self.status.bytes(),
            &self.abort,
        )
        .await;
        tracing::debug!(%peer, sent = report.sent, received = report.received, end = ?report.end, "multiplexed tunnel ended");
        Ok(report.end.is_normal())
    }

    /// One relay connection for this client (1:1 and azbridge modes): a pre-opened one if
    /// one is parked, else its own.
    async fn single(&self, mut local: Local) -> bool {
        let (ws, framing) = match self.preopened().await {
            Some(parked) => {
                if !parked.early.is_empty() && local.write_all(&parked.early).await.is_err() {
                    return false;
                }
                (parked.ws, parked.framing)
            }
            // Boxed: `single`'s future would otherwise be sized for the dial as well as the
            // pump, and an idle tunnel's task would carry both.
            None => match Box::pin(self.own_relay_connection(&mut local)).await {
                Some(opened) => opened,
                None => return false,
            },
        };
        let peer = self.peer;
        // Inline: `single`'s future is boxed already and holds little else while it pumps.
        let report = pump(
            local,
            ws,
            framing,
            &self.config.pump,
            self.status.bytes(),
            &self.abort,
        )
        .await;
        tracing::debug!(%peer, sent = report.sent, received = report.received, end = ?report.end, "tunnel ended");
        // The relay (or the listener) ended the tunnel with an error code: its reason is the
        // cause the operator needs (a listener that stopped responding, a broken frame).
        if let PumpEnd::PeerClosed {
            code: Some(code),
            reason,
        } = &report.end
            && *code != 1000
        {
            return self.failed(format!(
                "relay closed the tunnel for {peer}: {code} {reason}"
            ));
        }
        report.end.is_normal()
    }

    /// A parked pre-opened tunnel, told who the client is when our listener waits for that;
    /// none when none is parked or the one taken broke (the client then dials its own).
    async fn preopened(&self) -> Option<Parked> {
        let mut parked = self.shelf.as_ref()?.take().await?;
        if parked.wants_header {
            let peer = self.peer;
            let sent = match self.stream_header() {
                Ok(header) => parked.ws.send(Message::Binary(header.into())).await,
                Err(e) => {
                    tracing::warn!("PROXY v2 header for {peer}: {e}");
                    return None;
                }
            };
            if let Err(e) = sent {
                tracing::debug!(%peer, "pre-opened tunnel broke before use ({e}); dialling");
                return None;
            }
        }
        self.status.update(|s| s.preopened += 1);
        Some(parked)
    }

    /// Dials this client's own relay connection (with azbridge's preamble in that mode); none
    /// when that failed (counted and logged).
    async fn own_relay_connection(
        &self,
        local: &mut Local,
    ) -> Option<(WebSocketStream<RelayIo>, Framing)> {
        let peer = self.peer;
        let relay = tokio::select! {
            _ = self.abort.cancelled() => return None,
            r = self.dial() => r,
        };
        let mut relay = match relay {
            Ok(stream) => stream,
            Err(AccessError::Dial(e @ DialError::Refused { .. })) => {
                let line = format!("{peer}: {e}");
                tracing::warn!("relay refused connection for {line}");
                let status = e.status().map_or_else(String::new, |s| s.to_string());
                self.refused(status, line);
                return None;
            }
            Err(e) => {
                self.failed(format!("cannot reach relay for {peer}: {e}"));
                return None;
            }
        };
        if self.config.mode == TunnelMode::Azbridge {
            let limit = self.config.access.timeouts.handshake;
            match azbridge::offer(&mut relay.ws, &self.port_name, limit).await {
                Ok(rest) => {
                    if !rest.is_empty() && local.write_all(&rest).await.is_err() {
                        return None;
                    }
                }
                Err(e) => {
                    let line = format!("{peer}: {e}");
                    tracing::warn!("azbridge listener refused connection for {line}");
                    self.refused("azbridge".to_owned(), line);
                    return None;
                }
            }
        }
        let framing = Framing::from_subprotocol(relay.subprotocol.as_deref());
        Some((relay.ws, framing))
    }

    fn refused(&self, status: String, line: String) {
        self.status.update(|s| {
            s.refused += 1;
            *s.refused_by_status.entry(status).or_default() += 1;
            s.last_refusal = Some(line);
        });
    }

    /// The PROXY v2 header that names this client and the site to our listener, first on a
    /// multiplexed stream and on a pre-opened tunnel (destination: the proxy's local address).
    fn stream_header(&self) -> std::io::Result<Vec<u8>> {
        let destination = self.local_addr.unwrap_or(self.peer);
        proxy_v2_header(Some(self.peer), destination, self.config.site.as_deref())
    }

    /// Opens this client's sender WebSocket ([`crate::relay_dial`]), naming the client and
    /// site in custom headers.
    async fn dial(&self) -> Result<RelayStream, AccessError> {
        let mut headers = vec![(CLIENT_HEADER.to_owned(), self.peer.to_string())];
        headers.extend(self.config.site_headers());
        let who = self.peer.to_string();
        crate::relay_dial::dial(&self.relays, &self.status, &headers, &SENDER_OFFER, &who).await
    }

    /// Waits until the client has sent something (or closed), within the idle deadline: only
    /// then does the tunnel cost anything beyond this socket. False: give up on the client.
    async fn first_byte(&self, tcp: &Client) -> bool {
        let mut one = [0u8; 1];
        let waited = async {
            tokio::select! {
                _ = self.abort.cancelled() => false,
                // `readable()` may report a fresh socket ready at once; a peek waits for data.
                r = tcp.get_ref().peek(&mut one) => r.is_ok(),
            }
        };
        match self.config.pump.idle_timeout {
            None => waited.await,
            Some(limit) => match tokio::time::timeout(limit, waited).await {
                Ok(ready) => ready,
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "client sent nothing within {limit:?}; closed");
                    self.status.update(|s| s.idle_closed += 1);
                    false
                }
            },
        }
    }

    fn failed(&self, line: String) -> bool {
        tracing::warn!("{line}");
        self.status.update(|s| {
            s.failed += 1;
            s.last_failure = Some(line);
        });
        false
    }
}
