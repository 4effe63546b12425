//! One license server per state database: the server holds an advisory lock on
//! `<file>.lock` beside the database for as long as it has the database open, and writes who it
//! is into that file, so a second server on the same database is refused with the holder's
//! name. SQLite itself runs with normal locking (not `EXCLUSIVE`), so readers such as
//! `dongle-relay usage` can read the database while the server writes it; they never take
//! this lock.
//!
//! The lock is byte 0 of the file (fd-lock locks that byte with `LockFileEx` on Windows, where
//! a locked range cannot be read by other processes, and the whole file with `flock` on Unix,
//! which does not stop reads); the holder's description follows it, so a refused opener can
//! read it on both. The file is left in place when the server stops: removing it could race
//! with a server that has just opened it and is about to lock it.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fd_lock::RwLock;

use license_core::clock::system_unix_millis;

/// How often a waiting opener tries the lock again.
const RETRY: Duration = Duration::from_millis(50);
/// The most of a holder's description that is read (it is one line).
const MAX_HOLDER: u64 = 512;

/// The held lock; released when dropped (its file is closed).
pub(super) struct OwnerLock {
    // The write guard was forgotten: the lock lives as long as the file is open.
    _file: RwLock<File>,
}

impl std::fmt::Debug for OwnerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerLock")
    }
}

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// This process, as a refused opener is told.
fn describe_self() -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "dongle-relay".to_owned());
    format!(
        "process {} ({program} {}), since {}",
        std::process::id(),
        env!("CARGO_PKG_VERSION"),
        crate::usage::period::rfc3339(system_unix_millis())
    )
}

/// What the holder of the lock file at `path` wrote about itself, if it can be read.
fn holder(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(1)).ok()?;
    let mut text = String::new();
    file.take(MAX_HOLDER).read_to_string(&mut text).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Takes the lock of the database at `db`, waiting up to `wait` for a previous holder (a server
/// of this process being replaced, or a process that is exiting) to let go.
///
/// # Errors
/// The reason, for the store's error: another server holds the lock (named when it can be
/// read), or the lock file cannot be created.
pub(super) fn acquire(db: &Path, wait: Duration) -> Result<OwnerLock, String> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open its lock file {}: {e}", path.display()))?;
    let mut lock = RwLock::new(file);
    let deadline = Instant::now() + wait;
    loop {
        let refused = match lock.try_write() {
            Ok(mut guard) => {
                describe(&mut guard, &path);
                // The lock lasts as long as the file is open (until `OwnerLock` is dropped),
                // not as long as the guard, which borrows `lock`.
                std::mem::forget(guard);
                None
            }
            Err(e) => Some(e),
        };
        match refused {
            None => return Ok(OwnerLock { _file: lock }),
            Some(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(RETRY);
            }
            Some(e) if e.kind() == ErrorKind::WouldBlock => {
                let by = holder(&path).map_or_else(
                    || "another process".to_owned(),
                    |h| format!("another license server: {h}"),
                );
                return Err(format!(
                    "in use by {by} (lock file {}); one server per state database",
                    path.display()
                ));
            }
            Some(e) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// Writes this process's description after the lock byte. Best effort: the lock is what
/// matters; the description only helps a refused opener say who holds it.
fn describe(file: &mut File, path: &Path) {
    let text = format!("\n{}\n", describe_self());
    let written = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(text.as_bytes()))
        .and_then(|()| file.set_len(text.len() as u64))
        .and_then(|()| file.flush());
    if let Err(e) = written {
        tracing::debug!(
            "lock file {}: cannot describe the holder: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("state.db");
        let first = acquire(&db, Duration::ZERO).expect("first");
        let err = acquire(&db, Duration::from_millis(120)).expect_err("held");
        assert!(
            err.contains(&format!("process {}", std::process::id()))
                && err.contains("state.db.lock"),
            "{err}"
        );
        drop(first);
        let again = acquire(&db, Duration::ZERO).expect("free again");
        drop(again);
    }
}
