//! The server's daily log files (section 6.9): with `LogFileFolder` set, lines go to
//! `mxnetYYYY-MM-DD.log` in that folder, a new file each (UTC) day. [`DailyFile`] is a plain
//! `std::io::Write` that picks the file for the current date at every write, so it can sit
//! behind `tracing_appender::non_blocking`. (tracing-appender's own rolling writer names files
//! `prefix.YYYY-MM-DD.log`, which is not the manual's name.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use license_core::clock::{SharedWallClock, SystemClock, utc_date};

/// The manual's file name prefix.
pub const PREFIX: &str = "mxnet";

/// A writer appending to `{dir}/{prefix}YYYY-MM-DD.log` for the current UTC date.
#[derive(Debug)]
pub struct DailyFile {
    dir: PathBuf,
    prefix: String,
    clock: SharedWallClock,
    current: Option<((i64, u32, u32), File)>,
}

impl DailyFile {
    /// A writer in `dir` (created if missing) using the system clock.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn new(dir: &Path, prefix: &str) -> io::Result<Self> {
        Self::with_clock(dir, prefix, std::sync::Arc::new(SystemClock))
    }

    /// The same with an injected clock (tests).
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn with_clock(dir: &Path, prefix: &str, clock: SharedWallClock) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            clock,
            current: None,
        })
    }

    /// The file name for a date.
    pub fn file_name(prefix: &str, (y, m, d): (i64, u32, u32)) -> String {
        format!("{prefix}{y:04}-{m:02}-{d:02}.log")
    }

    fn file(&mut self) -> io::Result<&mut File> {
        let today = utc_date(self.clock.unix_millis());
        let stale = self.current.as_ref().is_none_or(|(date, _)| *date != today);
        if stale {
            let path = self.dir.join(Self::file_name(&self.prefix, today));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.current = Some((today, file));
        }
        match self.current.as_mut() {
            Some((_, f)) => Ok(f),
            None => Err(io::Error::other("no log file")),
        }
    }
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some((_, f)) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use license_core::clock::WallClock;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug)]
    struct Manual(AtomicU64);

    impl WallClock for Manual {
        fn unix_millis(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn one_file_per_day_with_the_manuals_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(Manual(AtomicU64::new(1_735_689_599_000))); // 2024-12-31 23:59:59
        let mut w = DailyFile::with_clock(dir.path(), PREFIX, clock.clone()).expect("writer");
        w.write_all(b"last line of 2024\n").expect("write");
        clock.0.store(1_735_689_600_000, Ordering::SeqCst); // 2025-01-01
        w.write_all(b"first line of 2025\n").expect("write");
        w.flush().expect("flush");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
        assert_eq!(read("mxnet2024-12-31.log"), "last line of 2024\n");
        assert_eq!(read("mxnet2025-01-01.log"), "first line of 2025\n");
    }
}
