//! The license engine: sessions, AppSlot seats and their timeouts, with the semantics of
//! sections 6.1–6.8 of the MxNet2 remote API manual. Pure logic: no sockets, no clock of its own
//! (every operation takes `now`), no crypto (it stores each session's secret and lets the
//! caller check a request against it in [`Engine::authorize`]).
//!
//! Expiry is exact from the callers' point of view: a session or login whose timeout has
//! passed is treated as gone by the next operation that touches it, a full AppSlot reclaims
//! expired seats before answering -31, counts and snapshots sweep first, and the server also
//! calls [`Engine::sweep`] periodically so idle state does not linger.
//!
//! Sessions cost something to open: per-address and per-site quotas, a short timeout for
//! sessions that never logged in, and eviction of those instead of refusing everyone
//! ([`admission`]).

mod admission;
mod appslot;
mod dongles;
mod events;
mod identity;
mod quota;
mod restore;
mod session;
mod snapshot;

use std::collections::HashMap;
use std::time::Duration;

pub use appslot::AppSlotDef;
pub use dongles::DongleChange;
pub use events::{
    RemovalReason, SeatEvent, SeatEventKind, SeatObserver, StateChange, StateObserver,
};
pub use identity::{Identity, LicenseMode, canonical_ip};
pub use quota::quota_key;
pub use restore::{RestoreRefusal, RestoredSession};
pub use session::ClientInfo;

pub use crate::ids::{SessionId, SessionSecret, SlotRef};
pub use snapshot::{AppSlotStatus, DongleStatus, LoginStatus, SessionStatus, StatusSnapshot};

use appslot::{Login, LoginKey, Seat, SeatKey};
use dongles::DongleTable;
use session::Session;

use crate::clock::Instant;
use crate::dongle::DongleDescriptor;
use crate::error::ErrorCode;

/// Default `LoginTimeOut` (section 6.6).
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `SessionTimeOut` (section 6.3).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default bound on open sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// The server's default timeout of a session that never logged in: `LoginTimeOut`'s default,
/// so a client that waits for a free seat and asks again within that time keeps its session
/// (section 6.6 gives a login that long), while sessions opened and never used (an `Init`
/// flood) go twelve times sooner than `SessionTimeOut`. [`EngineSettings::default`] keeps the
/// manual's semantics (no shorter timeout); the server's configuration sets this one.
pub const DEFAULT_PRELOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Default bound on the sessions of one client address (IPv6: one /64). A terminal server
/// runs many processes from one address, hence not smaller.
pub const DEFAULT_MAX_SESSIONS_PER_ADDRESS: usize = 1_000;
/// Default bound on the sessions of one site (reported by a relay's PROXY header).
pub const DEFAULT_MAX_SESSIONS_PER_SITE: usize = 5_000;

/// The engine's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// `LoginTimeOut`: a login not refreshed for longer is removed.
    pub login_timeout: Duration,
    /// `SessionTimeOut`: a session without calls for longer is removed with its logins.
    pub session_timeout: Duration,
    /// `SessionBaseLicense`.
    pub mode: LicenseMode,
    /// At most this many sessions (see [`admission`] for what happens at the bound).
    pub max_sessions: usize,
    /// A session that never logged in is removed after this long without calls (capped at
    /// `session_timeout`).
    pub prelogin_timeout: Duration,
    /// At most this many sessions per client address (IPv6: per /64).
    pub max_sessions_per_address: usize,
    /// At most this many sessions per site.
    pub max_sessions_per_site: usize,
}

/// The manual's settings (section 3.1 defaults, no pre-login timeout), with the default
/// session quotas.
impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            mode: LicenseMode::Session,
            max_sessions: DEFAULT_MAX_SESSIONS,
            // The manual's semantics: every session has SessionTimeOut.
            prelogin_timeout: DEFAULT_SESSION_TIMEOUT,
            max_sessions_per_address: DEFAULT_MAX_SESSIONS_PER_ADDRESS,
            max_sessions_per_site: DEFAULT_MAX_SESSIONS_PER_SITE,
        }
    }
}

/// The license engine.
#[derive(Default)]
pub struct Engine {
    settings: EngineSettings,
    sessions: HashMap<SessionId, Session>,
    /// Sessions per address and site, for the quotas and eviction.
    index: quota::SessionIndex,
    dongles: DongleTable,
    logins: HashMap<LoginKey, Login>,
    seats: HashMap<SeatKey, Seat>,
    observer: Option<Box<dyn SeatObserver>>,
    state_observer: Option<Box<dyn StateObserver>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.settings)
            .field("sessions", &self.sessions.len())
            .field("logins", &self.logins.len())
            .field("seats", &self.seats.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with no dongle yet (see [`Engine::update_dongles`]).
    pub fn new(settings: EngineSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Reports seat changes to `observer` (logs, metrics, tests).
    pub fn set_observer(&mut self, observer: Box<dyn SeatObserver>) {
        self.observer = Some(observer);
    }

    /// Reports state changes (sessions, login records) to `observer` (persistence).
    pub fn set_state_observer(&mut self, observer: Box<dyn StateObserver>) {
        self.state_observer = Some(observer);
    }

    /// Sets which dongles are present, with their names and AppSlot limits. Seats taken on a
    /// dongle that stays known are kept.
    pub fn update_dongles(&mut self, found: Vec<DongleDescriptor>) -> Vec<DongleChange> {
        self.dongles.update(found)
    }

    // ----- sessions -----

    /// Checks a request of session `id` before it runs: the session must exist and not have
    /// timed out (else -105), `check` must accept it given the session secret (it verifies the
    /// request's authentication and time-stamp and returns the error to answer), and `packet`
    /// must be above every packet number accepted so far (else -115). Only when all pass does
    /// the session's last access and packet number change.
    ///
    /// # Errors
    /// The first failed check.
    pub fn authorize(
        &mut self,
        id: SessionId,
        packet: u64,
        now: Instant,
        check: impl FnOnce(&SessionSecret) -> Result<(), ErrorCode>,
    ) -> Result<(), ErrorCode> {
        self.live_session(id, now)?;
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(ErrorCode::SessionPassword)?;
        check(&session.secret)?;
        if packet <= session.last_packet {
            return Err(ErrorCode::PacketNumber);
        }
        session.last_packet = packet;
        session.last_access = now;
        Ok(())
    }

    /// The secret of a live session (for authenticating answers).
    pub fn session_secret(&self, id: SessionId) -> Option<&SessionSecret> {
        self.sessions.get(&id).map(|s| &s.secret)
    }

    /// `rRelease_MatrixAPI`: ends the session at once and logs it out of everything.
    ///
    /// # Errors
    /// -105 for an unknown or expired session.
    pub fn release(&mut self, id: SessionId, now: Instant) -> Result<(), ErrorCode> {
        self.live_session(id, now)?;
        self.end_session(id, RemovalReason::Release);
        Ok(())
    }

    /// Administrator action: ends a session and its logins.
    ///
    /// # Errors
    /// -105 for an unknown session.
    pub fn disconnect_session(&mut self, id: SessionId) -> Result<(), ErrorCode> {
        if !self.sessions.contains_key(&id) {
            return Err(ErrorCode::SessionPassword);
        }
        self.end_session(id, RemovalReason::Admin);
        Ok(())
    }

    /// The number of open sessions (expired ones included until swept).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    // ----- logins -----

    /// `rLogIn_MatrixNet`: the first login of an identity takes a seat, later ones refresh.
    /// Returns the number of seats left.
    ///
    /// # Errors
    /// -105 unknown session, -102 no such dongle, -31 no seat left.
    pub fn login(&mut self, id: SessionId, at: SlotRef, now: Instant) -> Result<i32, ErrorCode> {
        let ip = self.live_session(id, now)?;
        let dongle = self.dongles.resolve(at.dng_nr, at.user_code)?;
        let key = LoginKey {
            dongle,
            slot: at.slot,
            session: id,
        };
        let timeout = self.settings.login_timeout;
        if let Some(login) = self.logins.get_mut(&key) {
            if !login.expired(now, timeout) {
                login.last_refresh = now;
                tracing::debug!(session = %id, slot = at.slot, "login refreshed");
                return Ok(self.left(dongle, at.slot));
            }
            self.remove_login(key, RemovalReason::LoginTimeout);
        }
        let identity = self.settings.mode.identity(id, ip);
        let seat_key = SeatKey {
            dongle,
            slot: at.slot,
            identity,
        };
        if !self.dongles.entries[dongle].slots.contains_key(&at.slot) {
            self.emit(SeatEventKind::Refused, seat_key, id, None);
            return Err(ErrorCode::NoLicense);
        }
        if let Some(seat) = self.seats.get_mut(&seat_key) {
            // IP licence: another process of this address holds the seat; keep this one's
            // record too (section 6.7b).
            seat.sessions.push(id);
        } else {
            if !self.take_seat(dongle, at.slot, now) {
                tracing::info!(session = %id, dongle = %self.dongle_name(dongle),
                    slot = %self.slot_name(dongle, at.slot), "login refused: no licence left");
                self.emit(SeatEventKind::Refused, seat_key, id, None);
                return Err(ErrorCode::NoLicense);
            }
            self.seats.insert(seat_key, Seat { sessions: vec![id] });
            self.emit(SeatEventKind::Taken, seat_key, id, None);
        }
        self.logins.insert(
            key,
            Login {
                identity,
                first: now,
                last_refresh: now,
            },
        );
        if let Some(slot) = self.slot_mut(dongle, at.slot) {
            slot.note_refresh(now);
        }
        self.mark_logged_in(id);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.logins.push((dongle, at.slot));
            let last_packet = session.last_packet;
            let dongle_key = self.dongles.entries[dongle].desc.key.clone();
            self.report(StateChange::LoginAdded {
                session: id,
                dongle_key,
                slot: at.slot,
                last_packet,
            });
        }
        Ok(self.left(dongle, at.slot))
    }

    /// `rLogOut_MatrixNet`: removes the session's login record; the seat is freed when it was
    /// the identity's last record. Returns the number of seats left.
    ///
    /// # Errors
    /// -105 unknown session, -102 no such dongle, -11 not logged in (or the login timed out).
    pub fn logout(&mut self, id: SessionId, at: SlotRef, now: Instant) -> Result<i32, ErrorCode> {
        self.live_session(id, now)?;
        let dongle = self.dongles.resolve(at.dng_nr, at.user_code)?;
        let key = LoginKey {
            dongle,
            slot: at.slot,
            session: id,
        };
        let expired = match self.logins.get(&key) {
            None => return Err(ErrorCode::NotLoggedIn),
            Some(login) => login.expired(now, self.settings.login_timeout),
        };
        if expired {
            self.remove_login(key, RemovalReason::LoginTimeout);
            return Err(ErrorCode::NotLoggedIn);
        }
        self.remove_login(key, RemovalReason::Logout);
        Ok(self.left(dongle, at.slot))
    }

    /// Administrator action: removes one login record (freeing its seat if it was the last).
    ///
    /// # Errors
    /// -11 when there is no such login.
    pub fn logout_login(
        &mut self,
        id: SessionId,
        dongle_key: &str,
        slot: u16,
    ) -> Result<(), ErrorCode> {
        let dongle = self
            .dongles
            .entries
            .iter()
            .position(|e| e.desc.key == dongle_key)
            .ok_or(ErrorCode::NotLoggedIn)?;
        let key = LoginKey {
            dongle,
            slot,
            session: id,
        };
        if !self.logins.contains_key(&key) {
            return Err(ErrorCode::NotLoggedIn);
        }
        self.remove_login(key, RemovalReason::Admin);
        Ok(())
    }

    // ----- dongle queries -----

    /// `rDongle_Count`: the number of dongles present.
    ///
    /// # Errors
    /// -102 when there is none.
    pub fn dongle_count(&self) -> Result<i32, ErrorCode> {
        match self.dongles.present_count() {
            0 => Err(ErrorCode::NoDongle),
            n => Ok(i32::try_from(n).unwrap_or(i32::MAX)),
        }
    }

    /// `rDongle_ReadSerNr`.
    ///
    /// # Errors
    /// -102 no such dongle, -302 serial unknown (a USB key without `Sernr=`).
    pub fn read_serial(&self, dng_nr: u16, user_code: i32) -> Result<i32, ErrorCode> {
        let d = self.dongles.resolve(dng_nr, user_code)?;
        self.dongles.entries[d]
            .desc
            .serial
            .ok_or(ErrorCode::Unsupported)
    }

    /// `rDongle_ReadDataEx`: `count` data variables from `fpos` (0-based).
    ///
    /// # Errors
    /// -102 no such dongle, -302 no data (USB key).
    pub fn read_data(
        &self,
        dng_nr: u16,
        user_code: i32,
        fpos: u16,
        count: u16,
    ) -> Result<Vec<i32>, ErrorCode> {
        let d = self.dongles.resolve(dng_nr, user_code)?;
        let desc = &self.dongles.entries[d].desc;
        if !desc.reads_data {
            return Err(ErrorCode::Unsupported);
        }
        let start = usize::from(fpos).min(desc.data.len());
        let end = start
            .saturating_add(usize::from(count))
            .min(desc.data.len());
        Ok(desc.data[start..end].to_vec())
    }

    /// `rDongle_GetLoginCount`: seats taken in the AppSlot.
    ///
    /// # Errors
    /// -102 no such dongle.
    pub fn login_count(&mut self, at: SlotRef, now: Instant) -> Result<i32, ErrorCode> {
        let d = self.dongles.resolve(at.dng_nr, at.user_code)?;
        self.sweep_slot(d, at.slot, now);
        let taken = self.dongles.entries[d]
            .slots
            .get(&at.slot)
            .map_or(0, |s| s.taken);
        Ok(i32::try_from(taken).unwrap_or(i32::MAX))
    }

    /// `rDongle_GetLoginCountEx`: the count and one client name per seat (a session's client
    /// name, or the IP address for IP licences), sorted.
    ///
    /// # Errors
    /// -102 no such dongle.
    pub fn login_names(
        &mut self,
        at: SlotRef,
        now: Instant,
    ) -> Result<(i32, Vec<String>), ErrorCode> {
        let count = self.login_count(at, now)?;
        let d = self.dongles.resolve(at.dng_nr, at.user_code)?;
        let mut names: Vec<String> = self
            .seats
            .keys()
            .filter(|k| k.dongle == d && k.slot == at.slot)
            .map(|k| match k.identity {
                Identity::Ip(ip) => ip.to_string(),
                Identity::Session(s) => self
                    .sessions
                    .get(&s)
                    .map_or_else(|| s.to_string(), |s| s.client.display_name()),
            })
            .collect();
        names.sort();
        Ok((count, names))
    }

    // ----- time -----

    /// Removes every timed-out session (with its logins) and every login not refreshed within
    /// `LoginTimeOut`.
    pub fn sweep(&mut self, now: Instant) {
        let stale: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expired(now, &self.settings))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            tracing::info!(session = %id, "session timed out");
            self.end_session(id, RemovalReason::SessionTimeout);
        }
        let timeout = self.settings.login_timeout;
        let expired: Vec<LoginKey> = self
            .logins
            .iter()
            .filter(|(_, l)| l.expired(now, timeout))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove_login(key, RemovalReason::LoginTimeout);
        }
        self.recompute_oldest(None);
    }

    // ----- internals -----

    /// The client IP of a live session; an expired one is removed (with its logins) and
    /// answers -105.
    fn live_session(&mut self, id: SessionId, now: Instant) -> Result<std::net::IpAddr, ErrorCode> {
        let session = self.sessions.get(&id).ok_or(ErrorCode::SessionPassword)?;
        if session.expired(now, &self.settings) {
            tracing::info!(session = %id, "session timed out");
            self.end_session(id, RemovalReason::SessionTimeout);
            return Err(ErrorCode::SessionPassword);
        }
        Ok(session.client.ip())
    }

    fn end_session(&mut self, id: SessionId, reason: RemovalReason) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let keys: Vec<LoginKey> = session
            .logins
            .iter()
            .map(|&(dongle, slot)| LoginKey {
                dongle,
                slot,
                session: id,
            })
            .collect();
        for key in keys {
            self.remove_login(key, reason);
        }
        self.remove_session(id);
        self.report(StateChange::SessionClosed { id });
        if !matches!(
            reason,
            RemovalReason::SessionTimeout | RemovalReason::Evicted
        ) {
            tracing::info!(session = %id, ?reason, "session closed");
        }
    }

    fn remove_login(&mut self, key: LoginKey, reason: RemovalReason) {
        let Some(login) = self.logins.remove(&key) else {
            return;
        };
        if let Some(entry) = self.dongles.entries.get(key.dongle) {
            let dongle_key = entry.desc.key.clone();
            self.report(StateChange::LoginRemoved {
                session: key.session,
                dongle_key,
                slot: key.slot,
            });
        }
        if let Some(session) = self.sessions.get_mut(&key.session) {
            session
                .logins
                .retain(|&(d, s)| (d, s) != (key.dongle, key.slot));
        }
        let seat_key = SeatKey {
            dongle: key.dongle,
            slot: key.slot,
            identity: login.identity,
        };
        let last = match self.seats.get_mut(&seat_key) {
            Some(seat) => {
                seat.sessions.retain(|s| *s != key.session);
                seat.sessions.is_empty()
            }
            None => false,
        };
        if last {
            self.seats.remove(&seat_key);
            if let Some(slot) = self.slot_mut(key.dongle, key.slot) {
                slot.free();
            }
            self.emit(SeatEventKind::Freed, seat_key, key.session, Some(reason));
        } else {
            tracing::debug!(session = %key.session, slot = key.slot, ?reason,
                "login record removed; the seat stays with its other records");
        }
    }

    /// Takes a seat, first reclaiming timed-out logins of the slot when it is full.
    fn take_seat(&mut self, dongle: usize, slot: u16, now: Instant) -> bool {
        let full = self
            .dongles
            .entries
            .get(dongle)
            .and_then(|e| e.slots.get(&slot))
            .is_none_or(|s| s.taken >= s.limit);
        if full {
            self.sweep_slot(dongle, slot, now);
        }
        self.slot_mut(dongle, slot)
            .is_some_and(appslot::AppSlot::take)
    }

    /// Removes the timed-out logins of one AppSlot (cheap when none can have timed out).
    fn sweep_slot(&mut self, dongle: usize, slot: u16, now: Instant) {
        let timeout = self.settings.login_timeout;
        let may = self
            .dongles
            .entries
            .get(dongle)
            .and_then(|e| e.slots.get(&slot))
            .is_some_and(|s| s.may_have_expired(now, timeout));
        if !may {
            return;
        }
        let expired: Vec<LoginKey> = self
            .logins
            .iter()
            .filter(|(k, l)| k.dongle == dongle && k.slot == slot && l.expired(now, timeout))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove_login(key, RemovalReason::LoginTimeout);
        }
        self.recompute_oldest(Some((dongle, slot)));
    }

    /// Recomputes the oldest-refresh bound of one slot, or of all.
    fn recompute_oldest(&mut self, only: Option<(usize, u16)>) {
        let mut oldest: HashMap<(usize, u16), Instant> = HashMap::new();
        for (k, l) in &self.logins {
            if only.is_some_and(|o| o != (k.dongle, k.slot)) {
                continue;
            }
            oldest
                .entry((k.dongle, k.slot))
                .and_modify(|t| *t = (*t).min(l.last_refresh))
                .or_insert(l.last_refresh);
        }
        for (d, entry) in self.dongles.entries.iter_mut().enumerate() {
            for (n, slot) in &mut entry.slots {
                if only.is_none_or(|o| o == (d, *n)) {
                    slot.oldest_refresh = oldest.get(&(d, *n)).copied();
                }
            }
        }
    }

    fn slot_mut(&mut self, dongle: usize, slot: u16) -> Option<&mut appslot::AppSlot> {
        self.dongles.entries.get_mut(dongle)?.slots.get_mut(&slot)
    }

    fn left(&self, dongle: usize, slot: u16) -> i32 {
        self.dongles
            .entries
            .get(dongle)
            .and_then(|e| e.slots.get(&slot))
            .map_or(0, appslot::AppSlot::left)
    }

    fn dongle_name(&self, dongle: usize) -> String {
        self.dongles
            .entries
            .get(dongle)
            .map_or_else(String::new, |e| e.desc.name.clone())
    }

    fn slot_name(&self, dongle: usize, slot: u16) -> String {
        self.dongles
            .entries
            .get(dongle)
            .and_then(|e| e.slots.get(&slot))
            .map_or_else(|| format!("AppSlot{slot}"), |s| s.name.clone())
    }

    fn report(&mut self, change: StateChange) {
        if let Some(observer) = self.state_observer.as_mut() {
            observer.on_state_change(change);
        }
    }

    fn emit(
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

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod tests;
