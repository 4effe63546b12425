//! The runtime that serves bridged connections, on a thread of its own.
//!
//! New tunnels keep the relay's main runtime busy (TLS handshakes, HTTP upgrades, the hub);
//! a connection already bridged needs almost no CPU but should be served the moment its
//! data arrives. Queued behind the setup work of every tunnel in flight, a multiplexed
//! call through the relay waited about 6 ms at p50 on a saturated 2-core machine
//! (`docs/performance.md`, "Relay capacity"). Bridges therefore run here, with their sockets
//! registered with this runtime's own I/O driver ([`crate::homed`]): the operating system
//! wakes this thread for their data, and nothing else is ahead of them in its queue.

use std::io;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A current-thread runtime on its own thread; stops when dropped (its tasks are dropped,
/// which closes their connections).
#[derive(Debug)]
pub(crate) struct Established {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl Established {
    /// Starts the thread and its runtime.
    ///
    /// # Errors
    /// The thread or the runtime could not be created.
    pub(crate) fn start() -> io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        thread::Builder::new()
            .name("relay-bridges".to_owned())
            .spawn(move || {
                // Either a stop or the sender dropped ends it.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    /// Where bridges are spawned.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Established {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
