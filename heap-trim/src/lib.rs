//! The memory of tunnels: returning the heap that closed tunnels freed to the operating
//! system, and holding no read buffer while a tunnel is idle.
//!
//! Every tunnel holds buffers and task state while it is open. When thousands close, glibc's
//! allocator keeps the freed pages for reuse: the process's RSS stays at its peak although
//! nothing is in use (measured: 10 000 multiplexed connections leave ~125 MB behind; see
//! `docs/performance.md`). Code that ends a tunnel calls [`released`]; [`trim_loop`] runs in
//! each process and, after a period in which tunnels ended, asks glibc to give free pages back
//! (`malloc_trim(0)`, which releases free memory inside the heap too, not only at its top).
//! Elsewhere (musl, other systems) trimming does nothing.
//!
//! An open but idle tunnel should hold as little as possible too: [`read_ahead`] lets the
//! WebSocket codecs of both the relay and the clients read in large pieces through a buffer
//! that exists only while bytes are waiting.

pub mod read_ahead;
pub mod read_size;

pub use read_ahead::ReadAhead;
pub use read_size::ReadSize;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often [`trim_loop`] looks for ended tunnels by default: short enough that memory
/// returns soon after a burst of closes, long enough that a busy process trims rarely.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

/// Frees of tunnel memory noted by [`released`] in this process so far.
static RELEASED: AtomicU64 = AtomicU64::new(0);

/// Notes that memory a tunnel held was freed: it ended, or its handshake did (the relay's
/// bridge starts once both upgrades' buffers are gone; a burst of them leaves the heap at its
/// peak as a burst of ends does).
pub fn released() {
    RELEASED.fetch_add(1, Ordering::Relaxed);
}

/// How many frees [`released`] has counted.
#[must_use]
pub fn released_count() -> u64 {
    RELEASED.load(Ordering::Relaxed)
}

/// Every `period`, if tunnels ended since the last look, returns free heap pages to the
/// operating system (on a blocking thread: trimming a large heap takes milliseconds). Ends
/// when `shutdown` is cancelled.
pub async fn trim_loop(period: Duration, shutdown: CancellationToken) {
    trim_loop_with(period, shutdown, trim).await;
}

/// [`trim_loop`] with the trimming function given (tests count its calls).
async fn trim_loop_with(period: Duration, shutdown: CancellationToken, trim: fn() -> bool) {
    let mut seen = released_count();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let now = released_count();
        if now == seen {
            continue;
        }
        seen = now;
        match tokio::task::spawn_blocking(trim).await {
            Ok(true) => tracing::debug!(released = now, "returned free heap pages"),
            Ok(false) => {}
            Err(err) => tracing::warn!("heap trim did not run: {err}"),
        }
    }
}

/// Returns free heap pages to the operating system; `true` when some were returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[must_use]
pub fn trim() -> bool {
    // SAFETY: `malloc_trim` takes no pointers and is thread-safe (it locks each arena); its
    // argument is the padding to keep at the top of the heap.
    #[allow(unsafe_code)]
    let returned = unsafe { libc::malloc_trim(0) };
    returned == 1
}

/// Returns free heap pages to the operating system; `true` when some were returned.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
#[must_use]
pub fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    static TRIMS: AtomicU64 = AtomicU64::new(0);

    fn counting_trim() -> bool {
        TRIMS.fetch_add(1, Ordering::Relaxed);
        true
    }

    #[tokio::test(start_paused = true)]
    async fn trims_once_after_tunnels_ended_and_not_while_none_end() {
        let shutdown = CancellationToken::new();
        let looping = tokio::spawn(trim_loop_with(
            DEFAULT_PERIOD,
            shutdown.clone(),
            counting_trim,
        ));
        let trims = || TRIMS.load(Ordering::Relaxed);
        tokio::time::sleep(DEFAULT_PERIOD * 3).await;
        assert_eq!(trims(), 0, "nothing ended: no trim");
        released();
        released();
        tokio::time::sleep(DEFAULT_PERIOD * 2).await;
        assert_eq!(trims(), 1, "one trim for the ends seen in one period");
        tokio::time::sleep(DEFAULT_PERIOD * 3).await;
        assert_eq!(trims(), 1, "no new ends: no new trim");
        released();
        tokio::time::sleep(DEFAULT_PERIOD * 2).await;
        assert_eq!(trims(), 2);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), looping)
            .await
            .expect("the loop ends at shutdown")
            .expect("no panic");
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_pages_go_back_to_the_system() {
        // Many mid-sized blocks, freed but for the last one: without trimming, the pages
        // under the freed ones stay in the heap.
        let mut blocks: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8; 16 << 10]).collect();
        let last = blocks.pop();
        drop(blocks);
        assert!(
            trim(),
            "16 MiB of free blocks below a live one were returned"
        );
        drop(last);
    }
}
