//! What the engine reports as it changes: seat events (a seat taken or freed, a login refused
//! for want of a seat: for logs, metrics and usage history) to a [`SeatObserver`], and state changes (sessions opened and closed, login records
//! added and removed: what a restart must restore) to a [`StateObserver`] — the persistence
//! layer (the server's state store). Refreshing a login or a session changes neither, so a refresh never
//! causes a write. The engine builds and sends both here.

use super::Engine;
use super::appslot::SeatKey;
use super::identity::Identity;
use super::session::ClientInfo;
use crate::ids::{SessionId, SessionSecret};

/// Whether a seat was taken or freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatEventKind {
    /// An identity's first login took a seat.
    Taken,
    /// An identity's last login record went.
    Freed,
    /// A login was refused with -31: the AppSlot does not exist or has no seat left (nothing
    /// changed; usage history counts these).
    Refused,
}

/// Why a login record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// `rLogOut_MatrixNet`.
    Logout,
    /// Not refreshed within `LoginTimeOut`.
    LoginTimeout,
    /// The session timed out.
    SessionTimeout,
    /// `rRelease_MatrixAPI`.
    Release,
    /// An administrator disconnected the session or the login.
    Admin,
    /// A session that never logged in was evicted to make room for a new one.
    Evicted,
}

/// One seat change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatEvent {
    /// Taken or freed.
    pub kind: SeatEventKind,
    /// Dongle identity.
    pub dongle_key: String,
    /// Dongle name.
    pub dongle: String,
    /// AppSlot number.
    pub slot: u16,
    /// AppSlot name.
    pub slot_name: String,
    /// The seat's holder.
    pub identity: Identity,
    /// The session whose login caused it.
    pub session: SessionId,
    /// That session's client (address and site), when the session is known.
    pub client: Option<ClientInfo>,
    /// For `Freed`: why.
    pub reason: Option<RemovalReason>,
    /// Seats taken after the change.
    pub taken: u32,
    /// The slot's limit.
    pub limit: u32,
}

/// Receives seat events, synchronously, inside the engine's lock: keep it quick (queue the
/// event to a task).
pub trait SeatObserver: Send {
    /// Called after each seat change.
    fn on_seat_event(&mut self, event: &SeatEvent);
}

impl<F: FnMut(&SeatEvent) + Send> SeatObserver for F {
    fn on_seat_event(&mut self, event: &SeatEvent) {
        self(event);
    }
}

/// A change of what the engine must remember across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// A session was opened (`rInit_MatrixAPI`).
    SessionOpened {
        /// The session.
        id: SessionId,
        /// Its client.
        client: ClientInfo,
        /// Its key material (the store keeps it so the client can go on after a restart).
        secret: SessionSecret,
        /// The highest packet number accepted so far.
        last_packet: u64,
    },
    /// A session ended (release, timeout, administrator), with its login records.
    SessionClosed {
        /// The session.
        id: SessionId,
    },
    /// A session logged in to an AppSlot (its first login there; refreshes are not reported).
    LoginAdded {
        /// The session.
        session: SessionId,
        /// The dongle's stable key.
        dongle_key: String,
        /// The AppSlot.
        slot: u16,
        /// The session's highest packet number accepted so far (the login's).
        last_packet: u64,
    },
    /// A login record went (logout, timeout, administrator).
    LoginRemoved {
        /// The session.
        session: SessionId,
        /// The dongle's stable key.
        dongle_key: String,
        /// The AppSlot.
        slot: u16,
    },
}

/// Receives state changes, synchronously, inside the engine's lock: keep it quick (queue the
/// change to a writer).
pub trait StateObserver: Send {
    /// Called after each change.
    fn on_state_change(&mut self, change: StateChange);
}

impl<F: FnMut(StateChange) + Send> StateObserver for F {
    fn on_state_change(&mut self, change: StateChange) {
        self(change);
    }
}

/// Telling the observers.
impl Engine {
    pub(super) fn report(&mut self, change: StateChange) {
        if let Some(observer) = self.state_observer.as_mut() {
            observer.on_state_change(change);
        }
    }

    pub(super) fn emit(
        &mut self,
        kind: SeatEventKind,
        seat: SeatKey,
        session: SessionId,
        reason: Option<RemovalReason>,
    ) {
        let (taken, limit) = self
            .dongles
            .entries
            .get(seat.dongle)
            .and_then(|e| e.slots.get(&seat.slot))
            .map_or((0, 0), |s| (s.taken, s.limit));
        let event = SeatEvent {
            kind,
            dongle_key: self
                .dongles
                .entries
                .get(seat.dongle)
                .map_or_else(String::new, |e| e.desc.key.clone()),
            dongle: self.dongle_name(seat.dongle),
            slot: seat.slot,
            slot_name: self.slot_name(seat.dongle, seat.slot),
            identity: seat.identity,
            session,
            client: self.sessions.get(&session).map(|s| s.client.clone()),
            reason,
            taken,
            limit,
        };
        // Who, behind the seat holder: the client address and site (from a PROXY header when
        // the relay carried the connection).
        let client = event
            .client
            .as_ref()
            .map_or_else(String::new, |c| match &c.site {
                Some(site) => format!(" (client {} at site {site})", c.addr),
                None => format!(" (client {})", c.addr),
            });
        // The manual's server log shows `AppSlot x(y)` with y the seats taken.
        match (kind, reason) {
            // Already logged where it was refused.
            (SeatEventKind::Refused, _) => {}
            (_, None) => tracing::info!(
                "{} {}({}/{}) seat taken by {}{client}",
                event.dongle,
                event.slot_name,
                taken,
                limit,
                event.identity
            ),
            (_, Some(reason)) => tracing::info!(
                ?reason,
                "{} {}({}/{}) seat freed by {}{client}",
                event.dongle,
                event.slot_name,
                taken,
                limit,
                event.identity
            ),
        }
        if let Some(observer) = self.observer.as_mut() {
            observer.on_seat_event(&event);
        }
    }
}
