//! Seats that survive a restart: sessions and login records persisted in an embedded SQLite
//! database (`StateDb=`), written on state changes only — a session opened or closed, a login
//! added or removed ([`StateChange`]); refreshes never write — by one writer thread, off the
//! engine's lock. Every change gets a sequence number, and the writer publishes the last one
//! it committed ([`StateStore::durable`]): the server answers a call that changed state only
//! once its change is committed, so an acknowledged seat change survives the process being
//! killed. The writer commits everything queued while its previous commit ran in one
//! transaction (group commit), so concurrent calls share one commit. At start the server reads it back
//! ([`StateStore::open`]) and restores sessions and logins with fresh timeouts, so a running
//! client's next refresh authenticates and keeps its seat, and no seat is counted twice.
//!
//! The file holds each session's key material: it is created with mode 0600 and must be
//! protected like the server's key file. A database that cannot be read as ours (not SQLite,
//! damaged, another schema) is moved aside to `<file>.corrupt-<unix seconds>` with one error
//! line, and the server starts empty. A database held by another server ([`owner`]: one server
//! per file, named in the error), or a folder that cannot be written, leaves the server running
//! without persistence (one error line, and the admin status says so). Other processes may read
//! the file while the server writes it (SQLite's write-ahead log with normal locking): that is
//! how `dongle-relay usage` reports on a running server's history.

mod history;
mod owner;
mod schema;
mod writer;

pub use history::{
    DEFAULT_EVENT_DAYS, DEFAULT_HISTORY_DAYS, MAX_EVENTS, Retention, UsageEvent, UsageKind,
};
pub use owner::lock_path;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde::{Deserialize, Serialize};

use license_core::clock::system_unix_millis;
use license_core::engine::{ClientInfo, SessionId, SessionSecret, StateChange, StateObserver};
use writer::Op;

pub(crate) use schema::{from_sql, to_sql};

/// How long opening waits for a previous owner of the file (this process's previous server,
/// or a process that is exiting) to let go of it.
const OPEN_WAIT: Duration = Duration::from_secs(3);
/// How long a caller waits for its change to be committed before it is answered anyway (a
/// stalled disk must not hang every client; the error is logged).
pub const DURABLE_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// A persisted session.
#[derive(Debug, Clone)]
pub struct PersistedSession {
    /// Its id.
    pub id: SessionId,
    /// Its client.
    pub client: ClientInfo,
    /// Its key material.
    pub secret: SessionSecret,
    /// The highest packet number accepted when it was last written.
    pub last_packet: u64,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// Whether it ever logged in.
    pub logged_in: bool,
}

/// A persisted login record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedLogin {
    /// Its session.
    pub session: SessionId,
    /// The dongle's stable key.
    pub dongle_key: String,
    /// The AppSlot.
    pub slot: u16,
    /// When it was taken (Unix ms).
    pub first_ms: u64,
}

/// What a database held at start.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// Sessions.
    pub sessions: Vec<PersistedSession>,
    /// Login records.
    pub logins: Vec<PersistedLogin>,
    /// Rows that did not decode.
    pub skipped: usize,
}

/// How the database was found at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenedAs {
    /// It existed and was read.
    Existing,
    /// It did not exist and was created.
    Created,
    /// It was unusable, moved aside and replaced by an empty one.
    Replaced,
}

/// The state database cannot be used at all (the server runs without persistence).
#[derive(Debug, Clone, thiserror::Error)]
#[error("state database {path}: {reason}; seats will not survive a restart")]
pub struct StoreError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The store's state for the admin status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// The file.
    pub path: String,
    /// How it was found at start.
    pub opened: OpenedAs,
    /// Where an unusable file was moved.
    pub moved_aside: Option<String>,
    /// What was wrong with it.
    pub problem: Option<String>,
    /// Sessions restored at start.
    pub restored_sessions: u64,
    /// Login records restored at start.
    pub restored_logins: u64,
    /// Records not restored (dongle gone, AppSlot full or removed, undecodable).
    pub dropped: u64,
    /// Changes waiting to be written.
    pub queued: u64,
    /// Changes written since start.
    pub writes: u64,
    /// Failed write transactions since start.
    pub errors: u64,
    /// The last write error.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Stats {
    queued: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    restored_sessions: AtomicU64,
    restored_logins: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn last_error(&self) -> MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The channel to the writer and the last sequence number given out, under one lock so that
/// changes reach the writer in sequence order.
struct Queue {
    tx: mpsc::Sender<Op>,
    seq: u64,
}

struct Inner {
    path: PathBuf,
    opened: OpenedAs,
    moved_aside: Option<PathBuf>,
    problem: Option<String>,
    stats: Arc<Stats>,
    /// `None` once closed.
    tx: Mutex<Option<Queue>>,
    /// The sequence number of the last change queued.
    enqueued: AtomicU64,
    /// The sequence number of the last change whose transaction ended (committed or failed).
    committed: Arc<tokio::sync::watch::Sender<u64>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn queue(&self) -> MutexGuard<'_, Option<Queue>> {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, op: Op) -> bool {
        self.queue().as_ref().is_some_and(|q| q.tx.send(op).is_ok())
    }

    /// Queues a change with the next sequence number.
    fn send_change(&self, change: StateChange, at: u64) -> bool {
        let mut queue = self.queue();
        let Some(q) = queue.as_mut() else {
            return false;
        };
        let seq = q.seq + 1;
        if q.tx.send(Op::Change(change, at, seq)).is_err() {
            return false;
        }
        q.seq = seq;
        self.enqueued.store(seq, Ordering::Release);
        true
    }

    fn close(&self) {
        self.queue().take();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = writer
            && writer.thread().id() != std::thread::current().id()
        {
            let _ = writer.join();
        }
        // Nothing more will be written: nobody waits for it.
        self.committed.send_replace(u64::MAX);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The open state database and its writer (cheap to clone).
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Why opening failed: the file is not usable as ours (move it aside), or it cannot be opened
/// at all (leave it alone).
enum OpenFailure {
    Unusable(String),
    Unavailable(String),
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(
                C::CannotOpen
                | C::PermissionDenied
                | C::ReadOnly
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::DiskFull
                | C::OutOfMemory,
            ) => {
                let busy = matches!(
                    e.sqlite_error_code(),
                    Some(C::DatabaseBusy | C::DatabaseLocked)
                );
                Self::Unavailable(if busy {
                    "locked by another process (a license server of an older version?)".to_owned()
                } else {
                    e.to_string()
                })
            }
            _ => Self::Unusable(e.to_string()),
        }
    }
}

impl StateStore {
    /// Opens (or creates, mode 0600) the database at `path` and reads what it holds. An
    /// unusable file is moved aside and replaced by an empty database (one error line).
    ///
    /// # Errors
    /// The file cannot be created or opened at all, or another process holds it.
    pub fn open(path: &Path) -> Result<(Self, Persisted), StoreError> {
        Self::open_with(path, Retention::default())
    }

    /// [`StateStore::open`], keeping usage history for `retention`.
    ///
    /// # Errors
    /// As [`StateStore::open`].
    pub fn open_with(path: &Path, retention: Retention) -> Result<(Self, Persisted), StoreError> {
        let unavailable = |reason: String| StoreError {
            path: path.display().to_string(),
            reason,
        };
        // The lock comes first: only its holder may create, upgrade or move aside the file.
        create_parent(path).map_err(|e| unavailable(e.to_string()))?;
        let owner = owner::acquire(path, OPEN_WAIT).map_err(unavailable)?;
        let existed = path.exists();
        let (conn, persisted, opened, moved_aside, problem) = match open_db(path, retention) {
            Ok((conn, persisted)) => {
                let opened = if existed {
                    OpenedAs::Existing
                } else {
                    OpenedAs::Created
                };
                (conn, persisted, opened, None, None)
            }
            Err(OpenFailure::Unavailable(reason)) => return Err(unavailable(reason)),
            Err(OpenFailure::Unusable(reason)) => {
                let aside = move_aside(path).map_err(|e| {
                    unavailable(format!(
                        "unusable ({reason}) and cannot be moved aside: {e}"
                    ))
                })?;
                tracing::error!(
                    "state database {} is unusable ({reason}); moved it to {} and starting \
                     with no persisted seats",
                    path.display(),
                    aside.display()
                );
                let (conn, persisted) = open_db(path, retention).map_err(|f| match f {
                    OpenFailure::Unusable(r) | OpenFailure::Unavailable(r) => unavailable(r),
                })?;
                (
                    conn,
                    persisted,
                    OpenedAs::Replaced,
                    Some(aside),
                    Some(reason),
                )
            }
        };
        let db = writer::Db {
            conn: conn.conn,
            history: conn.history,
            _owner: owner,
        };
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let committed = Arc::new(tokio::sync::watch::Sender::new(0));
        let writer = {
            let stats = stats.clone();
            let path = path.to_owned();
            let committed = committed.clone();
            std::thread::Builder::new()
                .name("state-db".to_owned())
                .spawn(move || writer::run(db, &rx, &stats, &path, &committed))
                .map_err(|e| unavailable(format!("cannot start its writer: {e}")))?
        };
        let store = Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                opened,
                moved_aside,
                problem,
                stats,
                tx: Mutex::new(Some(Queue { tx, seq: 0 })),
                enqueued: AtomicU64::new(0),
                committed,
                writer: Mutex::new(Some(writer)),
            }),
        };
        Ok((store, persisted))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues one change for writing (stamped with the current time).
    pub fn record(&self, change: StateChange) {
        let stats = &self.inner.stats;
        stats.queued.fetch_add(1, Ordering::Relaxed);
        if !self.inner.send_change(change, system_unix_millis()) {
            stats.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The sequence number of the last change queued. Read it under the engine's lock before
    /// and after a call: a larger number means the call changed state, and the call is
    /// durable once [`StateStore::durable`] of that number returns.
    pub fn last_queued(&self) -> u64 {
        self.inner.enqueued.load(Ordering::Acquire)
    }

    /// Waits until the change numbered `seq` (and every earlier one) is committed, at most
    /// [`DURABLE_WAIT_LIMIT`]. False when the limit passed (the change may still be written
    /// later). A failed transaction also ends the wait: its error is logged and counted in
    /// the status, and the engine's state (already changed) is what the client is told.
    pub async fn durable(&self, seq: u64) -> bool {
        let mut rx = self.inner.committed.subscribe();
        let wait = rx.wait_for(|committed| *committed >= seq);
        matches!(
            tokio::time::timeout(DURABLE_WAIT_LIMIT, wait).await,
            Ok(Ok(_))
        )
    }

    /// An observer for [`Engine::set_state_observer`](license_core::engine::Engine::set_state_observer)
    /// that queues every change.
    pub fn observer(&self) -> Box<dyn StateObserver> {
        let store = self.clone();
        Box::new(move |change: StateChange| store.record(change))
    }

    /// Queues one usage-history event, written with the next batch of changes. Nobody waits
    /// for it: history is not what an answer must wait for.
    pub fn record_usage(&self, event: UsageEvent) {
        self.inner.send(Op::Usage(event));
    }

    /// Runs `read` on a read-only connection of its own (on a blocking thread), which sees
    /// everything committed so far; the writer goes on committing meanwhile. `None` when the
    /// store is closed or the read could not run.
    ///
    /// # Errors
    /// The file cannot be opened for reading.
    pub async fn read<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> R + Send + 'static,
    ) -> Option<rusqlite::Result<R>> {
        if self.inner.queue().is_none() {
            return None;
        }
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || open_reader(&path).map(|conn| read(&conn)))
            .await
            .ok()
    }

    /// Waits until everything queued so far is written, at most `limit`. False when it was
    /// not (closed, or too slow).
    pub fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = mpsc::sync_channel(1);
        self.inner.send(Op::Flush(done)) && wait.recv_timeout(limit).is_ok()
    }

    /// Writes what is queued and closes the database (later changes are dropped).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Counts what start-up restored and dropped.
    pub fn note_restored(&self, sessions: u64, logins: u64, dropped: u64) {
        let stats = &self.inner.stats;
        stats
            .restored_sessions
            .fetch_add(sessions, Ordering::Relaxed);
        stats.restored_logins.fetch_add(logins, Ordering::Relaxed);
        stats.dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// The store's state.
    pub fn status(&self) -> StoreStatus {
        let inner = &self.inner;
        let stats = &inner.stats;
        StoreStatus {
            path: inner.path.display().to_string(),
            opened: inner.opened,
            moved_aside: inner.moved_aside.as_ref().map(|p| p.display().to_string()),
            problem: inner.problem.clone(),
            restored_sessions: stats.restored_sessions.load(Ordering::Relaxed),
            restored_logins: stats.restored_logins.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            queued: stats.queued.load(Ordering::Relaxed),
            writes: stats.writes.load(Ordering::Relaxed),
            errors: stats.errors.load(Ordering::Relaxed),
            last_error: stats.last_error().clone(),
        }
    }
}

/// Creates the file's folder if needed (before its lock file is created there).
fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// Creates the file with mode 0600 if needed (SQLite would use 0644), and tightens an
/// existing one: it holds session keys.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    {
        options.open(path)?;
        license_core::private_file::restrict(path).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// The connection and the history's state, before the writer takes them.
struct Opened {
    conn: Connection,
    history: history::Recorder,
}

fn open_db(path: &Path, retention: Retention) -> Result<(Opened, Persisted), OpenFailure> {
    create_private(path).map_err(|e| OpenFailure::Unavailable(e.to_string()))?;
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(OPEN_WAIT)?;
    // WAL + FULL: a commit is synced to the disk before it returns, so an acknowledged seat
    // change survives the process being killed and a power loss; group commit (one sync per
    // batch) keeps that affordable. Normal locking (not EXCLUSIVE): readers (`dongle-relay
    // usage`) can read the file while the server writes it; one server per file is the lock
    // file's job ([`owner`]).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(OpenFailure::Unusable(format!("integrity check: {check}")));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => schema::create(&tx)?,
        1 => schema::upgrade_from_1(&tx)?,
        2 => schema::upgrade_from_2(&tx)?,
        schema::VERSION => {}
        other => {
            return Err(OpenFailure::Unusable(format!(
                "schema version {other} is not {} (written by another version?)",
                schema::VERSION
            )));
        }
    }
    let persisted = schema::load(&tx)?;
    let history = history::Recorder::load(&tx, retention)?;
    tx.commit()?;
    Ok((Opened { conn, history }, persisted))
}

/// How long a reader waits when SQLite asks it to (rare with the write-ahead log: readers do
/// not wait for the writer).
const READ_WAIT: Duration = Duration::from_secs(5);

/// A read-only connection to the database at `path` (never creates it), for reports: it can
/// be open while a server writes the file.
///
/// # Errors
/// The file is missing or cannot be opened.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(READ_WAIT)?;
    Ok(conn)
}

/// Renames `path` (and its write-ahead log) to `<path>.corrupt-<unix seconds>`.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = system_unix_millis() / 1000;
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let aside = with(&format!(".corrupt-{stamp}"));
    std::fs::rename(path, &aside)?;
    let wal = with("-wal");
    if wal.exists() {
        let _ = std::fs::rename(&wal, with(&format!(".corrupt-{stamp}-wal")));
    }
    let _ = std::fs::remove_file(with("-shm"));
    Ok(aside)
}

#[cfg(test)]
mod tests;
