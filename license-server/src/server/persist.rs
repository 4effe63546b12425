//! Wiring the state database to the engine at start: open it, restore sessions (fresh session
//! timeouts), restore logins once the dongles are known (at once for simulated dongles, after
//! the first USB scan otherwise), forget what cannot be restored, then let the engine report
//! every later change to it (and, through the server's seat observer, every seat event to its
//! usage history).

use std::path::Path;
use std::time::Duration;

use crate::store::{PersistedLogin, Retention, StateStore, StoreError};
use license_core::clock::Instant;
use license_core::engine::{Engine, RestoredSession, StateChange};

/// The instant `wall_ms` was, given that `now` is `now_ms` (clamped to `now`).
fn instant_of(wall_ms: u64, now: Instant, now_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(now_ms.saturating_sub(wall_ms)))
        .unwrap_or(now)
}

/// Opens the database at `path` and restores its sessions into `engine`; its logins too,
/// unless `dongles_later` (they are returned, to be restored by [`restore_logins`] after the
/// first dongle scan).
pub(super) fn attach(
    path: &Path,
    retention: Retention,
    engine: &mut Engine,
    now_ms: u64,
    dongles_later: bool,
) -> Result<(StateStore, Option<Vec<PersistedLogin>>), StoreError> {
    let now = Instant::now();
    let (store, persisted) = StateStore::open_with(path, retention)?;
    let mut sessions = 0;
    let mut dropped = u64::try_from(persisted.skipped).unwrap_or(u64::MAX);
    for s in persisted.sessions {
        let id = s.id;
        let restored = RestoredSession {
            id,
            client: s.client,
            secret: s.secret,
            last_packet: s.last_packet,
            started: instant_of(s.started_ms, now, now_ms),
            logged_in: s.logged_in,
        };
        match engine.restore_session(restored, now) {
            Ok(()) => sessions += 1,
            Err(why) => {
                tracing::warn!(session = %id, "persisted session not restored: {why}");
                store.record(StateChange::SessionClosed { id });
                dropped += 1;
            }
        }
    }
    store.note_restored(sessions, 0, dropped);
    let pending = if dongles_later {
        Some(persisted.logins)
    } else {
        restore_logins(&store, engine, persisted.logins, now_ms, now);
        None
    };
    engine.set_state_observer(store.observer());
    tracing::info!(
        "state database {}: {sessions} session(s) restored{}",
        path.display(),
        if pending.is_some() {
            "; their logins follow the first dongle scan"
        } else {
            ""
        }
    );
    Ok((store, pending))
}

/// Restores persisted logins (their seats taken again, fresh login timeouts); those whose
/// session, dongle, AppSlot or seat is gone are dropped from the database.
pub(super) fn restore_logins(
    store: &StateStore,
    engine: &mut Engine,
    logins: Vec<PersistedLogin>,
    now_ms: u64,
    now: Instant,
) {
    let (mut restored, mut dropped) = (0, 0);
    for login in logins {
        let first = instant_of(login.first_ms, now, now_ms);
        match engine.restore_login(login.session, &login.dongle_key, login.slot, first, now) {
            Ok(()) => restored += 1,
            Err(why) => {
                tracing::warn!(session = %login.session, dongle = %login.dongle_key,
                    slot = login.slot, "persisted login not restored: {why}");
                store.record(StateChange::LoginRemoved {
                    session: login.session,
                    dongle_key: login.dongle_key,
                    slot: login.slot,
                });
                dropped += 1;
            }
        }
    }
    store.note_restored(0, restored, dropped);
    tracing::info!("{restored} login(s) restored with their seats ({dropped} dropped)");
}
