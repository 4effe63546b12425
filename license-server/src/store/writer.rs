//! The state database's writer thread: the one writing connection to the file. It commits
//! every seat change and usage event queued while its previous commit ran in one transaction
//! (group commit) and publishes the sequence number of the last change committed. Reports
//! read on connections of their own ([`super::StateStore::read`]), never here: a long report
//! must not delay the commits that answers wait for.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use rusqlite::Connection;

use super::history::{Recorder, UsageEvent};
use super::owner::OwnerLock;
use super::{Stats, schema};
use license_core::engine::StateChange;

/// The writer applies at most this many operations per transaction: in practice everything
/// queued while the previous commit ran; the bound only keeps one transaction from growing
/// without limit under a flood.
const MAX_BATCH: usize = 65_536;

/// What the writer is asked to do.
pub(super) enum Op {
    /// A change, its time (Unix ms) and its sequence number.
    Change(StateChange, u64, u64),
    /// A usage-history event (no sequence number: nobody waits for it).
    Usage(UsageEvent),
    /// Answer once everything before is written.
    Flush(mpsc::SyncSender<()>),
}

/// The open database, the history's running state and the lock that makes this server the
/// file's only writer (last: released once the connection is closed).
pub(super) struct Db {
    pub(super) conn: Connection,
    pub(super) history: Recorder,
    pub(super) _owner: OwnerLock,
}

/// One batch: everything taken from the queue before the next commit.
#[derive(Default)]
struct Batch {
    changes: Vec<(StateChange, u64)>,
    usage: Vec<UsageEvent>,
    flushes: Vec<mpsc::SyncSender<()>>,
    last_seq: Option<u64>,
}

impl Batch {
    fn len(&self) -> usize {
        self.changes.len() + self.usage.len()
    }

    fn add(&mut self, op: Op) {
        match op {
            Op::Change(change, at, seq) => {
                self.changes.push((change, at));
                self.last_seq = Some(seq);
            }
            Op::Usage(event) => self.usage.push(event),
            Op::Flush(done) => self.flushes.push(done),
        }
    }
}

/// Runs until the queue's sender is dropped.
pub(super) fn run(
    mut db: Db,
    rx: &mpsc::Receiver<Op>,
    stats: &Stats,
    path: &Path,
    committed: &tokio::sync::watch::Sender<u64>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = Batch::default();
        let mut next = Some(first);
        while let Some(op) = next {
            batch.add(op);
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if batch.len() > 0 {
            commit(&mut db, &batch, stats, path);
        }
        if let Some(seq) = batch.last_seq {
            committed.send_replace(seq);
        }
        for done in batch.flushes {
            let _ = done.send(());
        }
    }
}

fn commit(db: &mut Db, batch: &Batch, stats: &Stats, path: &Path) {
    let history = &mut db.history;
    let result = db.conn.transaction().and_then(|tx| {
        for (change, at) in &batch.changes {
            schema::apply(&tx, change, *at)?;
        }
        for event in &batch.usage {
            history.apply(&tx, event)?;
        }
        if let Some(latest) = batch.usage.iter().map(|e| e.at_ms).max() {
            history.prune(&tx, latest)?;
        }
        tx.commit()
    });
    let n = u64::try_from(batch.changes.len()).unwrap_or(u64::MAX);
    stats.queued.fetch_sub(n, Ordering::Relaxed);
    let mut last = stats.last_error();
    match result {
        Ok(()) => {
            stats.writes.fetch_add(n, Ordering::Relaxed);
            if last.take().is_some() {
                tracing::info!("state database {}: writing again", path.display());
            }
        }
        Err(e) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            let message = e.to_string();
            // One line per distinct problem, not one per change.
            if last.as_deref() != Some(message.as_str()) {
                tracing::error!(
                    "state database {}: cannot write {} change(s) and {} usage event(s): \
                     {message}; seats changed since may not survive a restart",
                    path.display(),
                    batch.changes.len(),
                    batch.usage.len()
                );
            }
            *last = Some(message);
        }
    }
}
