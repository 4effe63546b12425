//! The identifiers the engine and the wire protocol share: a session's id and secret, and the
//! (dongle, user code, AppSlot) triple a login concerns. They live below both so that the
//! protocol never imports the engine.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A session identifier (never 0: 0 means "no session" on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SessionId(u64);

impl SessionId {
    /// Wraps a raw id; `None` for 0.
    pub fn new(raw: u64) -> Option<Self> {
        (raw != 0).then_some(Self(raw))
    }

    /// A fresh random id.
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::new(rand::random()) {
                return id;
            }
        }
    }

    /// The raw value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for SessionId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        u64::from_str_radix(s, 16)
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| format!("not a session id: {s:?}"))
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for SessionId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The per-session secret agreed at init (the manual's "session password"). The engine only
/// stores it; the protocol derives its keys from it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret([u8; 64]);

impl SessionSecret {
    /// Wraps key material.
    pub fn new(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The key material.
    pub fn expose(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// Which login an operation concerns: dongle number (DngNr), user code and AppSlot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRef {
    /// DngNr (1 = first present dongle; 0 is taken as 1).
    pub dng_nr: u16,
    /// The user code the dongle must answer to.
    pub user_code: i32,
    /// AppSlot number.
    pub slot: u16,
}

impl SlotRef {
    /// AppSlot `slot` of the first dongle, any user code.
    pub fn first_dongle(slot: u16) -> Self {
        Self {
            dng_nr: 1,
            user_code: 0,
            slot,
        }
    }
}
