//! Usage history in the state database (schema version 3): the raw event log (`usage_events`:
//! every seat taken, freed and refused, with its time, AppSlot, session, client and site) and
//! the per-minute aggregates (`usage_minutes`: peak seats, seats at the minute's end and
//! refusals, per AppSlot and per AppSlot and site) that reports are computed from.
//!
//! Events are written by the state store's writer thread in the same transactions as the seat
//! changes ([`Recorder::apply`]), never on the engine's lock. The writer keeps the current
//! seats per AppSlot and site in memory (read back at start from the latest aggregates) so
//! that each event updates one aggregate row per series. Refreshes are not events. Old rows
//! are pruned ([`Retention`]): raw events after `event_days`, aggregates after `history_days`,
//! and the raw log never holds more than [`MAX_EVENTS`] rows, so the file's size is bounded.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};
use serde::{Deserialize, Serialize};

use super::schema::to_sql;

/// At most this many raw events are kept (about 200 bytes each): the oldest go first.
pub const MAX_EVENTS: i64 = 2_000_000;
/// Default for how long per-minute aggregates are kept (`HistoryDays=`).
pub const DEFAULT_HISTORY_DAYS: u32 = 400;
/// Default for how long raw events are kept (`HistoryEventDays=`).
pub const DEFAULT_EVENT_DAYS: u32 = 90;
/// Pruning runs at most this often (in event time).
const PRUNE_EVERY_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;

/// Version 2 to 3 (and part of a new database): the history tables.
pub(super) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS usage_events (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    dongle_key  TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    slot_name   TEXT    NOT NULL,
    session     INTEGER NOT NULL,
    client_addr TEXT    NOT NULL,
    site        TEXT    NOT NULL,
    code        INTEGER,
    taken       INTEGER NOT NULL,
    seat_limit  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_events_at ON usage_events (at_ms);
CREATE TABLE IF NOT EXISTS usage_minutes (
    dongle_key TEXT    NOT NULL,
    slot       INTEGER NOT NULL,
    all_sites  INTEGER NOT NULL,
    site       TEXT    NOT NULL,
    minute     INTEGER NOT NULL,
    slot_name  TEXT    NOT NULL,
    seat_limit INTEGER NOT NULL,
    peak       INTEGER NOT NULL,
    end_level  INTEGER NOT NULL,
    refusals   INTEGER NOT NULL,
    UNIQUE (dongle_key, slot, all_sites, site, minute)
);
CREATE INDEX IF NOT EXISTS usage_minutes_minute ON usage_minutes (minute);
PRAGMA user_version = 3;
";

/// How long history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Per-minute aggregates (the reports).
    pub history_days: u32,
    /// Raw events (the CSV event export).
    pub event_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            history_days: DEFAULT_HISTORY_DAYS,
            event_days: DEFAULT_EVENT_DAYS,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    /// A seat was taken (an identity's first login).
    Login,
    /// A seat was freed by `rLogOut_MatrixNet`.
    Logout,
    /// A seat was freed by `rRelease_MatrixAPI`.
    Release,
    /// A seat was freed because its login was not refreshed in time.
    LoginTimeout,
    /// A seat was freed because its session timed out.
    SessionTimeout,
    /// A seat was freed by an administrator.
    Disconnect,
    /// A session without seats was evicted.
    Evicted,
    /// A login (or a session) was refused; `code` says why (-31: no seat left).
    Refused,
}

impl UsageKind {
    /// The name stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Release => "release",
            Self::LoginTimeout => "login_timeout",
            Self::SessionTimeout => "session_timeout",
            Self::Disconnect => "disconnect",
            Self::Evicted => "evicted",
            Self::Refused => "refused",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Login,
            Self::Logout,
            Self::Release,
            Self::LoginTimeout,
            Self::SessionTimeout,
            Self::Disconnect,
            Self::Evicted,
            Self::Refused,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// When (Unix ms, the server's wall clock).
    pub at_ms: u64,
    /// What.
    pub kind: UsageKind,
    /// The dongle's stable key (empty when the request named no known dongle).
    pub dongle_key: String,
    /// The AppSlot.
    pub slot: u16,
    /// The AppSlot's name.
    pub slot_name: String,
    /// The session.
    pub session: u64,
    /// The client's address.
    pub client_addr: String,
    /// The client's site (relay PROXY header); `None` for direct clients.
    pub site: Option<String>,
    /// For refusals: the error code answered.
    pub code: Option<i32>,
    /// Seats taken in the AppSlot after the event.
    pub taken: u32,
    /// The AppSlot's limit.
    pub limit: u32,
}

/// One aggregate series: an AppSlot (`site: None`, all clients; stored with `all_sites = 1`)
/// or an AppSlot at one site (`Some("")` for direct clients).
type SeriesKey = (String, u16, Option<String>);

/// The writer's history state: seats in use per series, and when it last pruned.
pub(super) struct Recorder {
    retention: Retention,
    levels: HashMap<SeriesKey, u32>,
    last_prune_ms: u64,
}

impl Recorder {
    /// Reads the seats in use per series back from the latest aggregates.
    pub(super) fn load(conn: &Connection, retention: Retention) -> rusqlite::Result<Self> {
        let mut stmt = conn.prepare(
            "SELECT m.dongle_key, m.slot, m.all_sites, m.site, m.end_level FROM usage_minutes m \
             WHERE m.minute = (SELECT max(minute) FROM usage_minutes l WHERE \
             l.dongle_key = m.dongle_key AND l.slot = m.slot AND l.all_sites = m.all_sites \
             AND l.site = m.site)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u16>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
            ))
        })?;
        let mut levels = HashMap::new();
        for row in rows {
            let (dongle, slot, all_sites, site, level) = row?;
            levels.insert((dongle, slot, (!all_sites).then_some(site)), level);
        }
        Ok(Self {
            retention,
            levels,
            last_prune_ms: 0,
        })
    }

    /// Writes one event and updates its aggregates.
    pub(super) fn apply(&mut self, tx: &Transaction<'_>, e: &UsageEvent) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO usage_events (at_ms, kind, dongle_key, slot, slot_name, session, \
             client_addr, site, code, taken, seat_limit) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            to_sql(e.at_ms),
            e.kind.as_str(),
            e.dongle_key,
            e.slot,
            e.slot_name,
            to_sql(e.session),
            e.client_addr,
            e.site.as_deref().unwrap_or(""),
            e.code,
            e.taken,
            e.limit,
        ])?;
        if e.dongle_key.is_empty() {
            // No AppSlot to aggregate under (the request named no known dongle).
            return Ok(());
        }
        let minute = to_sql(e.at_ms / 60_000);
        let refused = u32::from(e.kind == UsageKind::Refused);
        let slot_key = (e.dongle_key.clone(), e.slot, None);
        let site_key = (
            e.dongle_key.clone(),
            e.slot,
            Some(e.site.clone().unwrap_or_default()),
        );
        // The AppSlot's count comes with the event (the engine's, authoritative); a site's is
        // counted here.
        let site_before = self.levels.get(&site_key).copied().unwrap_or(0);
        let site_after = match e.kind {
            UsageKind::Login => site_before.saturating_add(1),
            UsageKind::Refused => site_before,
            _ => site_before.saturating_sub(1),
        }
        .min(e.taken);
        let slot_before = self.levels.get(&slot_key).copied().unwrap_or(0);
        for (key, before, after) in [
            (slot_key, slot_before, e.taken),
            (site_key, site_before, site_after),
        ] {
            tx.prepare_cached(
                "INSERT INTO usage_minutes (dongle_key, slot, all_sites, site, minute, \
                 slot_name, seat_limit, peak, end_level, refusals) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (dongle_key, slot, all_sites, site, minute) DO UPDATE SET \
                 slot_name = excluded.slot_name, seat_limit = excluded.seat_limit, \
                 peak = max(peak, excluded.peak), end_level = excluded.end_level, \
                 refusals = refusals + excluded.refusals",
            )?
            .execute(params![
                key.0,
                key.1,
                key.2.is_none(),
                key.2.as_deref().unwrap_or(""),
                minute,
                e.slot_name,
                e.limit,
                before.max(after),
                after,
                refused,
            ])?;
            self.levels.insert(key, after);
        }
        if e.taken == 0 {
            // Seats dropped at a restart (dongle gone) were never freed by an event: an
            // AppSlot with no seat has none at any site.
            for (key, level) in &mut self.levels {
                if key.0 == e.dongle_key && key.1 == e.slot {
                    *level = 0;
                }
            }
        }
        Ok(())
    }

    /// Deletes what retention no longer keeps, at most once an hour (of event time `now_ms`).
    pub(super) fn prune(&mut self, tx: &Transaction<'_>, now_ms: u64) -> rusqlite::Result<()> {
        if now_ms < self.last_prune_ms.saturating_add(PRUNE_EVERY_MS) {
            return Ok(());
        }
        self.last_prune_ms = now_ms;
        let days = |d: u32| now_ms.saturating_sub(u64::from(d).saturating_mul(DAY_MS));
        tx.execute(
            "DELETE FROM usage_events WHERE at_ms < ?1",
            params![to_sql(days(self.retention.event_days))],
        )?;
        tx.execute(
            "DELETE FROM usage_events WHERE id <= (SELECT max(id) FROM usage_events) - ?1",
            params![MAX_EVENTS],
        )?;
        tx.execute(
            "DELETE FROM usage_minutes WHERE minute < ?1",
            params![to_sql(days(self.retention.history_days) / 60_000)],
        )?;
        Ok(())
    }
}
