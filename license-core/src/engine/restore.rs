//! Putting persisted sessions and logins back after a restart (the server's state store reads them).
//! A restored session keeps its id, key material, client and packet number, so its client's
//! next call authenticates as if nothing happened. A session that had logged in gets a fresh
//! session timeout, as does every restored login (refreshes are never written, so the store
//! cannot know its last call; a fresh timeout can only keep a live client's seat). A session
//! that never logged in keeps its original expiry — its start plus the pre-login timeout —
//! so an `Init` flood does not come back with a restart; one already expired is refused. Restored logins take their seats again exactly once (per
//! identity, as for live logins), and nothing is reported to the observers: the store already
//! holds it.

use super::Engine;
use super::appslot::{Login, LoginKey, Seat, SeatKey};
use super::session::{ClientInfo, Session};
use crate::clock::Instant;
use crate::ids::{SessionId, SessionSecret};

/// A session as persisted.
#[derive(Debug, Clone)]
pub struct RestoredSession {
    /// Its id.
    pub id: SessionId,
    /// Its client.
    pub client: ClientInfo,
    /// Its key material.
    pub secret: SessionSecret,
    /// The highest packet number accepted when it was persisted: requests must carry more.
    pub last_packet: u64,
    /// When it started (in the past of `now`, for the status page).
    pub started: Instant,
    /// Whether it ever logged in (else it keeps its pre-login expiry from `started`).
    pub logged_in: bool,
}

/// Why a persisted record was not restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RestoreRefusal {
    /// A session with this id exists already.
    #[error("the session exists already")]
    Duplicate,
    /// `MaxSessions` is reached.
    #[error("MaxSessions reached")]
    TooManySessions,
    /// The login's session was not restored.
    #[error("its session is gone")]
    NoSession,
    /// The dongle is unknown or not present.
    #[error("the dongle is not present")]
    NoDongle,
    /// The dongle has no such AppSlot any more.
    #[error("the AppSlot is not configured")]
    NoSlot,
    /// The AppSlot is full (its limit was lowered).
    #[error("no seat left in the AppSlot")]
    NoSeat,
    /// A session that never logged in whose pre-login timeout passed.
    #[error("it never logged in and its pre-login timeout has passed")]
    Expired,
}

impl Engine {
    /// Restores a session: with a fresh session timeout from `now` if it had logged in, else
    /// with its original pre-login expiry.
    ///
    /// # Errors
    /// The id is taken, `MaxSessions` is reached, or it never logged in and has expired.
    pub fn restore_session(
        &mut self,
        restored: RestoredSession,
        now: Instant,
    ) -> Result<(), RestoreRefusal> {
        if self.sessions.contains_key(&restored.id) {
            return Err(RestoreRefusal::Duplicate);
        }
        if self.sessions.len() >= self.settings.max_sessions {
            return Err(RestoreRefusal::TooManySessions);
        }
        let mut session = Session::new(restored.client, restored.secret, restored.last_packet, now);
        session.started = restored.started.min(now);
        session.logged_in = restored.logged_in;
        if !session.logged_in {
            // Its last call is not known; its start is: the expiry it had, never a later one.
            session.last_access = session.started;
            if session.expired(now, &self.settings) {
                return Err(RestoreRefusal::Expired);
            }
        }
        tracing::info!(session = %restored.id, client = %session.client.addr,
            site = ?session.client.site, "session restored");
        self.insert_session(restored.id, session);
        Ok(())
    }

    /// Restores the login of `session` to AppSlot `slot` of the dongle with key `dongle_key`,
    /// taking its seat again, with a fresh login timeout from `now`. `first` is when it first
    /// logged in (for the status page).
    ///
    /// # Errors
    /// The session, the dongle, the AppSlot or a seat is missing.
    pub fn restore_login(
        &mut self,
        session: SessionId,
        dongle_key: &str,
        slot: u16,
        first: Instant,
        now: Instant,
    ) -> Result<(), RestoreRefusal> {
        let ip = self
            .sessions
            .get(&session)
            .map(|s| s.client.ip())
            .ok_or(RestoreRefusal::NoSession)?;
        let dongle = self
            .dongles
            .entries
            .iter()
            .position(|e| e.desc.key == dongle_key && e.present())
            .ok_or(RestoreRefusal::NoDongle)?;
        if !self.dongles.entries[dongle].slots.contains_key(&slot) {
            return Err(RestoreRefusal::NoSlot);
        }
        let key = LoginKey {
            dongle,
            slot,
            session,
        };
        if self.logins.contains_key(&key) {
            return Ok(());
        }
        let identity = self.settings.mode.identity(session, ip);
        let seat_key = SeatKey {
            dongle,
            slot,
            identity,
        };
        if let Some(seat) = self.seats.get_mut(&seat_key) {
            seat.sessions.push(session);
        } else {
            if !self.take_seat(dongle, slot, now) {
                return Err(RestoreRefusal::NoSeat);
            }
            self.seats.insert(
                seat_key,
                Seat {
                    sessions: vec![session],
                },
            );
        }
        self.logins.insert(
            key,
            Login {
                identity,
                first: first.min(now),
                last_refresh: now,
            },
        );
        if let Some(s) = self.slot_mut(dongle, slot) {
            s.note_refresh(now);
        }
        self.mark_logged_in(session);
        if let Some(s) = self.sessions.get_mut(&session) {
            s.logins.push((dongle, slot));
        }
        tracing::info!(session = %session, "{} {} seat restored for {identity}",
            self.dongle_name(dongle), self.slot_name(dongle, slot));
        Ok(())
    }
}
