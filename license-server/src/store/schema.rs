//! The state database's schema (version 3) and its seat rows: `sessions` (id, key material,
//! client, highest packet number, start, whether it ever logged in) and `logins` (session,
//! dongle key, AppSlot, first login); version 3 adds the usage history's tables
//! ([`super::history`]). Versions 1 (without `logged_in`) and 2 (without history) are upgraded
//! in place. Reading turns rows back into [`Persisted`]; writing applies a batch of
//! [`StateChange`]s in one transaction.

use std::net::SocketAddr;

use rusqlite::{Connection, Transaction, params};

use super::{Persisted, PersistedLogin, PersistedSession};
use license_core::engine::{ClientInfo, SessionId, SessionSecret, StateChange};

/// The schema version written in `PRAGMA user_version`.
pub(super) const VERSION: i64 = 3;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY,
    secret      BLOB    NOT NULL,
    client_addr TEXT    NOT NULL,
    site        TEXT,
    name        TEXT    NOT NULL,
    last_packet INTEGER NOT NULL,
    started_ms  INTEGER NOT NULL,
    logged_in   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS logins (
    session    INTEGER NOT NULL,
    dongle_key TEXT    NOT NULL,
    slot       INTEGER NOT NULL,
    first_ms   INTEGER NOT NULL,
    PRIMARY KEY (session, dongle_key, slot)
);
PRAGMA user_version = 2;
";

/// Version 1 to 2: whether a session ever logged in. Version 1 did not record it; a session
/// holding a login did, one without is taken as never having logged in (it keeps its
/// pre-login expiry when restored).
const UPGRADE_1_TO_2: &str = "
ALTER TABLE sessions ADD COLUMN logged_in INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET logged_in = EXISTS (SELECT 1 FROM logins WHERE logins.session = sessions.id);
PRAGMA user_version = 2;
";

/// SQLite integers are signed 64-bit: unsigned values (session ids, packet numbers, times) are
/// stored with the same bits and read back the same way.
pub(crate) fn to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

pub(crate) fn from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

/// Creates the tables of a new database.
pub(super) fn create(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(CREATE)?;
    upgrade_from_2(tx)
}

/// Upgrades a version 1 database.
pub(super) fn upgrade_from_1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(UPGRADE_1_TO_2)?;
    upgrade_from_2(tx)
}

/// Upgrades a version 2 database: adds the (empty) history.
pub(super) fn upgrade_from_2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(super::history::CREATE)
}

/// Reads every row. A row that does not decode (it cannot come from this program) is counted
/// in `skipped` and left out.
pub(super) fn load(conn: &Connection) -> rusqlite::Result<Persisted> {
    let mut persisted = Persisted::default();
    let mut stmt = conn.prepare(
        "SELECT id, secret, client_addr, site, name, last_packet, started_ms, logged_in \
         FROM sessions",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, i64>(6)?,
            row.get::<_, bool>(7)?,
        ))
    })?;
    for row in rows {
        let (id, secret, addr, site, name, last_packet, started_ms, logged_in) = row?;
        let id = SessionId::new(from_sql(id));
        let secret: Option<[u8; 64]> = secret.try_into().ok();
        let addr = addr.parse::<SocketAddr>().ok();
        match (id, secret, addr) {
            (Some(id), Some(secret), Some(addr)) => persisted.sessions.push(PersistedSession {
                id,
                client: ClientInfo { addr, site, name },
                secret: SessionSecret::new(secret),
                last_packet: from_sql(last_packet),
                started_ms: from_sql(started_ms),
                logged_in,
            }),
            _ => persisted.skipped += 1,
        }
    }
    let mut stmt = conn.prepare("SELECT session, dongle_key, slot, first_ms FROM logins")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (session, dongle_key, slot, first_ms) = row?;
        match (SessionId::new(from_sql(session)), u16::try_from(slot)) {
            (Some(session), Ok(slot)) => persisted.logins.push(PersistedLogin {
                session,
                dongle_key,
                slot,
                first_ms: from_sql(first_ms),
            }),
            _ => persisted.skipped += 1,
        }
    }
    Ok(persisted)
}

/// Applies one change, stamped `wall_ms` (when it happened).
pub(super) fn apply(
    tx: &Transaction<'_>,
    change: &StateChange,
    wall_ms: u64,
) -> rusqlite::Result<()> {
    match change {
        StateChange::SessionOpened {
            id,
            client,
            secret,
            last_packet,
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO sessions \
                 (id, secret, client_addr, site, name, last_packet, started_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    to_sql(id.get()),
                    &secret.expose()[..],
                    client.addr.to_string(),
                    client.site,
                    client.name,
                    to_sql(*last_packet),
                    to_sql(wall_ms),
                ],
            )?;
        }
        StateChange::SessionClosed { id } => {
            tx.execute(
                "DELETE FROM logins WHERE session = ?1",
                params![to_sql(id.get())],
            )?;
            tx.execute(
                "DELETE FROM sessions WHERE id = ?1",
                params![to_sql(id.get())],
            )?;
        }
        StateChange::LoginAdded {
            session,
            dongle_key,
            slot,
            last_packet,
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO logins (session, dongle_key, slot, first_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![to_sql(session.get()), dongle_key, slot, to_sql(wall_ms)],
            )?;
            tx.execute(
                "UPDATE sessions SET last_packet = ?2, logged_in = 1 WHERE id = ?1",
                params![to_sql(session.get()), to_sql(*last_packet)],
            )?;
        }
        StateChange::LoginRemoved {
            session,
            dongle_key,
            slot,
        } => {
            tx.execute(
                "DELETE FROM logins WHERE session = ?1 AND dongle_key = ?2 AND slot = ?3",
                params![to_sql(session.get()), dongle_key, slot],
            )?;
        }
    }
    Ok(())
}
