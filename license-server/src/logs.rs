//! The server's daily log files (section 6.9): with `LogFileFolder` set, lines go to
//! `mxnetYYYY-MM-DD.log` in that folder, a new file each day. The date is the machine's local
//! date, as the vendor's server names its files (an administrator looks for today's file by
//! the wall calendar); the file for the day is opened at start, so it exists even when nothing
//! has been logged yet. [`DailyFile`] is a plain
//! `std::io::Write` that picks the file for the current date at every write, so it can sit
//! behind `tracing_appender::non_blocking`. (tracing-appender's own rolling writer names files
//! `prefix.YYYY-MM-DD.log`, which is not the manual's name.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike as _, Local, Utc};
use license_core::clock::{SharedWallClock, SystemClock};

/// The manual's file name prefix.
pub const PREFIX: &str = "mxnet";

/// Which calendar names the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dates {
    /// The machine's time zone (the vendor's naming; the default).
    Local,
    /// UTC (tests, and machines whose zone is UTC anyway).
    Utc,
}

impl Dates {
    /// The calendar date `(year, month, day)` of a Unix time in milliseconds.
    pub fn date_of(self, unix_millis: u64) -> (i32, u32, u32) {
        let utc = i64::try_from(unix_millis)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let date = match self {
            Self::Local => utc.with_timezone(&Local).date_naive(),
            Self::Utc => utc.date_naive(),
        };
        (date.year(), date.month(), date.day())
    }
}

/// A writer appending to `{dir}/{prefix}YYYY-MM-DD.log` for the current date.
#[derive(Debug)]
pub struct DailyFile {
    dir: PathBuf,
    prefix: String,
    clock: SharedWallClock,
    dates: Dates,
    current: Option<((i32, u32, u32), File)>,
}

impl DailyFile {
    /// A writer in `dir` (created if missing) using the system clock and local dates; today's
    /// file is created at once.
    ///
    /// # Errors
    /// The folder or today's file cannot be created.
    pub fn new(dir: &Path, prefix: &str) -> io::Result<Self> {
        Self::with_clock(dir, prefix, std::sync::Arc::new(SystemClock), Dates::Local)
    }

    /// The same with an injected clock and calendar (tests).
    ///
    /// # Errors
    /// The folder or today's file cannot be created.
    pub fn with_clock(
        dir: &Path,
        prefix: &str,
        clock: SharedWallClock,
        dates: Dates,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut writer = Self {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            clock,
            dates,
            current: None,
        };
        writer.file()?;
        Ok(writer)
    }

    /// The file name for a date.
    pub fn file_name(prefix: &str, (y, m, d): (i32, u32, u32)) -> String {
        format!("{prefix}{y:04}-{m:02}-{d:02}.log")
    }

    fn file(&mut self) -> io::Result<&mut File> {
        let today = self.dates.date_of(self.clock.unix_millis());
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
        let mut w =
            DailyFile::with_clock(dir.path(), PREFIX, clock.clone(), Dates::Utc).expect("writer");
        // Created at start, before anything is written.
        assert!(dir.path().join("mxnet2024-12-31.log").exists());
        w.write_all(b"last line of 2024\n").expect("write");
        clock.0.store(1_735_689_600_000, Ordering::SeqCst); // 2025-01-01
        w.write_all(b"first line of 2025\n").expect("write");
        w.flush().expect("flush");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
        assert_eq!(read("mxnet2024-12-31.log"), "last line of 2024\n");
        assert_eq!(read("mxnet2025-01-01.log"), "first line of 2025\n");
    }

    #[test]
    fn dates_in_utc_and_in_the_local_zone() {
        assert_eq!(Dates::Utc.date_of(0), (1970, 1, 1));
        assert_eq!(Dates::Utc.date_of(951_782_400_000), (2000, 2, 29));
        assert_eq!(Dates::Utc.date_of(1_735_689_599_999), (2024, 12, 31));
        assert_eq!(Dates::Utc.date_of(1_735_689_600_000), (2025, 1, 1));
        // The local date is the UTC date moved by the zone's offset at that instant.
        let ms = 1_735_689_600_000_u64;
        let at = DateTime::from_timestamp_millis(1_735_689_600_000).expect("time");
        let offset = i64::from(at.with_timezone(&Local).offset().local_minus_utc());
        let shifted = u64::try_from(1_735_689_600_000_i64 + offset * 1000).expect("positive");
        assert_eq!(Dates::Local.date_of(ms), Dates::Utc.date_of(shifted));
    }
}
