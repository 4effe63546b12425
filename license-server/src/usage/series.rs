//! The usage history over time, for the status page's charts (`GET /api/usage?report=series`):
//! the period cut into at most [`MAX_POINTS`] equal buckets and, per AppSlot, the most seats in
//! use in each bucket with the AppSlot's limit, and the refusals; the same per site. Computed
//! from the per-minute figures like the summary ([`super::summary`]), so a chart's highest
//! point is the summary's peak.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{Minute, Rows, UsageQuery, minutes_of, per_slot, period};

/// At most this many buckets per period: a year is drawn per day, a week per half hour.
pub const MAX_POINTS: u64 = 400;

/// Bucket lengths a period is cut into (minutes): the shortest that keeps the buckets within
/// [`MAX_POINTS`], so the axis falls on round times.
const STEPS: [u64; 14] = [
    1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 10_080, 43_200,
];

/// One AppSlot over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSeries {
    /// The dongle's stable key.
    pub dongle_key: String,
    /// The AppSlot number.
    pub slot: u16,
    /// Its name (the latest known).
    pub slot_name: String,
    /// Per bucket: the most seats in use.
    pub peak: Vec<u32>,
    /// Per bucket: its limit.
    pub limit: Vec<u32>,
    /// Per bucket: logins refused.
    pub refusals: Vec<u64>,
    /// The same per site.
    pub sites: Vec<SiteSeries>,
}

/// One site's use of an AppSlot over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSeries {
    /// The site; `None`: clients that came directly.
    pub site: Option<String>,
    /// Per bucket: the most seats its clients held.
    pub peak: Vec<u32>,
    /// Per bucket: its clients' logins refused.
    pub refusals: Vec<u64>,
}

/// The series of a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSeries {
    /// Start (RFC 3339, UTC).
    pub from: String,
    /// End, exclusive (RFC 3339, UTC).
    pub to: String,
    /// The buckets' length (ms).
    pub step_ms: u64,
    /// Each bucket's start (Unix ms), up to the present.
    pub times: Vec<u64>,
    /// Per AppSlot.
    pub slots: Vec<SlotSeries>,
}

/// One series cut into buckets.
struct Buckets {
    peak: Vec<u32>,
    limit: Vec<u32>,
    refusals: Vec<u64>,
}

/// `rows` (sorted by minute, from `from` on) in `n` buckets of `step` minutes; the seats in use
/// carry from `carry` and from each row to the next, as in the summary.
fn buckets(carry: Option<&Minute>, rows: &[Minute], from: u64, step: u64, n: usize) -> Buckets {
    let mut b = Buckets {
        peak: Vec::with_capacity(n),
        limit: Vec::with_capacity(n),
        refusals: Vec::with_capacity(n),
    };
    let mut level = carry.map_or(0, |m| m.end);
    let mut limit = carry.map_or(0, |m| m.limit);
    let mut rows = rows.iter().peekable();
    for i in 1..=n as u64 {
        let end = from + i * step;
        let mut peak = level;
        let mut refusals = 0;
        while let Some(row) = rows.next_if(|r| r.minute < end) {
            peak = peak.max(row.peak);
            limit = row.limit;
            refusals += row.refusals;
            level = row.end;
        }
        b.peak.push(peak);
        b.limit.push(limit);
        b.refusals.push(refusals);
    }
    b
}

/// The series of the period, cut into the shortest round buckets that keep at most
/// [`MAX_POINTS`] of them.
///
/// # Errors
/// The database cannot be read.
pub fn series(conn: &Connection, q: &UsageQuery) -> rusqlite::Result<UsageSeries> {
    let (from, end) = minutes_of(q);
    let minutes = end.saturating_sub(from).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| minutes.div_ceil(*s) <= MAX_POINTS)
        .unwrap_or_else(|| minutes.div_ceil(MAX_POINTS));
    let n = usize::try_from(minutes.div_ceil(step)).unwrap_or(usize::MAX);
    let times = (0..n as u64).map(|i| (from + i * step) * 60_000).collect();
    let cut = |r: &Rows<'_>| buckets(r.carry, r.rows, from, step, n);
    let slots = per_slot(
        conn,
        q,
        |dongle_key, slot, rows| {
            let b = cut(rows);
            SlotSeries {
                dongle_key,
                slot,
                slot_name: rows
                    .latest()
                    .map_or_else(String::new, |m| m.slot_name.clone()),
                peak: b.peak,
                limit: b.limit,
                refusals: b.refusals,
                sites: Vec::new(),
            }
        },
        |site, rows| {
            let b = cut(rows);
            SiteSeries {
                site,
                peak: b.peak,
                refusals: b.refusals,
            }
        },
    )?
    .into_iter()
    .map(|(slot, sites)| SlotSeries { sites, ..slot })
    .collect();
    Ok(UsageSeries {
        from: period::rfc3339(q.from_ms),
        to: period::rfc3339(q.to_ms),
        step_ms: step * 60_000,
        times,
        slots,
    })
}
