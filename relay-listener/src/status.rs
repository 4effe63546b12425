//! The relay-listener's live state, shared with whoever watches it (tests, the CLI, a later
//! admin page): whether the control channel is up, how often it reconnected, streams and byte
//! counters. Changes are published through a `watch` channel so watchers can wait for a
//! condition instead of polling.

use std::sync::Arc;

use hc_client::ByteMeter;
use tokio::sync::watch;

/// A point-in-time copy of the listener's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    /// The control channel is open.
    pub connected: bool,
    /// Times the control channel was opened.
    pub connections: u64,
    /// Times it was re-opened after being lost (`connections − 1` once up).
    pub reconnects: u64,
    /// Rendezvous being pumped now.
    pub active_streams: u64,
    /// Rendezvous accepted (dialled back) in total.
    pub accepted: u64,
    /// Rendezvous rejected (target unreachable, busy).
    pub rejected: u64,
    /// Rendezvous that failed otherwise (dial-back refused, reject not delivered).
    pub failed: u64,
    /// Tokens renewed on the control channel.
    pub token_renewals: u64,
    /// The last connection problem, one line.
    pub last_error: Option<String>,
}

/// A cloneable handle on the listener's state.
#[derive(Clone, Debug)]
pub struct ListenerStatus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: watch::Sender<ListenerSnapshot>,
    bytes: ByteMeter,
}

impl Default for ListenerStatus {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: watch::Sender::new(ListenerSnapshot::default()),
                bytes: ByteMeter::default(),
            }),
        }
    }
}

impl ListenerStatus {
    /// The current state.
    pub fn snapshot(&self) -> ListenerSnapshot {
        self.inner.state.borrow().clone()
    }

    /// Payload byte counters of all streams (to the relay = from the target).
    pub fn bytes(&self) -> &ByteMeter {
        &self.inner.bytes
    }

    /// Waits until `condition` holds and returns that state.
    pub async fn wait_for(
        &self,
        mut condition: impl FnMut(&ListenerSnapshot) -> bool,
    ) -> ListenerSnapshot {
        let mut rx = self.inner.state.subscribe();
        match rx.wait_for(|s| condition(s)).await {
            Ok(s) => s.clone(),
            // The sender lives in `self`, so it cannot be gone.
            Err(_) => self.snapshot(),
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut ListenerSnapshot)) {
        self.inner.state.send_modify(change);
    }

    pub(crate) fn connected(&self) {
        self.update(|s| {
            s.connected = true;
            s.connections += 1;
            s.reconnects = s.connections - 1;
            s.last_error = None;
        });
    }

    pub(crate) fn disconnected(&self, error: Option<String>) {
        self.update(|s| {
            s.connected = false;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }
}
