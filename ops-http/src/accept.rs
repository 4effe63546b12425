//! The accept loop every server in the workspace runs: accept until shut down, run a periodic
//! tick between connections (the liveness beat, the license engine's sweep), and back off
//! briefly when accepting fails (out of file descriptors and the like) instead of spinning.
//! [`accept_limited`] is the same loop for a server that holds at most N connections: it
//! waits for a free slot before accepting, so excess clients wait in the kernel's backlog.
//! What to do with an accepted connection is the caller's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How long the loop waits after a failed accept.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts on `listener` until `shutdown`, handing each connection to `accepted` and calling
/// `tick` every `tick_every` (first before anything is accepted). A failed accept is logged,
/// naming `what`, and retried after [`ACCEPT_BACKOFF`]. Shutdown wins over a ready connection.
pub async fn accept_until(
    listener: &TcpListener,
    what: &str,
    shutdown: &CancellationToken,
    tick_every: Duration,
    mut tick: impl FnMut(),
    mut accepted: impl FnMut(TcpStream, SocketAddr),
) {
    // The first tick runs here, before anything is accepted: an interval's immediate first
    // tick still waits for a turn of the timer, which may come after the first connections.
    tick();
    let mut ticks = tokio::time::interval_at(Instant::now() + tick_every, tick_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // Dropping `next_connection` for a tick loses nothing: accepting and its backoff
        // sleep are both cancel-safe.
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                tick();
                continue;
            }
            next = next_connection(listener, what, shutdown) => next,
        };
        let Some((tcp, peer)) = next else { break };
        accepted(tcp, peer);
    }
}

/// [`accept_until`] without a tick, holding at most `permits`' worth of connections: each
/// accepted connection comes with the permit it must keep while it lives.
pub async fn accept_limited(
    listener: &TcpListener,
    what: &str,
    shutdown: &CancellationToken,
    permits: Arc<Semaphore>,
    mut accepted: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p,
        };
        // A closed semaphore means the owner is gone: nothing more to serve.
        let Ok(permit) = permit else { break };
        let Some((tcp, peer)) = next_connection(listener, what, shutdown).await else {
            break;
        };
        accepted(tcp, peer, permit);
    }
}

/// The next accepted connection, retrying failed accepts after [`ACCEPT_BACKOFF`]; `None`
/// once `shutdown` is cancelled.
async fn next_connection(
    listener: &TcpListener,
    what: &str,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let result = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            r = listener.accept() => r,
        };
        match result {
            Ok(connection) => return Some(connection),
            Err(e) => {
                tracing::warn!("{what}: accept failed: {e}");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn accepts_ticks_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = tokio::spawn({
            let shutdown = shutdown.clone();
            let ticks = ticks.clone();
            async move {
                let tick = || {
                    ticks.fetch_add(1, Ordering::Relaxed);
                };
                accept_until(
                    &listener,
                    "test",
                    &shutdown,
                    Duration::from_secs(3600),
                    tick,
                    |_tcp, peer| {
                        let _ = seen_tx.send(peer);
                    },
                )
                .await;
            }
        });
        let client = TcpStream::connect(addr).await.expect("connect");
        let limit = Duration::from_secs(10);
        let peer = tokio::time::timeout(limit, seen_rx.recv())
            .await
            .expect("accepted in time")
            .expect("a peer");
        assert_eq!(peer, client.local_addr().expect("local"));
        shutdown.cancel();
        tokio::time::timeout(limit, run)
            .await
            .expect("stopped in time")
            .expect("task");
        // The first tick runs before the first accept; the next is an hour away.
        assert_eq!(ticks.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_limited_loop_accepts_only_while_a_permit_is_free() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(1));
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = tokio::spawn({
            let shutdown = shutdown.clone();
            let permits = permits.clone();
            async move {
                accept_limited(
                    &listener,
                    "test",
                    &shutdown,
                    permits,
                    |_tcp, peer, permit| {
                        let _ = seen_tx.send((peer, permit));
                    },
                )
                .await;
            }
        });
        let limit = Duration::from_secs(10);
        let first = TcpStream::connect(addr).await.expect("connect");
        let (peer, permit) = tokio::time::timeout(limit, seen_rx.recv())
            .await
            .expect("accepted in time")
            .expect("a peer");
        assert_eq!(peer, first.local_addr().expect("local"));
        // The only permit is held: a second client waits in the backlog, not accepted.
        let second = TcpStream::connect(addr).await.expect("connect");
        // Each yield lets the runtime poll its IO driver and run the loop (tokio defers a
        // yielded task until after that poll): an ungated loop would accept by now.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(seen_rx.try_recv().is_err(), "accepted without a permit");
        drop(permit);
        let (peer, _permit) = tokio::time::timeout(limit, seen_rx.recv())
            .await
            .expect("accepted once the permit was back")
            .expect("a peer");
        assert_eq!(peer, second.local_addr().expect("local"));
        shutdown.cancel();
        tokio::time::timeout(limit, run)
            .await
            .expect("stopped in time")
            .expect("task");
    }
}
