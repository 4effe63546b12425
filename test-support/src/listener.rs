//! The listener fixture: a relay-listener running in a task, with its status handle. It takes
//! any [`TargetConnector`], so tests can wrap or replace how the target is reached. Dropping
//! the fixture shuts the listener down (gracefully, in the background).

use relay_listener::{
    ListenerConfig, ListenerError, ListenerStatus, RelayListener, TargetConnector,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Relay;

/// A running relay-listener.
pub struct Listener {
    status: ListenerStatus,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ListenerError>>>,
}

impl Listener {
    /// Runs a listener with the connector its configuration chooses (target and identity
    /// mode). Does not wait for the control channel: use
    /// `status().wait_for(|s| s.connected)` (or [`Listener::connected`]).
    pub fn spawn(config: ListenerConfig) -> Self {
        let listener = RelayListener::new(config).expect("listener configuration");
        Self::run(listener)
    }

    /// Runs a listener that reaches its target through `connector`.
    pub fn spawn_with<C: TargetConnector>(config: ListenerConfig, connector: C) -> Self {
        let listener = RelayListener::new(config)
            .expect("listener configuration")
            .with_connector(connector);
        Self::run(listener)
    }

    /// Runs a listener built by the test (one configured after it was built, such as
    /// [`RelayListener::with_http_target`]).
    pub fn run<C: TargetConnector>(listener: RelayListener<C>) -> Self {
        let status = listener.status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.run(shutdown.clone()));
        Self {
            status,
            shutdown,
            task: Some(task),
        }
    }

    /// [`Listener::spawn`], then waits until the control channel is open.
    pub async fn connected(config: ListenerConfig) -> Self {
        let listener = Self::spawn(config);
        listener.status.wait_for(|s| s.connected).await;
        listener
    }

    /// A connected listener of `relay` bridging to an echo target of its own: the far end of
    /// most tunnel tests.
    pub async fn echo(relay: &Relay) -> Self {
        Self::connected(relay.listener_config(crate::targets::echo().await)).await
    }

    /// The listener's live state.
    pub fn status(&self) -> &ListenerStatus {
        &self.status
    }

    /// Requests shutdown without waiting.
    pub fn cancel(&self) {
        self.shutdown.cancel();
    }

    /// Shuts the listener down and waits until it has drained and stopped.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
