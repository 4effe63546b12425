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
mod logins;
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
}

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod tests;
