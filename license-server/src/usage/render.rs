//! Reports as text: CSV (the `csv` crate) for spreadsheets, JSON (serde) for programs, and an
//! aligned table for people at a terminal.
//!
//! Event CSV columns: `time,at_ms,kind,dongle_key,slot,slot_name,session,client,site,code,
//! taken,limit`. Summary CSV columns: `dongle_key,slot,slot_name,scope,site,limit,peak,
//! average,hours_at_limit,refusals`, one `appslot` row per AppSlot followed by its `site` rows
//! (`site` empty: clients that came directly).

use std::fmt::Write as _;

use super::{UsageSummary, period};
use crate::store::UsageEvent;

/// A report that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report: {0}")]
pub struct RenderError(String);

impl From<csv::Error> for RenderError {
    fn from(e: csv::Error) -> Self {
        Self(e.to_string())
    }
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Result<String, RenderError> {
    let bytes = writer
        .into_inner()
        .map_err(|e| RenderError(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| RenderError(e.to_string()))
}

/// The events as CSV.
///
/// # Errors
/// Never in practice (writing to memory).
pub fn events_csv(events: &[UsageEvent]) -> Result<String, RenderError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "time",
        "at_ms",
        "kind",
        "dongle_key",
        "slot",
        "slot_name",
        "session",
        "client",
        "site",
        "code",
        "taken",
        "limit",
    ])?;
    for e in events {
        w.write_record([
            period::rfc3339(e.at_ms),
            e.at_ms.to_string(),
            e.kind.as_str().to_owned(),
            e.dongle_key.clone(),
            e.slot.to_string(),
            e.slot_name.clone(),
            e.session.to_string(),
            e.client_addr.clone(),
            e.site.clone().unwrap_or_default(),
            e.code.map(|c| c.to_string()).unwrap_or_default(),
            e.taken.to_string(),
            e.limit.to_string(),
        ])?;
    }
    finish(w)
}

/// The summary as rows of strings (CSV and table share them).
fn summary_rows(s: &UsageSummary) -> Vec<[String; 10]> {
    let mut rows = Vec::new();
    for slot in &s.slots {
        rows.push([
            slot.dongle_key.clone(),
            slot.slot.to_string(),
            slot.slot_name.clone(),
            "appslot".to_owned(),
            String::new(),
            slot.limit.to_string(),
            slot.peak.to_string(),
            format!("{:.2}", slot.average),
            format!("{:.2}", slot.hours_at_limit),
            slot.refusals.to_string(),
        ]);
        for site in &slot.sites {
            rows.push([
                slot.dongle_key.clone(),
                slot.slot.to_string(),
                slot.slot_name.clone(),
                "site".to_owned(),
                site.site.clone().unwrap_or_default(),
                slot.limit.to_string(),
                site.peak.to_string(),
                format!("{:.2}", site.average),
                String::new(),
                site.refusals.to_string(),
            ]);
        }
    }
    rows
}

const SUMMARY_COLUMNS: [&str; 10] = [
    "dongle_key",
    "slot",
    "slot_name",
    "scope",
    "site",
    "limit",
    "peak",
    "average",
    "hours_at_limit",
    "refusals",
];

/// The summary as CSV.
///
/// # Errors
/// Never in practice (writing to memory).
pub fn summary_csv(s: &UsageSummary) -> Result<String, RenderError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(SUMMARY_COLUMNS)?;
    for row in summary_rows(s) {
        w.write_record(&row)?;
    }
    finish(w)
}

/// The summary as an aligned table.
pub fn summary_table(s: &UsageSummary) -> String {
    let mut out = format!("Usage from {} to {}\n", s.from, s.to);
    if s.slots.is_empty() {
        out.push_str("No usage recorded in this period.\n");
        return out;
    }
    let header = [
        "AppSlot",
        "Name",
        "Site",
        "Limit",
        "Peak",
        "Average",
        "Hours at limit",
        "Refusals",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for r in summary_rows(s) {
        let site = match r[3].as_str() {
            "appslot" => "(all)".to_owned(),
            _ if r[4].is_empty() => "(direct)".to_owned(),
            _ => r[4].clone(),
        };
        table.push([
            format!("{}/{}", r[0], r[1]),
            r[2].clone(),
            site,
            r[5].clone(),
            r[6].clone(),
            r[7].clone(),
            r[8].clone(),
            r[9].clone(),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &table {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            let _ = if i < 3 {
                write!(line, "{cell:<w$}  ")
            } else {
                write!(line, "{cell:>w$}  ")
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
