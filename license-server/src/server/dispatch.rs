//! One request to one answer: decode the command, check the session, the request's tag, its
//! time-stamp and packet number (in that order; nothing changes unless all pass), run it on the
//! engine, and build the answer (tagged with the session's answer key whenever the request was
//! authenticated). A call that changed what the state database keeps (init, release, a first
//! login, a logout) also says which change its answer must wait for ([`Handled::durable`]).

use std::time::Duration;

use bytes::Bytes;

use super::connection::Peer;
use super::{Shared, history};
use crate::store::StateStore;
use license_core::clock::Instant;
use license_core::engine::{ClientInfo, Engine, SessionId, SessionSecret};
use license_core::error::ErrorCode;
use license_core::protocol::command::ReplyBody;
use license_core::protocol::crypto::{self, ServerIdentity};
use license_core::protocol::frame::{Frame, Header, TAG_LEN};
use license_core::protocol::{Reply, Request};

/// The answer to a frame whose framing is broken (the connection closes after it).
pub(super) fn framing_error(shared: &Shared, code: ErrorCode) -> Frame {
    let header = Header {
        response: true,
        command: 0,
        session: 0,
        packet: 0,
        timestamp: shared.wall.unix_millis(),
    };
    answer(shared, header, &Reply::error(code), None)
}

/// An answer, and the state change it must wait for.
pub(super) struct Handled {
    /// The answer.
    pub(super) frame: Frame,
    /// The sequence number of the state database's last change made by this call: answer only
    /// once it is committed. `None`: nothing durable changed (a refresh, a query, an error).
    pub(super) durable: Option<u64>,
}

impl From<Frame> for Handled {
    fn from(frame: Frame) -> Self {
        Self {
            frame,
            durable: None,
        }
    }
}

/// The state database's last queued change (0 without a database). Read under the engine's
/// lock, before and after a call: the engine reports changes synchronously, so a larger
/// number after means this call made them.
fn queued(shared: &Shared) -> u64 {
    shared.store.as_ref().map_or(0, StateStore::last_queued)
}

/// Handles one well-framed request.
pub(super) fn handle(shared: &Shared, frame: &Frame, peer: &Peer) -> Handled {
    let now = Instant::now();
    let wall = shared.wall.unix_millis();
    let h = frame.header;
    let reply_header = |session| Header {
        response: true,
        command: h.command,
        session,
        packet: h.packet,
        timestamp: wall,
    };
    // An error answer carries no tag: no session key proves it.
    let refuse = |session, code| -> Handled {
        answer(shared, reply_header(session), &Reply::error(code), None).into()
    };
    if h.response {
        return refuse(h.session, ErrorCode::PacketHeader);
    }
    let request = match Request::decode(h.command, &frame.payload) {
        Ok(r) => r,
        Err(code) => {
            tracing::warn!(peer = %peer.addr, command = h.command, "request rejected: {code}");
            return refuse(h.session, code);
        }
    };
    if let Request::Init {
        client_public,
        client_name,
    } = request
    {
        return match init(shared, &h, client_public, client_name, peer, now, wall) {
            Ok((id, reply, secret, durable)) => Handled {
                frame: answer(shared, reply_header(id.get()), &reply, Some(&secret)),
                durable,
            },
            Err(code) => refuse(0, code),
        };
    }
    let Some(id) = SessionId::new(h.session) else {
        return refuse(0, ErrorCode::SessionPassword);
    };
    let header_bytes = frame.header_bytes();
    let mut engine = shared.engine();
    let before = queued(shared);
    let checked = engine.authorize(id, h.packet, now, |secret| {
        if !crypto::verify(secret, false, &header_bytes, &frame.payload, &frame.tag) {
            return Err(ErrorCode::SessionPassword);
        }
        if let Some(window) = shared.time_window
            && stale(h.timestamp, wall, window)
        {
            return Err(ErrorCode::TimeStamp);
        }
        Ok(())
    });
    let secret = engine.session_secret(id).cloned();
    let reply = match checked {
        Ok(()) => execute(&mut engine, id, &request, now),
        Err(code) => {
            tracing::warn!(session = %id, peer = %peer.addr, "request rejected: {code}");
            Reply::error(code)
        }
    };
    let after = queued(shared);
    drop(engine);
    note_outcome(shared, peer, id, &request, checked, &reply);
    // A request that failed authentication gets an untagged answer: no key proves it.
    let key = match checked {
        Err(ErrorCode::SessionPassword) => None,
        _ => secret.as_ref(),
    };
    Handled {
        frame: answer(shared, reply_header(h.session), &reply, key),
        durable: (after > before).then_some(after),
    }
}

/// Records what an authenticated call was refused: in the usage history a login refused for
/// another reason than a full AppSlot (the engine reports its own -31 refusals as seat
/// events), and in the log every refusal.
fn note_outcome(
    shared: &Shared,
    peer: &Peer,
    id: SessionId,
    request: &Request,
    checked: Result<(), ErrorCode>,
    reply: &Reply,
) {
    if let (Ok(()), Request::Login(at), Some(store)) = (checked, request, &shared.store)
        && let Some(code) = ErrorCode::from_code(reply.value)
        && code != ErrorCode::NoLicense
    {
        history::refusal(store, &shared.wall, peer, Some(id), at.slot, code);
    }
    // Refusals (-31 and the rest) are what `LogLevel=0` exists for: an administrator reads
    // the daily file to learn who was turned away and why.
    match ErrorCode::from_code(reply.value) {
        Some(code) if checked.is_ok() => tracing::warn!(session = %id, peer = %peer.addr,
            command = ?request.command(), "refused: {code}"),
        _ => tracing::debug!(session = %id, command = ?request.command(), value = reply.value,
            "call"),
    }
}

fn init(
    shared: &Shared,
    h: &Header,
    client_public: [u8; 32],
    client_name: String,
    peer: &Peer,
    now: Instant,
    wall: u64,
) -> Result<(SessionId, Reply, SessionSecret, Option<u64>), ErrorCode> {
    if let Some(window) = shared.time_window
        && stale(h.timestamp, wall, window)
    {
        tracing::warn!(peer = %peer.addr, "init rejected: request time-stamp error");
        return Err(ErrorCode::TimeStamp);
    }
    let (server_public, secret) = ServerIdentity::accept(&client_public)?;
    let client = ClientInfo {
        addr: peer.addr,
        site: peer.site.clone(),
        name: client_name,
    };
    let (id, durable) = {
        let mut engine = shared.engine();
        let before = queued(shared);
        let id = engine
            .open_session(client, secret.clone(), h.packet, now)
            .inspect_err(|code| {
                // A session refused (quotas) is a refusal the usage history counts.
                if let Some(store) = &shared.store {
                    history::refusal(store, &shared.wall, peer, None, 0, *code);
                }
            })?;
        let after = queued(shared);
        (id, (after > before).then_some(after))
    };
    let signature = shared
        .identity
        .sign_init(&client_public, &server_public, id, h.packet);
    let reply = Reply {
        value: 0,
        body: ReplyBody::Init {
            server_public,
            server_key: shared.identity.public_key().0,
            signature,
        },
    };
    Ok((id, reply, secret, durable))
}

fn execute(engine: &mut Engine, id: SessionId, request: &Request, now: Instant) -> Reply {
    let value = |r: Result<i32, ErrorCode>| Reply::value(r.unwrap_or_else(ErrorCode::code));
    match request {
        Request::Init { .. } => Reply::error(ErrorCode::UnknownCommand),
        Request::Release => value(engine.release(id, now).map(|()| 0)),
        Request::Login(at) => value(engine.login(id, *at, now)),
        Request::Logout(at) => value(engine.logout(id, *at, now)),
        Request::DongleCount => value(engine.dongle_count()),
        Request::ReadSerNr { dng_nr, user_code } => value(engine.read_serial(*dng_nr, *user_code)),
        Request::LoginCount(at) => value(engine.login_count(*at, now)),
        Request::LoginCountEx(at) => match engine.login_names(*at, now) {
            Ok((count, names)) => Reply {
                value: count,
                body: ReplyBody::Names(names),
            },
            Err(code) => Reply::error(code),
        },
        Request::ReadData {
            dng_nr,
            user_code,
            fpos,
            count,
        } => match engine.read_data(*dng_nr, *user_code, *fpos, *count) {
            Ok(data) => Reply {
                value: i32::try_from(data.len()).unwrap_or(0),
                body: ReplyBody::Data(data),
            },
            Err(code) => Reply::error(code),
        },
    }
}

/// Section 6.8: a request more than `window` older (or newer: the clocks disagree) than the
/// server's clock is rejected.
pub(crate) fn stale(timestamp: u64, now: u64, window: Duration) -> bool {
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    now.abs_diff(timestamp) > window
}

fn answer(shared: &Shared, header: Header, reply: &Reply, key: Option<&SessionSecret>) -> Frame {
    shared.counters.answer(header.command, reply.value);
    let payload: Bytes = reply.encode_payload();
    let tag = match key {
        Some(secret) => crypto::tag(secret, true, &header.to_bytes(payload.len()), &payload),
        None => [0u8; TAG_LEN],
    };
    Frame {
        header,
        payload,
        tag,
    }
}
