//! Tunnel slots: how many tunnels a component carries at once, shared fairly among client
//! addresses, and counted only while the tunnel is live.
//!
//! [`FairSlots`] admits a new tunnel for a client key (the local client's address at a proxy,
//! the real client's site and address at a listener) when:
//!
//! - fewer than `capacity` slots are held, and
//! - the key holds fewer than `per_key` slots, and
//! - while more than half of the slots are held (contention), the key holds less than its fair
//!   share: `capacity / n`, with `n` the keys holding slots (the newcomer counted). A flood
//!   from one address can then take its share but never lock other addresses out, while a
//!   site whose clients all share one address (a proxy on loopback) still uses the whole
//!   capacity when nobody else wants it.
//!
//! A [`Slot`] is released when dropped. [`Held`] wraps a client's stream together with its
//! slot and drops the slot as soon as the client has gone (its stream reached end of file or
//! failed): a tunnel whose client already closed does not hold a slot while its teardown
//! (close handshake, drain of the far side) completes.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The limits a [`FairSlots`] admits under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    /// Most slots held at once.
    pub capacity: usize,
    /// Most slots one key holds at once.
    pub per_key: usize,
}

/// Why a slot was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    /// Every slot is held.
    #[error("all {capacity} slots are held")]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// The key holds its own limit.
    #[error("this client holds {held} slots (the per-client limit)")]
    PerKey {
        /// Slots the key holds.
        held: usize,
    },
    /// Slots are contended and the key already holds its fair share.
    #[error("slots are contended and this client holds its fair share ({share})")]
    OverShare {
        /// The key's share.
        share: usize,
    },
}

#[derive(Debug)]
struct State<K> {
    used: usize,
    held: HashMap<K, usize>,
}

/// Slots shared fairly among keys (see the module documentation). Cloneable handle.
#[derive(Debug)]
pub struct FairSlots<K> {
    state: Arc<Mutex<State<K>>>,
}

impl<K> Clone for FairSlots<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<K> Default for FairSlots<K> {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                used: 0,
                held: HashMap::new(),
            })),
        }
    }
}

impl<K: Hash + Eq + Clone> FairSlots<K> {
    /// A slot for `key` under `limits`, or why not.
    ///
    /// # Errors
    /// [`SlotRefusal`] naming the limit that refused.
    pub fn try_acquire(&self, key: K, limits: SlotLimits) -> Result<Slot<K>, SlotRefusal> {
        let capacity = limits.capacity.max(1);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.used >= capacity {
            return Err(SlotRefusal::Full { capacity });
        }
        let held = state.held.get(&key).copied().unwrap_or(0);
        if held >= limits.per_key.max(1) {
            return Err(SlotRefusal::PerKey { held });
        }
        if state.used >= capacity / 2 {
            let holders = state.held.len() + usize::from(held == 0);
            let share = (capacity / holders.max(1)).max(1);
            if held >= share {
                return Err(SlotRefusal::OverShare { share });
            }
        }
        state.used += 1;
        *state.held.entry(key.clone()).or_insert(0) += 1;
        Ok(Slot {
            state: self.state.clone(),
            key: Some(key),
        })
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used
    }
}

/// One held slot; dropping it releases it.
#[derive(Debug)]
pub struct Slot<K: Hash + Eq> {
    state: Arc<Mutex<State<K>>>,
    key: Option<K>,
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.used = state.used.saturating_sub(1);
        if let Some(n) = state.held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                state.held.remove(&key);
            }
        }
    }
}

/// A client's stream holding `G` (a [`Slot`], or anything released when the client goes)
/// until the client's side ends: reading reaches end of file, or reading or writing fails.
#[derive(Debug)]
pub struct Held<S, G> {
    inner: S,
    guard: Option<G>,
}

impl<S, G> Held<S, G> {
    /// Wraps `inner`, holding `guard` while the client is there.
    pub fn new(inner: S, guard: G) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether the guard is still held (the client has not gone yet).
    pub fn holds(&self) -> bool {
        self.guard.is_some()
    }

    fn release_on<T>(&mut self, result: &io::Result<T>) {
        if result.is_err() {
            self.guard = None;
        }
    }
}

impl<S: AsyncRead + Unpin, G: Unpin> AsyncRead for Held<S, G> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = buf.remaining();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(result) = &polled {
            this.release_on(result);
            // End of file: the client closed its side.
            if result.is_ok() && room > 0 && buf.filled().len() == before {
                this.guard = None;
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin, G: Unpin> AsyncWrite for Held<S, G> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(result) = &polled {
            this.release_on(result);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(result) = &polled {
            this.release_on(result);
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(result) = &polled {
            this.release_on(result);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const LIMITS: SlotLimits = SlotLimits {
        capacity: 8,
        per_key: 6,
    };

    #[test]
    fn one_key_alone_uses_up_to_its_limit_and_others_keep_a_share() {
        let slots = FairSlots::default();
        let flood: Vec<_> = (0..6)
            .map(|_| slots.try_acquire("a", LIMITS).expect("slot"))
            .collect();
        assert_eq!(
            slots.try_acquire("a", LIMITS).expect_err("per key"),
            SlotRefusal::PerKey { held: 6 }
        );
        // Contended: "b" is below its share (8 / 2) and gets the remaining slots.
        let b1 = slots.try_acquire("b", LIMITS).expect("b");
        let b2 = slots.try_acquire("b", LIMITS).expect("b");
        assert_eq!(
            slots.try_acquire("c", LIMITS).expect_err("full"),
            SlotRefusal::Full { capacity: 8 }
        );
        drop(flood);
        assert_eq!(slots.in_use(), 2);
        drop((b1, b2));
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn under_contention_a_key_over_its_share_is_refused() {
        let slots = FairSlots::default();
        let limits = SlotLimits {
            capacity: 8,
            per_key: 8,
        };
        let a: Vec<_> = (0..3)
            .map(|_| slots.try_acquire("a", limits).expect("a"))
            .collect();
        let b: Vec<_> = (0..2)
            .map(|_| slots.try_acquire("b", limits).expect("b"))
            .collect();
        // 5 of 8 held by 2 keys: each key's share is 4; "a" may take one more, then not.
        let a4 = slots.try_acquire("a", limits).expect("a's fourth");
        assert_eq!(
            slots.try_acquire("a", limits).expect_err("over share"),
            SlotRefusal::OverShare { share: 4 }
        );
        assert!(slots.try_acquire("c", limits).is_ok());
        drop((a, b, a4));
    }

    #[tokio::test]
    async fn a_held_stream_releases_its_slot_when_the_client_closes() {
        let slots = FairSlots::default();
        let (client, proxy_side) = tokio::io::duplex(64);
        let slot = slots.try_acquire(1u8, LIMITS).expect("slot");
        let mut held = Held::new(proxy_side, slot);
        let mut client = client;
        client.write_all(b"hi").await.expect("write");
        let mut buf = [0u8; 2];
        held.read_exact(&mut buf).await.expect("read");
        assert!(held.holds());
        assert_eq!(slots.in_use(), 1);
        drop(client);
        let mut rest = Vec::new();
        held.read_to_end(&mut rest).await.expect("eof");
        assert!(!held.holds());
        assert_eq!(slots.in_use(), 0, "released before the stream is dropped");
    }
}
