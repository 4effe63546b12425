//! The client library: the r-API calls over the wire protocol, with the process-wide reference
//! counting of sections 6.5 and 6.7a. [`RemoteApi`] is async; [`blocking::RemoteApi`] wraps it
//! for synchronous callers and [`global`] offers the C-like process-wide instance. Several
//! `RemoteApi` values in one process behave like several processes (tests use that).

pub mod blocking;
mod config;
pub mod global;
mod ini;
mod refcount;
mod transport;
pub mod walkthrough;

use std::sync::{Mutex, MutexGuard};

pub use config::{
    ClientConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, Password, SocksConfig,
    default_client_name,
};
pub use ini::INI_FILE;
pub use walkthrough::{Step, StepReport, walkthrough};

use license_core::engine::{SessionId, SessionSecret, SlotRef};
use license_core::error::ErrorCode;
use license_core::protocol::command::ReplyBody;
use license_core::protocol::crypto::{self, ClientHandshake};
use license_core::protocol::frame::{Frame, Header, TAG_LEN};
use license_core::protocol::{Command, Reply, Request};
use refcount::{Action, RefCounts};
use transport::Transport;

/// Codes a server sends without a tag (it could not authenticate the request); accepted
/// untagged. Anything else untagged is refused as -301.
const UNTAGGED_ERRORS: [ErrorCode; 7] = [
    ErrorCode::TooManySessions,
    ErrorCode::SessionPassword,
    ErrorCode::PacketLength,
    ErrorCode::PacketHeader,
    ErrorCode::UnknownCommand,
    ErrorCode::PacketVersion,
    ErrorCode::TimeStamp,
];

/// The session as the client holds it.
#[derive(Debug)]
pub struct ClientSession {
    /// Session id.
    pub id: SessionId,
    /// Session secret.
    pub secret: SessionSecret,
    /// The next packet number to use.
    pub next_packet: u64,
}

impl ClientSession {
    /// Builds a tagged request frame (and advances the packet number).
    pub fn request_frame(&mut self, request: &Request, timestamp: u64) -> Frame {
        let header = Header {
            response: false,
            command: request.command().code(),
            session: self.id.get(),
            packet: self.next_packet,
            timestamp,
        };
        self.next_packet += 1;
        let payload = request.encode_payload();
        let tag = crypto::tag(
            &self.secret,
            false,
            &header.to_bytes(payload.len()),
            &payload,
        );
        Frame {
            header,
            payload,
            tag,
        }
    }

    /// Checks an answer to `request_header` and decodes it.
    ///
    /// # Errors
    /// -301 for an answer that does not match or fails authentication; the server's code for
    /// an error answer.
    pub fn open_reply(&self, request_header: &Header, answer: &Frame) -> Result<Reply, ErrorCode> {
        let command =
            Command::from_code(request_header.command).ok_or(ErrorCode::UnknownCommand)?;
        let tagged = crypto::verify(
            &self.secret,
            true,
            &answer.header_bytes(),
            &answer.payload,
            &answer.tag,
        );
        if tagged {
            if !answer.header.response
                || answer.header.packet != request_header.packet
                || answer.header.command != request_header.command
                || answer.header.session != request_header.session
            {
                return Err(ErrorCode::ServerAuth);
            }
            return check_value(Reply::decode(command, &answer.payload)?);
        }
        Err(untagged_error(answer))
    }
}

/// An untagged answer is believed only when it is one of [`UNTAGGED_ERRORS`].
fn untagged_error(answer: &Frame) -> ErrorCode {
    if answer.tag == [0u8; TAG_LEN] && answer.payload.len() == 4 {
        let value = i32::from_be_bytes([
            answer.payload[0],
            answer.payload[1],
            answer.payload[2],
            answer.payload[3],
        ]);
        if let Some(code) = ErrorCode::from_code(value).filter(|c| UNTAGGED_ERRORS.contains(c)) {
            return code;
        }
    }
    ErrorCode::ServerAuth
}

fn check_value(reply: Reply) -> Result<Reply, ErrorCode> {
    if reply.value < 0 {
        // Our server only sends known codes; anything else is a broken answer.
        return Err(ErrorCode::from_code(reply.value).unwrap_or(ErrorCode::ServerAuth));
    }
    Ok(reply)
}

#[derive(Default)]
struct State {
    transport: Transport,
    session: Option<ClientSession>,
    counts: RefCounts,
}

/// The remote API of one "process": its settings, its session and its counters.
pub struct RemoteApi {
    config: Mutex<ClientConfig>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for RemoteApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteApi").finish_non_exhaustive()
    }
}

impl RemoteApi {
    /// A client with these settings (nothing is sent yet).
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config: Mutex::new(config),
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    fn config(&self) -> MutexGuard<'_, ClientConfig> {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the settings.
    pub fn settings(&self) -> ClientConfig {
        self.config().clone()
    }

    /// `MxNet_SetIP`: the server's host for the next init.
    pub fn set_ip(&self, host: &str) {
        host.clone_into(&mut self.config().host);
    }

    /// `MxNet_SetPort`.
    pub fn set_port(&self, port: u16) {
        self.config().port = port;
    }

    /// `MxNet_SetTimeOut`: the connect timeout.
    pub fn set_timeout(&self, timeout: std::time::Duration) {
        self.config().connect_timeout = timeout;
    }

    /// The current session id, if any.
    pub async fn session_id(&self) -> Option<SessionId> {
        self.state.lock().await.session.as_ref().map(|s| s.id)
    }

    /// `rInit_MatrixAPI`: the first call opens a session with the server, later calls only
    /// count. Returns the count (≥ 1).
    ///
    /// # Errors
    /// -100 cannot connect, -300 pinned key mismatch, -301 bad server answer, the server's code.
    pub async fn init(&self) -> Result<i32, ErrorCode> {
        let mut state = self.state.lock().await;
        if let Action::Counted(n) = state.counts.init() {
            return Ok(n);
        }
        let config = self.settings();
        match open_session(&mut state.transport, &config).await {
            Ok(session) => {
                tracing::debug!(session = %session.id, "session opened");
                state.session = Some(session);
                Ok(1)
            }
            Err(code) => {
                state.counts.init_failed();
                state.transport.close();
                Err(code)
            }
        }
    }

    /// `rRelease_MatrixAPI`: counts down; the last release ends the session on the server.
    /// Returns the remaining count (0 once released).
    ///
    /// # Errors
    /// -116 without a session; the server's code (the local session is forgotten anyway).
    pub async fn release(&self) -> Result<i32, ErrorCode> {
        let mut state = self.state.lock().await;
        match state.counts.release() {
            None => Err(ErrorCode::NoSession),
            Some(Action::Counted(n)) => Ok(n),
            Some(Action::Send) => {
                let result = self.send(&mut state, &Request::Release).await;
                state.counts.clear();
                state.session = None;
                state.transport.close();
                result.map(|_| 0)
            }
        }
    }

    /// `rReset_MatrixAPI`: zeroes the counters and forgets the session without telling the
    /// server, so the next init opens a new session (section 6.5).
    pub async fn reset(&self) {
        let mut state = self.state.lock().await;
        state.counts.clear();
        state.session = None;
        state.transport.close();
    }

    /// `rLogIn_MatrixNet`: every call is sent — the first takes a seat, later ones refresh it
    /// (section 6.6: a program keeps its seat by calling login periodically) — and counted
    /// (section 6.7a) only when the server accepted it. Returns the seats left.
    ///
    /// # Errors
    /// -116 without a session, -31 no seat (also when the server freed this process's seat
    /// after the login timeout and others took it; the AppSlot's references are dropped),
    /// -105 session lost on the server, -102 no dongle, ...
    pub async fn login(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.send_login(at, true).await
    }

    /// Sends a login without counting a reference: refreshes the seat (or takes it). Returns
    /// the seats left.
    ///
    /// # Errors
    /// As for [`RemoteApi::login`].
    pub async fn refresh(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.send_login(at, false).await
    }

    async fn send_login(&self, at: SlotRef, add: bool) -> Result<i32, ErrorCode> {
        let mut state = self.state.lock().await;
        let answer = self
            .send(&mut state, &Request::Login(at))
            .await
            .map(|reply| reply.value);
        match answer {
            Ok(left) => state.counts.logged_in(at, left, add),
            // The server's word that this process holds no seat there.
            Err(ErrorCode::NoLicense | ErrorCode::NotLoggedIn | ErrorCode::NoDongle) => {
                state.counts.seat_lost(at);
            }
            // Transport errors say nothing about the seat: the references stay.
            Err(_) => {}
        }
        answer
    }

    /// `rLogOut_MatrixNet`: counts down; the last logout is sent and frees the seat. Returns
    /// the seats left.
    ///
    /// # Errors
    /// -11 not logged in, -116 without a session, ...
    pub async fn logout(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        let mut state = self.state.lock().await;
        if state.session.is_none() {
            return Err(ErrorCode::NoSession);
        }
        match state.counts.logout(at) {
            Action::Counted(left) => Ok(left),
            Action::Send => {
                let result = self.send(&mut state, &Request::Logout(at)).await;
                state.counts.logged_out(at);
                result.map(|r| r.value)
            }
        }
    }

    /// `rDongle_Count`.
    ///
    /// # Errors
    /// -102 no dongle, -116 without a session, ...
    pub async fn dongle_count(&self) -> Result<i32, ErrorCode> {
        self.call(&Request::DongleCount).await.map(|r| r.value)
    }

    /// `rDongle_ReadSerNr`.
    ///
    /// # Errors
    /// -102 no such dongle, ...
    pub async fn read_ser_nr(&self, user_code: i32, dng_nr: u16) -> Result<i32, ErrorCode> {
        self.call(&Request::ReadSerNr { dng_nr, user_code })
            .await
            .map(|r| r.value)
    }

    /// `rDongle_GetLoginCount`: seats taken.
    ///
    /// # Errors
    /// -102 no such dongle, ...
    pub async fn login_count(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.call(&Request::LoginCount(at)).await.map(|r| r.value)
    }

    /// `rDongle_GetLoginCountEx`: seats taken and the clients holding them.
    ///
    /// # Errors
    /// -102 no such dongle, ...
    pub async fn login_count_ex(&self, at: SlotRef) -> Result<(i32, Vec<String>), ErrorCode> {
        let reply = self.call(&Request::LoginCountEx(at)).await?;
        match reply.body {
            ReplyBody::Names(names) => Ok((reply.value, names)),
            _ => Ok((reply.value, Vec::new())),
        }
    }

    /// `rDongle_ReadDataEx`: `count` data variables from `fpos`.
    ///
    /// # Errors
    /// -102 no such dongle, -302 not available, ...
    pub async fn read_data(
        &self,
        user_code: i32,
        dng_nr: u16,
        fpos: u16,
        count: u16,
    ) -> Result<Vec<i32>, ErrorCode> {
        let reply = self
            .call(&Request::ReadData {
                dng_nr,
                user_code,
                fpos,
                count,
            })
            .await?;
        match reply.body {
            ReplyBody::Data(data) => Ok(data),
            _ => Ok(Vec::new()),
        }
    }

    /// The number of counted inits (for tests and status).
    pub async fn init_count(&self) -> u32 {
        self.state.lock().await.counts.init_count()
    }

    /// The number of counted logins of an AppSlot.
    pub async fn login_refs(&self, at: SlotRef) -> u32 {
        self.state.lock().await.counts.login_count(at)
    }

    async fn call(&self, request: &Request) -> Result<Reply, ErrorCode> {
        let mut state = self.state.lock().await;
        self.send(&mut state, request).await
    }

    async fn send(&self, state: &mut State, request: &Request) -> Result<Reply, ErrorCode> {
        let config = self.settings();
        let State {
            transport,
            session,
            counts,
        } = state;
        let session = session.as_mut().ok_or(ErrorCode::NoSession)?;
        let frame = session.request_frame(request, config.clock.unix_millis());
        let header = frame.header;
        let answer = transport.call(&config, frame).await?;
        let reply = session.open_reply(&header, &answer);
        if matches!(reply, Err(ErrorCode::SessionPassword)) {
            // The server lost the session (timed out, released by an administrator, server
            // restarted without its state): its seats went with it.
            counts.session_lost();
        }
        reply
    }
}

/// Sends init and completes the key exchange.
async fn open_session(
    transport: &mut Transport,
    config: &ClientConfig,
) -> Result<ClientSession, ErrorCode> {
    let handshake = ClientHandshake::new()?;
    let request = Request::Init {
        client_public: handshake.public(),
        client_name: config.client_name.clone(),
    };
    let payload = request.encode_payload();
    let packet = 1;
    let header = Header {
        response: false,
        command: request.command().code(),
        session: 0,
        packet,
        timestamp: config.clock.unix_millis(),
    };
    let frame = Frame {
        header,
        payload,
        tag: [0u8; TAG_LEN],
    };
    let answer = transport.call(config, frame).await?;
    let reply = match Reply::decode(Command::Init, &answer.payload) {
        Ok(r) if r.value >= 0 => r,
        _ => return Err(untagged_error(&answer)),
    };
    let ReplyBody::Init {
        server_public,
        server_key,
        signature,
    } = reply.body
    else {
        return Err(ErrorCode::ServerAuth);
    };
    let id = SessionId::new(answer.header.session).ok_or(ErrorCode::ServerAuth)?;
    if !answer.header.response || answer.header.packet != packet {
        return Err(ErrorCode::ServerAuth);
    }
    let secret = handshake.finish(
        &server_public,
        &server_key,
        &signature,
        id,
        packet,
        config.pinned_key.as_ref(),
    )?;
    if !crypto::verify(
        &secret,
        true,
        &answer.header_bytes(),
        &answer.payload,
        &answer.tag,
    ) {
        return Err(ErrorCode::ServerAuth);
    }
    Ok(ClientSession {
        id,
        secret,
        next_packet: packet + 1,
    })
}
