//! What the server adds to the usage history ([`crate::store::history`]): every seat event of
//! the engine (taken, freed and why, refused with -31), from its seat observer, and the other
//! refusals the dispatcher answers (a login naming no known dongle, an init over a quota),
//! each stamped with the server's wall clock (injectable, so tests drive a week in paused
//! time) and queued to the state store's writer: nothing is written under the engine's lock.

use license_core::clock::SharedWallClock;
use license_core::engine::{RemovalReason, SeatEvent, SeatEventKind, SeatObserver, SessionId};
use license_core::error::ErrorCode;

use super::connection::Peer;
use crate::store::{StateStore, UsageEvent, UsageKind};

/// The engine's seat observer when the server keeps history: records each event, then passes
/// it to the observer an embedder set ([`super::LicenseServer::set_observer`]).
pub(super) struct Recorder {
    pub(super) store: StateStore,
    pub(super) wall: SharedWallClock,
    pub(super) next: Option<Box<dyn SeatObserver>>,
}

impl SeatObserver for Recorder {
    fn on_seat_event(&mut self, event: &SeatEvent) {
        self.store
            .record_usage(from_seat_event(event, self.wall.unix_millis()));
        if let Some(next) = self.next.as_mut() {
            next.on_seat_event(event);
        }
    }
}

fn kind(event: &SeatEvent) -> UsageKind {
    match (event.kind, event.reason) {
        (SeatEventKind::Taken, _) => UsageKind::Login,
        (SeatEventKind::Refused, _) => UsageKind::Refused,
        (SeatEventKind::Freed, Some(RemovalReason::Logout)) => UsageKind::Logout,
        (SeatEventKind::Freed, Some(RemovalReason::Release)) => UsageKind::Release,
        (SeatEventKind::Freed, Some(RemovalReason::LoginTimeout)) => UsageKind::LoginTimeout,
        (SeatEventKind::Freed, Some(RemovalReason::SessionTimeout)) => UsageKind::SessionTimeout,
        (SeatEventKind::Freed, Some(RemovalReason::Evicted)) => UsageKind::Evicted,
        (SeatEventKind::Freed, Some(RemovalReason::Admin) | None) => UsageKind::Disconnect,
    }
}

fn from_seat_event(event: &SeatEvent, at_ms: u64) -> UsageEvent {
    let kind = kind(event);
    UsageEvent {
        at_ms,
        kind,
        dongle_key: event.dongle_key.clone(),
        slot: event.slot,
        slot_name: event.slot_name.clone(),
        session: event.session.get(),
        client_addr: event
            .client
            .as_ref()
            .map_or_else(String::new, |c| c.addr.to_string()),
        site: event.client.as_ref().and_then(|c| c.site.clone()),
        code: (kind == UsageKind::Refused).then(|| ErrorCode::NoLicense.code()),
        taken: event.taken,
        limit: event.limit,
    }
}

/// Records a refusal the engine did not report as a seat event: `slot` 0 for an init.
pub(super) fn refusal(
    store: &StateStore,
    wall: &SharedWallClock,
    peer: &Peer,
    session: Option<SessionId>,
    slot: u16,
    code: ErrorCode,
) {
    store.record_usage(UsageEvent {
        at_ms: wall.unix_millis(),
        kind: UsageKind::Refused,
        dongle_key: String::new(),
        slot,
        slot_name: String::new(),
        session: session.map_or(0, SessionId::get),
        client_addr: peer.addr.to_string(),
        site: peer.site.clone(),
        code: Some(code.code()),
        taken: 0,
        limit: 0,
    });
}
