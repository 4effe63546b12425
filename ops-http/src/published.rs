//! A component's published state: the one value its tasks update and anyone may read or wait
//! on (`wait_for(|s| s.listening)`), so tests and status pages observe a condition instead of
//! polling for it. The relay's, the listener's and the proxy's status handles each hold one.

use tokio::sync::watch;

/// State updated in place and observed through snapshots or waits.
#[derive(Debug)]
pub struct Published<T> {
    state: watch::Sender<T>,
}

impl<T: Default> Default for Published<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> Published<T> {
    /// Publishes `initial`.
    pub fn new(initial: T) -> Self {
        Self {
            state: watch::Sender::new(initial),
        }
    }

    /// Changes the state in place and wakes whoever waits on it.
    pub fn update(&self, change: impl FnOnce(&mut T)) {
        self.state.send_modify(change);
    }

    /// Reads a part of the state without copying the rest.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.state.borrow())
    }
}

impl<T: Clone> Published<T> {
    /// A copy of the state now.
    pub fn snapshot(&self) -> T {
        self.state.borrow().clone()
    }

    /// Waits until `condition` holds and returns that state. Pair it with a timeout.
    ///
    /// # Cancel safety
    /// Cancel safe: it only observes.
    pub async fn wait_for(&self, mut condition: impl FnMut(&T) -> bool) -> T {
        let mut rx = self.state.subscribe();
        match rx.wait_for(|s| condition(s)).await {
            Ok(s) => s.clone(),
            // The sender lives in `self`, so it cannot be gone while we wait.
            Err(_) => self.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiters_see_updates_made_after_they_started() {
        let p = Arc::new(Published::<u32>::default());
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait_for(|n| *n >= 2).await }
        });
        p.update(|n| *n += 1);
        p.update(|n| *n += 1);
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(seen, 2);
        assert_eq!(p.snapshot(), 2);
        assert!(p.read(|n| *n == 2));
        // Already true: returns at once.
        assert_eq!(p.wait_for(|n| *n == 2).await, 2);
    }
}
