//! Components a command runs in tasks of their own beside its main work (the server's admin
//! endpoint and in-process relay-listener, the demo's whole stack): each is remembered under
//! its name, and stopping waits for all of them within one deadline, logging the ones that
//! failed or did not finish in time.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// A component's task and its name for the log.
pub type Task = (&'static str, JoinHandle<anyhow::Result<()>>);

/// The running components of a command.
#[derive(Default)]
pub struct Tasks(Vec<Task>);

impl Tasks {
    /// Runs one component in its own task, remembered under `name`.
    pub fn spawn<E>(
        &mut self,
        name: &'static str,
        run: impl Future<Output = Result<(), E>> + Send + 'static,
    ) where
        E: std::error::Error + Send + Sync + 'static,
    {
        let task = tokio::spawn(async move { Ok(run.await?) });
        self.0.push((name, task));
    }

    /// Remembers a component that was spawned elsewhere.
    pub fn push(&mut self, name: &'static str, task: JoinHandle<anyhow::Result<()>>) {
        self.0.push((name, task));
    }

    /// Waits for every task, the last started first, until `limit` has passed (the caller has
    /// cancelled them already); what is still running then is abandoned.
    pub async fn join_within(self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        for (name, task) in self.0.into_iter().rev() {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("{name} stopped with an error: {e:#}"),
                Ok(Err(e)) => tracing::warn!("{name} task failed: {e}"),
                Err(_) => tracing::warn!("{name} still running after {limit:?}; abandoned"),
            }
        }
    }
}
