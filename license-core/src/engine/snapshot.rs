//! The status snapshot (the manual's "Display Connection Status"): dongles and their AppSlots,
//! sessions and logins, as serde structures for the CLI, a status page or persistence.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::identity::LicenseMode;
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
