//! The relay's front door and lifecycle: accepting TCP connections, admission (IP lists,
//! connection slots), the TLS and HTTP/1.1 handshakes under one handshake timeout, hyper with
//! upgrades, and graceful shutdown.
//!
//! Shutdown, once the token is cancelled: stop accepting; control channels close with 1001;
//! waiting senders get `503`; idle or handshaking HTTP connections finish via hyper's
//! graceful shutdown; bridged connections may drain for `shutdown_grace`, then are
//! closed with 1001. hyper-util's `GracefulShutdown` cannot watch an HTTP/1 connection with
//! upgrades (only its `auto` connections, which would pull in HTTP/2), so each connection
//! calls hyper's own `graceful_shutdown` on the token and a `TaskTracker` does the waiting.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ops_http::accept::accept_until;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::admission::ConnectionSlot;
use crate::bridge::CLOSE_GRACE;
use crate::config::RelayConfig;
use crate::homed::Homed;
use crate::relay::Relay;
use crate::router::{self, ConnInfo};
use crate::stats::HEARTBEAT_INTERVAL;
use crate::{RelayError, tls};

/// Largest HTTP request head we read (hyper's minimum is 8 KiB).
const MAX_REQUEST_HEAD: usize = 64 << 10;

/// Runs the relay on `listener` until `shutdown` is cancelled and the connections drained.
///
/// # Errors
/// [`RelayError`] when the configuration is invalid or TLS cannot be set up; nothing after
/// the relay started serving is an error.
pub async fn run(
    config: RelayConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    config.validate()?;
    let server_tls = tls::load(&config.tls)?;
    let local_addr = listener.local_addr()?;
    if let Some(t) = &server_tls {
        tracing::info!(sha256 = %t.sha256_fingerprint, "TLS certificate");
    }
    let acceptor = server_tls.map(|t| TlsAcceptor::from(t.config));
    let relay = Arc::new(Relay::new(&config, acceptor.is_some(), shutdown.clone()));
    // Live from the moment it serves (the loop's own beats follow).
    relay.stats.beat();
    relay.stats.update(|s| {
        s.serving = true;
        s.local_addr = Some(local_addr);
    });
    tracing::info!(
        address = %local_addr,
        scheme = if acceptor.is_some() { "wss" } else { "ws" },
        hybrid_connections = config.hybrid_connections.len(),
        "relay listening"
    );
    // The accept loop beats while it waits: a stuck loop stops the beat (liveness).
    let admit = |tcp, peer: SocketAddr| {
        if !relay.admission.permits(peer.ip()) {
            tracing::debug!(%peer, "client address not allowed");
            return;
        }
        if relay.admission.throttled(peer.ip()) {
            // A listen storm (see admission.rs): closing before TLS costs next to nothing.
            relay.stats.update(|s| s.throttled_total += 1);
            return;
        }
        let Some(slot) = relay.admission.connection_slot(peer.ip()) else {
            tracing::debug!(%peer, "connection limit reached, dropping");
            return;
        };
        let span = tracing::debug_span!("conn", %peer);
        relay.tasks.spawn(
            serve_connection(relay.clone(), tcp, peer, slot, acceptor.clone()).instrument(span),
        );
    };
    let beat = || relay.stats.beat();
    accept_until(
        &listener,
        "relay",
        &shutdown,
        HEARTBEAT_INTERVAL,
        beat,
        admit,
    )
    .await;
    drop(listener);
    relay.stats.update(|s| s.serving = false);
    tracing::info!("relay stopping: draining connections");
    relay.tasks.close();
    let grace = relay.limits.shutdown_grace;
    if tokio::time::timeout(grace, relay.tasks.wait())
        .await
        .is_err()
    {
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "closing remaining connections"
        );
        relay.drain.cancel();
        if tokio::time::timeout(CLOSE_GRACE * 3, relay.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
    }
    relay.drain.cancel();
    tracing::info!("relay stopped");
    Ok(())
}

async fn serve_connection(
    relay: Arc<Relay>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    acceptor: Option<TlsAcceptor>,
) {
    // Small control and license messages: latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let evicted = slot.evicted().clone();
    let conn = Arc::new(ConnInfo {
        peer,
        local,
        slot: Arc::new(slot),
    });
    // An unauthenticated connection closed to make room (see admission.rs) ends here; an
    // upgraded one lives on in its own task, out of reach of this.
    tokio::select! {
        () = serve_tls_or_plain(relay, conn, tcp, acceptor) => {}
        () = evicted.cancelled() => tracing::debug!("closed to make room: unauthenticated and the oldest"),
    }
}

async fn serve_tls_or_plain(
    relay: Arc<Relay>,
    conn: Arc<ConnInfo>,
    tcp: TcpStream,
    acceptor: Option<TlsAcceptor>,
) {
    // Bridged later, the connection may move to another runtime (see crate::homed).
    let tcp = Homed::new(tcp);
    match acceptor {
        None => serve_http(relay, conn, tcp).await,
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(relay.limits.handshake_timeout, acceptor.accept(tcp));
            match handshake.await {
                Ok(Ok(stream)) => serve_http(relay, conn, stream).await,
                Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<S>(relay: Arc<Relay>, conn: Arc<ConnInfo>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(relay.limits.handshake_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(!conn.slot.overflow);
    let service = {
        let relay = relay.clone();
        let conn = conn.clone();
        service_fn(move |req| router::handle(relay.clone(), conn.clone(), req))
    };
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = relay.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "HTTP connection ended with an error");
    }
}
