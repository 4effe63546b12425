//! Logins and the AppSlot seats they hold (sections 6.6 and 6.7): the first login of an
//! identity takes a seat, later ones refresh it; a seat is freed with its identity's last
//! login record; a full AppSlot reclaims its timed-out logins before refusing (-31); and the
//! seat counts and holders `rDongle_GetLoginCount(Ex)` answer.

use std::collections::HashMap;

use super::appslot::{self, Login, LoginKey, Seat, SeatKey};
use super::{Engine, Identity, RemovalReason, SeatEventKind, StateChange};
use crate::clock::Instant;
use crate::error::ErrorCode;
use crate::ids::{SessionId, SlotRef};

impl Engine {
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

    pub(super) fn remove_login(&mut self, key: LoginKey, reason: RemovalReason) {
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
    pub(super) fn take_seat(&mut self, dongle: usize, slot: u16, now: Instant) -> bool {
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
    pub(super) fn sweep_slot(&mut self, dongle: usize, slot: u16, now: Instant) {
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
    pub(super) fn recompute_oldest(&mut self, only: Option<(usize, u16)>) {
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

    pub(super) fn slot_mut(&mut self, dongle: usize, slot: u16) -> Option<&mut appslot::AppSlot> {
        self.dongles.entries.get_mut(dongle)?.slots.get_mut(&slot)
    }

    pub(super) fn left(&self, dongle: usize, slot: u16) -> i32 {
        self.dongles
            .entries
            .get(dongle)
            .and_then(|e| e.slots.get(&slot))
            .map_or(0, appslot::AppSlot::left)
    }
}
