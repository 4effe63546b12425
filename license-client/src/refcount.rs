//! The process-wide reference counts of sections 6.5 and 6.7a: the first `rInit_MatrixAPI`
//! opens the session and later ones only count; `rRelease_MatrixAPI` is sent when the count
//! drops to zero; `rLogOut_MatrixNet` likewise per AppSlot; `rReset_MatrixAPI` zeroes
//! everything without telling the server. Every `rLogIn_MatrixNet` is sent (section 6.6: a
//! repeated login is what refreshes the seat) and counted only when the server accepted it, so
//! the counts never claim a seat the server does not hold.

use std::collections::HashMap;

use license_core::engine::SlotRef;

/// What a counted call must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send the request to the server.
    Send,
    /// Only count; answer this value.
    Counted(i32),
}

/// The counters.
#[derive(Debug, Default)]
pub(crate) struct RefCounts {
    init: u32,
    /// Per (DngNr, AppSlot, user code): logins counted, and the seats-left value last heard.
    logins: HashMap<(u16, u16, i32), (u32, i32)>,
}

fn key(at: SlotRef) -> (u16, u16, i32) {
    (at.dng_nr.max(1), at.slot, at.user_code)
}

impl RefCounts {
    /// The init count.
    pub(crate) fn init_count(&self) -> u32 {
        self.init
    }

    /// `rInit_MatrixAPI`: counts; the first call must be sent.
    pub(crate) fn init(&mut self) -> Action {
        self.init += 1;
        if self.init == 1 {
            Action::Send
        } else {
            Action::Counted(i32::try_from(self.init).unwrap_or(i32::MAX))
        }
    }

    /// The first init failed: no session, count back to 0.
    pub(crate) fn init_failed(&mut self) {
        self.init = 0;
    }

    /// `rRelease_MatrixAPI`: `None` without a session; the last release must be sent.
    pub(crate) fn release(&mut self) -> Option<Action> {
        match self.init {
            0 => None,
            1 => Some(Action::Send),
            _ => {
                self.init -= 1;
                Some(Action::Counted(
                    i32::try_from(self.init).unwrap_or(i32::MAX),
                ))
            }
        }
    }

    /// The session is gone (released or reset): all counts to 0.
    pub(crate) fn clear(&mut self) {
        self.init = 0;
        self.logins.clear();
    }

    /// A login reached the server and succeeded with `left` seats left: the process holds the
    /// seat. `add` counts one more reference (`rLogIn_MatrixNet`); a bare refresh adds none
    /// but makes sure the AppSlot counts as held.
    pub(crate) fn logged_in(&mut self, at: SlotRef, left: i32, add: bool) {
        let entry = self.logins.entry(key(at)).or_insert((0, left));
        entry.0 = if add { entry.0 + 1 } else { entry.0.max(1) };
        entry.1 = left;
    }

    /// The server says the process holds no seat in this AppSlot (it freed it after the login
    /// timeout and could not give it back): its references go, so the next logout is sent and
    /// answered -11 as in section 6.6's example.
    pub(crate) fn seat_lost(&mut self, at: SlotRef) {
        self.logins.remove(&key(at));
    }

    /// The server no longer knows the session: it held no seat either. The init count stays
    /// (section 6.5: only a reset or releasing down to zero lets init open a new session).
    pub(crate) fn session_lost(&mut self) {
        self.logins.clear();
    }

    /// The login count of an AppSlot.
    pub(crate) fn login_count(&self, at: SlotRef) -> u32 {
        self.logins.get(&key(at)).map_or(0, |(c, _)| *c)
    }

    /// `rLogOut_MatrixNet`: above one only counts down; at one (or zero, so the server can
    /// answer -11) it must be sent.
    pub(crate) fn logout(&mut self, at: SlotRef) -> Action {
        match self.logins.get_mut(&key(at)) {
            Some((count, left)) if *count > 1 => {
                *count -= 1;
                Action::Counted(*left)
            }
            _ => Action::Send,
        }
    }

    /// A logout was sent: the AppSlot is no longer held.
    pub(crate) fn logged_out(&mut self, at: SlotRef) {
        self.logins.remove(&key(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 6.5: init counts, release sends only at one.
    #[test]
    fn init_release_counting() {
        let mut c = RefCounts::default();
        assert_eq!(c.release(), None);
        assert_eq!(c.init(), Action::Send);
        assert_eq!(c.init(), Action::Counted(2));
        assert_eq!(c.init(), Action::Counted(3));
        assert_eq!(c.release(), Some(Action::Counted(2)));
        assert_eq!(c.release(), Some(Action::Counted(1)));
        assert_eq!(c.release(), Some(Action::Send));
        c.clear();
        assert_eq!(c.init_count(), 0);
    }

    /// Section 6.7a: three threads log in (each login is sent, as a refresh after the first);
    /// only the last logout is sent.
    #[test]
    fn login_logout_counting() {
        let mut c = RefCounts::default();
        let at = SlotRef::first_dongle(5);
        for _ in 0..3 {
            c.logged_in(at, 2, true);
        }
        assert_eq!(c.login_count(at), 3);
        c.logged_in(at, 2, false);
        assert_eq!(c.login_count(at), 3, "a bare refresh adds no reference");
        assert_eq!(c.logout(at), Action::Counted(2));
        assert_eq!(c.logout(at), Action::Counted(2));
        assert_eq!(c.logout(at), Action::Send);
        c.logged_out(at);
        assert_eq!(c.login_count(at), 0);
        // A logout without a login is sent, so the server can answer -11.
        assert_eq!(c.logout(at), Action::Send);
    }

    /// A seat the server no longer holds drops every reference of its AppSlot; a lost session
    /// drops all logins but keeps the init count (section 6.5).
    #[test]
    fn lost_seats_and_sessions_drop_references() {
        let mut c = RefCounts::default();
        let (a, b) = (SlotRef::first_dongle(5), SlotRef::first_dongle(6));
        assert_eq!(c.init(), Action::Send);
        assert_eq!(c.init(), Action::Counted(2));
        c.logged_in(a, 1, true);
        c.logged_in(a, 1, true);
        c.logged_in(b, 4, true);
        c.seat_lost(a);
        assert_eq!(c.login_count(a), 0);
        assert_eq!(c.logout(a), Action::Send, "sent, so the server answers -11");
        assert_eq!(c.login_count(b), 1);
        c.session_lost();
        assert_eq!(c.login_count(b), 0);
        assert_eq!(c.init_count(), 2);
    }
}
