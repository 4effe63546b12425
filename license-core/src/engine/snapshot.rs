//! The status snapshot (the manual's "Display Connection Status"): dongles and their AppSlots,
//! sessions and logins, as serde structures for the CLI, a status page or persistence.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Engine;
use super::identity::LicenseMode;
use crate::clock::Instant;
use crate::dongle::{DongleKind, Presence};
use crate::ids::SessionId;

/// Everything the engine holds, at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// When the snapshot was taken (Unix ms).
    pub taken_at_ms: u64,
    /// `SessionBaseLicense`.
    pub license_mode: LicenseMode,
    /// `LoginTimeOut` in seconds.
    pub login_timeout_secs: u64,
    /// `SessionTimeOut` in seconds.
    pub session_timeout_secs: u64,
    /// Every dongle seen.
    pub dongles: Vec<DongleStatus>,
    /// Open sessions.
    pub sessions: Vec<SessionStatus>,
    /// Login records.
    pub logins: Vec<LoginStatus>,
}

impl StatusSnapshot {
    /// The AppSlot `slot` of the first present dongle, if any.
    pub fn slot(&self, slot: u16) -> Option<&AppSlotStatus> {
        self.dongles
            .iter()
            .find(|d| d.number.is_some())
            .and_then(|d| d.slots.iter().find(|s| s.slot == slot))
    }
}

/// One dongle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DongleStatus {
    /// DngNr while present.
    pub number: Option<u16>,
    /// Stable identity.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Serial number, when known.
    pub serial: Option<i32>,
    /// Model.
    pub model: String,
    /// Simulated or USB.
    pub kind: DongleKind,
    /// Present, inaccessible or absent.
    pub presence: Presence,
    /// AppSlots.
    pub slots: Vec<AppSlotStatus>,
}

/// One AppSlot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSlotStatus {
    /// Slot number.
    pub slot: u16,
    /// Display name.
    pub name: String,
    /// Seats.
    pub limit: u32,
    /// Seats taken now.
    pub taken: u32,
    /// Most seats ever taken at once.
    pub peak: u32,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// Session id.
    pub id: SessionId,
    /// Client address.
    pub client_addr: SocketAddr,
    /// Client site, when a relay reported one.
    pub site: Option<String>,
    /// The name the client gave.
    pub client_name: String,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// Its last call (Unix ms).
    pub last_access_ms: u64,
}

/// One login record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStatus {
    /// The session that logged in.
    pub session: SessionId,
    /// Dongle name.
    pub dongle: String,
    /// Dongle identity.
    pub dongle_key: String,
    /// AppSlot number.
    pub slot: u16,
    /// AppSlot name.
    pub slot_name: String,
    /// The seat holder (`session …` or `ip …`).
    pub identity: String,
    /// First login (Unix ms).
    pub first_login_ms: u64,
    /// Last refresh (Unix ms).
    pub last_refresh_ms: u64,
}

impl Engine {
    /// The status snapshot. `wall_ms` is the wall-clock time matching `now`, to express
    /// instants as Unix milliseconds.
    pub fn snapshot(&mut self, now: Instant, wall_ms: u64) -> StatusSnapshot {
        self.sweep(now);
        let to_ms = |t: Instant| {
            let ago = u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(0);
            wall_ms.saturating_sub(ago)
        };
        let mut number = 0u16;
        let dongles = self
            .dongles
            .entries
            .iter()
            .map(|e| DongleStatus {
                number: e.present().then(|| {
                    number += 1;
                    number
                }),
                key: e.desc.key.clone(),
                name: e.desc.name.clone(),
                serial: e.desc.serial,
                model: e.desc.model.clone(),
                kind: e.desc.kind,
                presence: e.desc.presence.clone(),
                slots: e
                    .slots
                    .iter()
                    .map(|(n, s)| AppSlotStatus {
                        slot: *n,
                        name: s.name.clone(),
                        limit: s.limit,
                        taken: s.taken,
                        peak: s.peak,
                    })
                    .collect(),
            })
            .collect();
        let mut sessions: Vec<SessionStatus> = self
            .sessions
            .iter()
            .map(|(id, s)| SessionStatus {
                id: *id,
                client_addr: s.client.addr,
                site: s.client.site.clone(),
                client_name: s.client.name.clone(),
                started_ms: to_ms(s.started),
                last_access_ms: to_ms(s.last_access),
            })
            .collect();
        sessions.sort_by_key(|s| (s.started_ms, s.id));
        let mut logins: Vec<LoginStatus> = self
            .logins
            .iter()
            .map(|(k, l)| LoginStatus {
                session: k.session,
                dongle: self.dongle_name(k.dongle),
                dongle_key: self.dongles.entries[k.dongle].desc.key.clone(),
                slot: k.slot,
                slot_name: self.slot_name(k.dongle, k.slot),
                identity: l.identity.to_string(),
                first_login_ms: to_ms(l.first),
                last_refresh_ms: to_ms(l.last_refresh),
            })
            .collect();
        logins.sort_by(|a, b| {
            (&a.dongle_key, a.slot, a.first_login_ms, a.session).cmp(&(
                &b.dongle_key,
                b.slot,
                b.first_login_ms,
                b.session,
            ))
        });
        StatusSnapshot {
            taken_at_ms: wall_ms,
            license_mode: self.settings.mode,
            login_timeout_secs: self.settings.login_timeout.as_secs(),
            session_timeout_secs: self.settings.session_timeout.as_secs(),
            dongles,
            sessions,
            logins,
        }
    }
}
