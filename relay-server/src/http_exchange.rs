//! HTTP requests in flight (HTTP request mode): which listener each went to, the request held
//! back for a rendezvous-only delivery, and where the listener's `response` goes — whether it
//! arrives on that listener's control channel or on the request's rendezvous WebSocket.
//!
//! An exchange is keyed by its request id, an unguessable v4 UUID the relay generates (it is
//! also the rendezvous key in the request's `address`, seen only by the chosen listener). The
//! HTTP handler owns it through an [`ExchangeGuard`], so it disappears when the client goes
//! away or the response deadline passes. When a listener's control channel ends, its
//! exchanges fail at once instead of running into the deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hc_protocol::HttpResponse;
use tokio::sync::oneshot;

use crate::hub::{HcEntry, Outbound};

/// A listener's complete answer.
#[derive(Debug)]
pub(crate) struct ListenerReply {
    pub head: HttpResponse,
    pub body: Bytes,
}

struct Entry {
    hc: Arc<HcEntry>,
    /// The listener the request went to, once dispatched.
    listener: Option<u64>,
    /// The full request, for a rendezvous-only delivery.
    deferred: Option<Outbound>,
    reply: oneshot::Sender<ListenerReply>,
}

/// The HTTP requests waiting for their listener's response.
#[derive(Default)]
pub(crate) struct Exchanges {
    map: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Exchanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exchanges({})", self.lock().len())
    }
}

/// Removes an exchange when its HTTP request is done, whatever the outcome.
pub(crate) struct ExchangeGuard {
    exchanges: Arc<Exchanges>,
    id: String,
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        self.exchanges.lock().remove(&self.id);
    }
}

/// What a listener dialling a request's rendezvous takes over.
pub(crate) struct Rendezvous {
    /// The request to send on the rendezvous first (rendezvous-only requests).
    pub deferred: Option<Outbound>,
    pub reply: oneshot::Sender<ListenerReply>,
}

impl Exchanges {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers request `id` on `hc`; returns where its reply arrives and the guard.
    pub fn open(
        self: &Arc<Self>,
        id: &str,
        hc: &Arc<HcEntry>,
    ) -> (oneshot::Receiver<ListenerReply>, ExchangeGuard) {
        let (reply, rx) = oneshot::channel();
        let entry = Entry {
            hc: hc.clone(),
            listener: None,
            deferred: None,
            reply,
        };
        self.lock().insert(id.to_owned(), entry);
        let guard = ExchangeGuard {
            exchanges: self.clone(),
            id: id.to_owned(),
        };
        (rx, guard)
    }

    /// Records that request `id` goes to `listener`, with the full request when only its
    /// rendezvous address is sent on the control channel.
    pub fn assign(&self, id: &str, listener: u64, deferred: Option<Outbound>) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.listener = Some(listener);
            entry.deferred = deferred;
        }
    }

    /// A `response` that arrived on `listener`'s control channel. Answers for requests the
    /// listener was not given are dropped (`false`).
    pub fn answer(&self, listener: u64, reply: ListenerReply) -> bool {
        let mut map = self.lock();
        let ours = map
            .get(&reply.head.request_id)
            .is_some_and(|e| e.listener == Some(listener));
        if !ours {
            return false;
        }
        match map.remove(&reply.head.request_id) {
            Some(entry) => entry.reply.send(reply).is_ok(),
            None => false,
        }
    }

    /// The listener dialled the rendezvous of request `id` on `hc` (single use).
    pub fn take_rendezvous(&self, id: &str, hc: &Arc<HcEntry>) -> Option<Rendezvous> {
        let mut map = self.lock();
        if !map
            .get(id)
            .is_some_and(|e| Arc::ptr_eq(&e.hc, hc) && e.listener.is_some())
        {
            return None;
        }
        map.remove(id).map(|e| Rendezvous {
            deferred: e.deferred,
            reply: e.reply,
        })
    }

    /// `listener`'s control channel ended: its requests fail now (their reply channels
    /// close) rather than at the response deadline.
    pub fn listener_gone(&self, listener: u64) {
        self.lock().retain(|_, e| e.listener != Some(listener));
    }
}
