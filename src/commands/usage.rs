//! The `usage` subcommand: the usage history's summary (or raw events) for a period, read from
//! a state database directly and read-only — the report `GET /api/usage` gives, for a server
//! that is running (its file can be read while it writes) or stopped, or a copy of its file.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use license_core::clock::system_unix_millis;
use license_server::usage::{self, UsageQuery, period, render};
use tokio_util::sync::CancellationToken;

const USAGE_HELP: &str = "\
Print how many seats each AppSlot used over a period, per site: the peak and average seats in\n\
use, the hours every seat was taken, and the logins refused (docs/usage-reports.md).\n\
\n\
Dates are UTC days (2026-12-01; as --to, the whole day is included) or RFC 3339 times\n\
(2026-12-01T08:00:00+01:00). Without --from, the 30 days before --to; without --to, until now.\n\
\n\
The file is only read, never changed: run it while the server is running (as the server's\n\
user: the file and its -wal and -shm companions are readable by it only) or on a copy.\n\
\n\
Examples:\n\
\n\
  dongle-relay usage --state-db /var/lib/dongle-relay/mxnet2-state.db --from 2026-11-01 --to 2026-11-30\n\
\n\
  dongle-relay usage --state-db state.db --format csv --events > november-events.csv";

/// Options of `dongle-relay usage`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = USAGE_HELP)]
pub struct Args {
    /// The license server's state database (`StateDb=`).
    #[arg(long, value_name = "FILE")]
    pub state_db: PathBuf,
    /// Start of the period (a date or an RFC 3339 time).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period (a date, included, or an RFC 3339 time, excluded).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this AppSlot number.
    #[arg(long)]
    pub slot: Option<u16>,
    /// Only this site (an empty value: clients that came directly).
    #[arg(long)]
    pub site: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print the raw events instead of the summary (as CSV for `--format table`).
    #[arg(long)]
    pub events: bool,
}

/// How the report is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An aligned table.
    Table,
    /// CSV.
    Csv,
    /// JSON.
    Json,
}

/// The validated options of `usage`.
#[derive(Debug)]
pub struct Loaded {
    state_db: PathBuf,
    query: UsageQuery,
    format: Format,
    events: bool,
}

/// Reads the period.
///
/// # Errors
/// A bound that is not a date or time, or an empty period.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let now_ms = system_unix_millis();
    let (from_ms, to_ms) = period::period(args.from.as_deref(), args.to.as_deref(), now_ms)?;
    Ok(Loaded {
        state_db: args.state_db,
        query: UsageQuery {
            from_ms,
            to_ms,
            slot: args.slot,
            site: args.site,
            now_ms,
        },
        format: args.format,
        events: args.events,
    })
}

/// Produces the report's text.
///
/// # Errors
/// The file cannot be read as a state database with history.
pub fn report(l: &Loaded) -> anyhow::Result<String> {
    let conn = usage::open_file(&l.state_db)?;
    let read = |e| usage::read_error(&l.state_db, e);
    Ok(if l.events {
        let events = usage::events(&conn, &l.query).map_err(read)?;
        match l.format {
            Format::Json => serde_json::to_string_pretty(&events)?,
            Format::Table | Format::Csv => render::events_csv(&events)?,
        }
    } else {
        let summary = usage::summary(&conn, &l.query).map_err(read)?;
        match l.format {
            Format::Json => serde_json::to_string_pretty(&summary)?,
            Format::Csv => render::summary_csv(&summary)?,
            Format::Table => render::summary_table(&summary),
        }
    })
}

/// Prints the report.
///
/// # Errors
/// As [`report`], or stdout is closed.
pub async fn run(l: Loaded, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let text = tokio::task::spawn_blocking(move || report(&l))
        .await
        .context("the report stopped")??;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_dates_are_refused_before_anything_is_read() {
        let args: Args = crate::commands::parse_args(&[
            "--state-db",
            "/nonexistent/state.db",
            "--from",
            "yesterday",
        ])
        .expect("args");
        let err = load(args).expect_err("bad date");
        assert!(
            err.to_string().contains("from=\"yesterday\" is not a date"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let args: Args =
            crate::commands::parse_args(&["--state-db", "/nonexistent/state.db"]).expect("args");
        let err = report(&load(args).expect("load")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/state.db"), "{err}");
    }
}
