//! Seat-changing events, reported to an optional observer (a later persistence layer records
//! them) and to the log.

use super::identity::Identity;
use super::session::SessionId;

/// Whether a seat was taken or freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatEventKind {
    /// An identity's first login took a seat.
    Taken,
    /// An identity's last login record went.
    Freed,
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
