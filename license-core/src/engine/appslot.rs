//! AppSlot seats (section 6.6): a slot has a limit; a seat is taken by the first login of an
//! identity and freed when that identity's last login record goes (logout, login timeout,
//! session end). The record of each session's login is kept separately so the IP rules of
//! section 6.7b can count processes sharing one seat.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::identity::Identity;
use crate::clock::Instant;
use crate::ids::SessionId;

/// The configuration of one AppSlot of a dongle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSlotDef {
    /// The slot number.
    pub slot: u16,
    /// The name shown in logs and status (`AppSlotN` when unnamed).
    pub name: String,
    /// How many seats the slot has.
    pub limit: u32,
}

/// The live state of an AppSlot.
#[derive(Debug, Clone)]
pub(crate) struct AppSlot {
    pub(crate) name: String,
    pub(crate) limit: u32,
    pub(crate) taken: u32,
    pub(crate) peak: u32,
    /// No login record of this slot was refreshed before this instant, so none can have expired
    /// before `oldest_refresh + LoginTimeOut`: lets a full slot skip rescanning.
    pub(crate) oldest_refresh: Option<Instant>,
}

impl AppSlot {
    pub(crate) fn new(def: &AppSlotDef) -> Self {
        Self {
            name: def.name.clone(),
            limit: def.limit,
            taken: 0,
            peak: 0,
            oldest_refresh: None,
        }
    }

    /// Seats left (never negative, even if a limit was lowered below the taken count).
    pub(crate) fn left(&self) -> i32 {
        i32::try_from(self.limit.saturating_sub(self.taken)).unwrap_or(i32::MAX)
    }

    /// Takes a seat if one is free.
    pub(crate) fn take(&mut self) -> bool {
        if self.taken >= self.limit {
            return false;
        }
        self.taken += 1;
        self.peak = self.peak.max(self.taken);
        true
    }

    pub(crate) fn free(&mut self) {
        self.taken = self.taken.saturating_sub(1);
    }

    /// Whether some record of this slot may have expired by `now`.
    pub(crate) fn may_have_expired(&self, now: Instant, timeout: Duration) -> bool {
        self.oldest_refresh
            .is_some_and(|oldest| now.saturating_duration_since(oldest) > timeout)
    }

    pub(crate) fn note_refresh(&mut self, at: Instant) {
        self.oldest_refresh = Some(self.oldest_refresh.map_or(at, |o| o.min(at)));
    }
}

/// Where a login record lives: (dongle index, slot, session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LoginKey {
    pub(crate) dongle: usize,
    pub(crate) slot: u16,
    pub(crate) session: SessionId,
}

/// One session's login to one AppSlot.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) identity: Identity,
    pub(crate) first: Instant,
    pub(crate) last_refresh: Instant,
}

impl Login {
    pub(crate) fn expired(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.last_refresh) > timeout
    }
}

/// Which seat: (dongle index, slot, identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SeatKey {
    pub(crate) dongle: usize,
    pub(crate) slot: u16,
    pub(crate) identity: Identity,
}

/// A taken seat and the sessions whose login records keep it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seat {
    pub(crate) sessions: Vec<SessionId>,
}
