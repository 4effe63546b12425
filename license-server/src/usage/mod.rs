//! Usage reports from the history in the state database ([`crate::store`]): the raw events of
//! a period ([`events`]) and the summary a purchasing decision needs ([`summary`]: per AppSlot
//! and per AppSlot and site, the peak and average seats in use, the hours the AppSlot was at
//! its limit and the refusals). One implementation serves the admin endpoint's
//! `GET /api/usage` (through the server's store) and the `dongle-relay usage` command (on the
//! file directly, [`open_file`]); [`period`] reads the period's bounds and [`render`] writes
//! the answers as CSV, JSON or a table. [`series`] gives the status page's charts the same
//! figures over time.

pub mod period;
pub mod render;
mod series;

pub use series::{MAX_POINTS, SiteSeries, SlotSeries, UsageSeries, series};

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::store::{UsageEvent, UsageKind, from_sql, to_sql};

/// What to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Start (Unix ms, inclusive).
    pub from_ms: u64,
    /// End (Unix ms, exclusive).
    pub to_ms: u64,
    /// Only this AppSlot number.
    pub slot: Option<u16>,
    /// Only this site (`""`: clients that came directly, not through a relay).
    pub site: Option<String>,
    /// The present (Unix ms): the seats in use at the last event are not carried past it.
    pub now_ms: u64,
}

/// One AppSlot's usage over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotUsage {
    /// The dongle's stable key.
    pub dongle_key: String,
    /// The AppSlot number.
    pub slot: u16,
    /// Its name.
    pub slot_name: String,
    /// Its limit (the latest known in the period).
    pub limit: u32,
    /// The most seats in use at once.
    pub peak: u32,
    /// Seats in use on average (per minute: the minute's peak).
    pub average: f64,
    /// Hours during which every seat was in use.
    pub hours_at_limit: f64,
    /// Logins refused.
    pub refusals: u64,
    /// The same per site.
    pub sites: Vec<SiteUsage>,
}

/// One site's use of an AppSlot over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteUsage {
    /// The site; `None`: clients that came directly.
    pub site: Option<String>,
    /// The most seats its clients held at once.
    pub peak: u32,
    /// Seats its clients held on average.
    pub average: f64,
    /// Its clients' logins refused.
    pub refusals: u64,
}

/// The summary of a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// Start (RFC 3339, UTC).
    pub from: String,
    /// End, exclusive (RFC 3339, UTC).
    pub to: String,
    /// Per AppSlot.
    pub slots: Vec<SlotUsage>,
}

/// Why a report cannot be made from a file.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The database cannot be opened or read.
    #[error("state database {path}: {source}")]
    Database {
        /// The file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// The file has no usage history.
    #[error(
        "state database {path} has no usage history (schema version {version}; a server of \
         this version adds it when it opens the file)"
    )]
    NoHistory {
        /// The file.
        path: String,
        /// Its schema version.
        version: i64,
    },
    /// Another process holds the file exclusively (a license server of an older version).
    #[error(
        "state database {0} is locked by another process (a license server of an older \
         version holds its file exclusively): ask it instead (GET /api/usage on its admin \
         endpoint), or upgrade it"
    )]
    Busy(String),
}

/// Opens a state database read-only for reports (never creates or changes one). A running
/// server's file can be read: it keeps writing, and each query sees its last commit.
///
/// # Errors
/// The file is missing, locked exclusively by an older server, or has no history.
pub fn open_file(path: &Path) -> Result<Connection, UsageError> {
    let shown = path.display().to_string();
    let db = |source| UsageError::Database {
        path: shown.clone(),
        source,
    };
    let conn = crate::store::open_reader(path).map_err(db)?;
    let version = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    let version = match version {
        Ok(v) => v,
        Err(e) if is_busy(&e) => return Err(UsageError::Busy(shown)),
        Err(e) => return Err(db(e)),
    };
    if version < 3 {
        return Err(UsageError::NoHistory {
            path: shown,
            version,
        });
    }
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Turns a read error into [`UsageError`] (a busy file is reported as held by a server).
pub fn read_error(path: &Path, e: rusqlite::Error) -> UsageError {
    if is_busy(&e) {
        UsageError::Busy(path.display().to_string())
    } else {
        UsageError::Database {
            path: path.display().to_string(),
            source: e,
        }
    }
}

/// Unsigned values (times, sessions, counts) are stored with the same bits as signed ones.
fn unsigned(v: i64) -> u64 {
    from_sql(v)
}

/// The raw events of the period, oldest first.
///
/// # Errors
/// The database cannot be read.
pub fn events(conn: &Connection, q: &UsageQuery) -> rusqlite::Result<Vec<UsageEvent>> {
    let mut stmt = conn.prepare(
        "SELECT at_ms, kind, dongle_key, slot, slot_name, session, client_addr, site, code, \
         taken, seat_limit FROM usage_events \
         WHERE at_ms >= ?1 AND at_ms < ?2 AND (?3 IS NULL OR slot = ?3) \
         AND (?4 IS NULL OR site = ?4) ORDER BY at_ms, id",
    )?;
    let rows = stmt.query_map(
        params![to_sql(q.from_ms), to_sql(q.to_ms), q.slot, q.site],
        |r| {
            let kind: String = r.get(1)?;
            let site: String = r.get(7)?;
            Ok((
                kind,
                UsageEvent {
                    at_ms: unsigned(r.get(0)?),
                    kind: UsageKind::Refused,
                    dongle_key: r.get(2)?,
                    slot: r.get(3)?,
                    slot_name: r.get(4)?,
                    session: unsigned(r.get(5)?),
                    client_addr: r.get(6)?,
                    site: (!site.is_empty()).then_some(site),
                    code: r.get(8)?,
                    taken: r.get(9)?,
                    limit: r.get(10)?,
                },
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, mut event) = row?;
        // A kind this version does not know (written by a newer one) is left out.
        if let Some(kind) = UsageKind::parse(&kind) {
            event.kind = kind;
            out.push(event);
        }
    }
    Ok(out)
}

/// One aggregate row.
struct Minute {
    minute: u64,
    slot_name: String,
    limit: u32,
    peak: u32,
    end: u32,
    refusals: u64,
}

/// A series: an AppSlot (`site: None`) or an AppSlot at a site; the last row before the
/// period (its seats carry in) and the rows in it.
type Series = BTreeMap<(String, u16, Option<String>), (Option<Minute>, Vec<Minute>)>;

/// What one series adds up to over `[from, end)` minutes.
#[derive(Default)]
struct Totals {
    peak: u32,
    seat_minutes: u64,
    at_limit_minutes: u64,
    refusals: u64,
}

fn totals(carry: Option<&Minute>, rows: &[Minute], from: u64, end: u64) -> Totals {
    let mut t = Totals::default();
    let mut level = carry.map_or(0, |m| m.end);
    let mut limit = carry.map_or(0, |m| m.limit);
    let mut pos = from;
    // Between rows nothing changed: the seats in use stay those at the previous row's end.
    let span = |t: &mut Totals, level: u32, limit: u32, minutes: u64| {
        if minutes == 0 {
            return;
        }
        t.peak = t.peak.max(level);
        t.seat_minutes += u64::from(level) * minutes;
        if limit > 0 && level >= limit {
            t.at_limit_minutes += minutes;
        }
    };
    for row in rows {
        span(&mut t, level, limit, row.minute.saturating_sub(pos));
        limit = row.limit;
        span(&mut t, row.peak, limit, 1);
        t.refusals += row.refusals;
        level = row.end;
        pos = row.minute + 1;
    }
    span(&mut t, level, limit, end.saturating_sub(pos));
    t
}

fn read_minutes(conn: &Connection, from: u64, end: u64) -> rusqlite::Result<Series> {
    let mut series = Series::new();
    let mut stmt = conn.prepare(
        "SELECT dongle_key, slot, all_sites, site, minute, slot_name, seat_limit, peak, \
         end_level, refusals FROM usage_minutes m WHERE (minute >= ?1 AND minute < ?2) OR \
         minute = (SELECT max(minute) FROM usage_minutes l WHERE l.minute < ?1 AND \
         l.dongle_key = m.dongle_key AND l.slot = m.slot AND l.all_sites = m.all_sites \
         AND l.site = m.site) ORDER BY minute",
    )?;
    let rows = stmt.query_map(params![to_sql(from), to_sql(end)], |r| {
        let all_sites: bool = r.get(2)?;
        let site: String = r.get(3)?;
        Ok((
            (r.get::<_, String>(0)?, r.get::<_, u16>(1)?),
            (!all_sites).then_some(site),
            Minute {
                minute: unsigned(r.get(4)?),
                slot_name: r.get(5)?,
                limit: r.get(6)?,
                peak: r.get(7)?,
                end: r.get(8)?,
                refusals: unsigned(r.get(9)?),
            },
        ))
    })?;
    for row in rows {
        let ((dongle, slot), site, minute) = row?;
        let entry = series.entry((dongle, slot, site)).or_default();
        if minute.minute < from {
            entry.0 = Some(minute);
        } else {
            entry.1.push(minute);
        }
    }
    Ok(series)
}

/// The period's first minute and the minute after its last: seats are not carried past the
/// present, and a partial last minute counts whole.
fn minutes_of(q: &UsageQuery) -> (u64, u64) {
    let end_ms = q.to_ms.min(q.now_ms.max(q.from_ms));
    (q.from_ms / 60_000, end_ms.div_ceil(60_000))
}

/// `a / b` rounded to hundredths (reports show two decimals; counts of minutes fit f64's 53
/// bits many times over).
fn hundredths(a: u64, b: u64) -> f64 {
    (a as f64 / b.max(1) as f64 * 100.0).round() / 100.0
}

/// One series as read: the last row before the period and the rows in it.
struct Rows<'a> {
    carry: Option<&'a Minute>,
    rows: &'a [Minute],
}

impl Rows<'_> {
    /// The latest row (the AppSlot's current name and limit).
    fn latest(&self) -> Option<&Minute> {
        self.rows.last().or(self.carry)
    }
}

/// The period's series that `q` keeps, grouped per AppSlot: `slot` makes each AppSlot's entry
/// from its (all sites) series, `site` each of its sites' (`None`: direct clients).
fn per_slot<S, T>(
    conn: &Connection,
    q: &UsageQuery,
    mut slot: impl FnMut(String, u16, &Rows<'_>) -> S,
    mut site: impl FnMut(Option<String>, &Rows<'_>) -> T,
) -> rusqlite::Result<Vec<(S, Vec<T>)>> {
    let (from, end) = minutes_of(q);
    let mut out: Vec<((String, u16), S, Vec<T>)> = Vec::new();
    for ((dongle_key, number, at), (carry, rows)) in read_minutes(conn, from, end)? {
        if q.slot.is_some_and(|s| s != number) {
            continue;
        }
        let rows = Rows {
            carry: carry.as_ref(),
            rows: &rows,
        };
        match at {
            None => {
                let entry = slot(dongle_key.clone(), number, &rows);
                out.push(((dongle_key, number), entry, Vec::new()));
            }
            Some(name) => {
                if q.site.as_ref().is_some_and(|s| *s != name) {
                    continue;
                }
                // Series are sorted: an AppSlot's own series comes before its sites'.
                if let Some((_, _, sites)) = out
                    .iter_mut()
                    .rev()
                    .find(|(key, _, _)| key.0 == dongle_key && key.1 == number)
                {
                    sites.push(site((!name.is_empty()).then_some(name), &rows));
                }
            }
        }
    }
    Ok(out.into_iter().map(|(_, s, sites)| (s, sites)).collect())
}

/// The summary of the period.
///
/// # Errors
/// The database cannot be read.
pub fn summary(conn: &Connection, q: &UsageQuery) -> rusqlite::Result<UsageSummary> {
    let (from, end) = minutes_of(q);
    let minutes = end.saturating_sub(from).max(1);
    let average = |seat_minutes: u64| hundredths(seat_minutes, minutes);
    let totals = |r: &Rows<'_>| totals(r.carry, r.rows, from, end);
    let slots = per_slot(
        conn,
        q,
        |dongle_key, slot, rows| {
            let t = totals(rows);
            let latest = rows.latest();
            SlotUsage {
                dongle_key,
                slot,
                slot_name: latest.map_or_else(String::new, |m| m.slot_name.clone()),
                limit: latest.map_or(0, |m| m.limit),
                peak: t.peak,
                average: average(t.seat_minutes),
                hours_at_limit: hundredths(t.at_limit_minutes, 60),
                refusals: t.refusals,
                sites: Vec::new(),
            }
        },
        |site, rows| {
            let t = totals(rows);
            SiteUsage {
                site,
                peak: t.peak,
                average: average(t.seat_minutes),
                refusals: t.refusals,
            }
        },
    )?;
    Ok(UsageSummary {
        from: period::rfc3339(q.from_ms),
        to: period::rfc3339(q.to_ms),
        slots: slots
            .into_iter()
            .map(|(slot, sites)| SlotUsage { sites, ..slot })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
