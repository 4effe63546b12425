//! Opening sessions (`rInit_MatrixAPI`) and making room for them. `Init` needs no credential,
//! so a session must not be a resource one client can hoard:
//!
//! - an address (IPv6: a /64) holds at most `max_sessions_per_address` sessions, a site (from
//!   a relay's PROXY header) at most `max_sessions_per_site`; a holder at its quota makes room
//!   by losing **its own** oldest never-logged-in session, and is refused (-303) only when all
//!   of its sessions hold logins;
//! - when the server holds `max_sessions`, timed-out sessions are swept, then the address with
//!   the most never-logged-in sessions (not the caller's) loses its oldest one — unless the
//!   caller holds at least as many itself: then the caller is the flood, and it is refused;
//! - a session that never logged in times out after `prelogin_timeout` without calls (see
//!   [`super::session`]), far sooner than `SessionTimeOut`.
//!
//! Logged-in sessions are never evicted: whoever holds a seat keeps it.

use super::quota::quota_key;
use super::session::{ClientInfo, Session};
use super::{Engine, RemovalReason, StateChange};
use crate::clock::Instant;
use crate::error::ErrorCode;
use crate::ids::{SessionId, SessionSecret};

impl Engine {
    /// `rInit_MatrixAPI`: opens a session for `client` with the agreed `secret`; requests must
    /// then carry packet numbers above `first_packet`. May evict a never-logged-in session to
    /// make room (see the module documentation).
    ///
    /// # Errors
    /// -303 when no room can be made for this client.
    pub fn open_session(
        &mut self,
        client: ClientInfo,
        secret: SessionSecret,
        first_packet: u64,
        now: Instant,
    ) -> Result<SessionId, ErrorCode> {
        self.make_room(&client, now)?;
        let id = loop {
            let id = SessionId::random();
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        tracing::info!(session = %id, client = %client.addr, site = ?client.site,
            name = %client.name, "session opened");
        self.report(StateChange::SessionOpened {
            id,
            client: client.clone(),
            secret: secret.clone(),
            last_packet: first_packet,
        });
        self.insert_session(id, Session::new(client, secret, first_packet, now));
        Ok(id)
    }

    /// Adds a session to the table and to the quota index.
    pub(super) fn insert_session(&mut self, id: SessionId, session: Session) {
        self.index.add(session.filed(id), !session.logged_in);
        self.sessions.insert(id, session);
    }

    /// Removes a session from the table and the quota index (its logins must be gone).
    pub(super) fn remove_session(&mut self, id: SessionId) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        self.index.remove(session.filed(id));
        Some(session)
    }

    /// Marks a session as logged in: the long timeout applies, and it is never evicted.
    pub(super) fn mark_logged_in(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if !session.logged_in {
            session.logged_in = true;
            self.index.logged_in(session.filed(id));
        }
    }

    /// Makes room for one more session of `client`, or says why there is none.
    fn make_room(&mut self, client: &ClientInfo, now: Instant) -> Result<(), ErrorCode> {
        let addr = quota_key(client.addr.ip());
        let per_addr = self.settings.max_sessions_per_address;
        if let Some(h) = self.index.addr(addr)
            && h.sessions >= per_addr
        {
            let own = h.oldest_prelogin();
            self.evict_or_refuse(own, "its address is at its session quota", client)?;
        }
        if let Some(site) = client.site.as_deref()
            && let Some(h) = self.index.site(site)
            && h.sessions >= self.settings.max_sessions_per_site
        {
            let own = h.oldest_prelogin();
            self.evict_or_refuse(own, "its site is at its session quota", client)?;
        }
        if self.sessions.len() < self.settings.max_sessions {
            return Ok(());
        }
        self.sweep(now);
        if self.sessions.len() < self.settings.max_sessions {
            return Ok(());
        }
        let mine = self.index.addr(addr).map_or(0, |h| h.prelogin.len());
        let victim = self
            .index
            .largest_prelogin_holder(addr)
            .filter(|&(_, theirs)| theirs > mine)
            .map(|(id, _)| id);
        self.evict_or_refuse(victim, "MaxSessions is reached", client)
    }

    fn evict_or_refuse(
        &mut self,
        victim: Option<SessionId>,
        why: &str,
        client: &ClientInfo,
    ) -> Result<(), ErrorCode> {
        let Some(victim) = victim else {
            tracing::info!(client = %client.addr, site = ?client.site,
                "init refused: {why} and no session can make room");
            return Err(ErrorCode::TooManySessions);
        };
        tracing::info!(session = %victim, client = %client.addr, site = ?client.site,
            "never-logged-in session evicted: {why}");
        self.end_session(victim, RemovalReason::Evicted);
        Ok(())
    }

    /// Checks the quota index against the session table (tests).
    #[cfg(test)]
    pub(crate) fn index_counts(&self, addr: std::net::IpAddr) -> (usize, usize) {
        self.index
            .addr(quota_key(addr))
            .map_or((0, 0), |h| (h.sessions, h.prelogin.len()))
    }
}
