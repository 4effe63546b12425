//! Malformed, oversized, replayed, stale and forged packets over real TCP: each gets its error
//! code (or a closed connection) and changes no state. Time is paused so snapshots compare
//! exactly.

mod common;

use common::{Raw, SLOT, at, config, start, value_of};
use license_core::ErrorCode;
use license_core::engine::StatusSnapshot;
use license_core::protocol::frame::{Frame, HEADER_LEN, MAX_PAYLOAD, TAG_LEN};
use license_core::protocol::{Command, Request};

/// The parts of a snapshot that requests may change.
fn state(s: StatusSnapshot) -> impl PartialEq + std::fmt::Debug {
    (s.dongles, s.sessions, s.logins)
}

/// A running server with one session logged in to AppSlot 1, over `raw`.
async fn logged_in() -> (common::Running, Raw, license_client::ClientSession, u64) {
    let run = start(config(3)).await;
    let now = run.clock.unix_millis();
    let mut raw = Raw::connect(run.addr).await;
    let mut session = raw.init(now).await;
    assert_eq!(
        raw.request(&mut session, &Request::Login(at(SLOT)), now)
            .await,
        2
    );
    (run, raw, session, now)
}

/// Sends `bytes` on a fresh connection to `run` and checks the server answers with `code`,
/// closes that connection and changes no state. Returns the answer.
async fn refused_and_closed(run: &common::Running, bytes: &[u8], code: ErrorCode) -> Frame {
    let before = state(run.server.snapshot());
    let mut raw = Raw::connect(run.addr).await;
    raw.send_bytes(bytes).await;
    let answer = raw.read().await.expect("an answer");
    assert_eq!(value_of(&answer), code.code());
    assert_eq!(raw.read().await, None, "connection closed");
    assert_eq!(state(run.server.snapshot()), before);
    answer
}

/// The bytes of a valid login request of `session`, to be broken by the test.
fn login_bytes(session: &mut license_client::ClientSession, now: u64) -> Vec<u8> {
    session
        .request_frame(&Request::Login(at(SLOT)), now)
        .to_bytes()
        .to_vec()
}

#[tokio::test(start_paused = true)]
async fn garbage_is_a_header_error_and_closes() {
    let (run, _raw, _session, _) = logged_in().await;
    let answer = refused_and_closed(
        &run,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ErrorCode::PacketHeader,
    )
    .await;
    assert!(answer.header.response);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn oversized_is_a_length_error_and_closes() {
    let (run, _raw, mut session, now) = logged_in().await;
    let mut bytes = login_bytes(&mut session, now);
    bytes.truncate(HEADER_LEN);
    bytes[8..12].copy_from_slice(&u32::try_from(MAX_PAYLOAD + 1).expect("fits").to_be_bytes());
    refused_and_closed(&run, &bytes, ErrorCode::PacketLength).await;
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn other_version_is_a_version_error_and_closes() {
    let (run, _raw, mut session, now) = logged_in().await;
    let mut bytes = login_bytes(&mut session, now);
    bytes[4] = 2;
    refused_and_closed(&run, &bytes, ErrorCode::PacketVersion).await;
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_command_and_bad_payload_keep_the_connection() {
    let (run, mut raw, mut session, now) = logged_in().await;
    let before = state(run.server.snapshot());
    let mut unknown = session.request_frame(&Request::DongleCount, now);
    unknown.header.command = 99;
    let answer = raw.call(&unknown).await;
    assert_eq!(value_of(&answer), ErrorCode::UnknownCommand.code());
    let mut short = session.request_frame(&Request::Login(at(SLOT)), now);
    short.payload = short.payload.slice(..5);
    assert_eq!(
        value_of(&raw.call(&short).await),
        ErrorCode::PacketLength.code()
    );
    let mut flagged = session.request_frame(&Request::DongleCount, now);
    flagged.header.response = true;
    assert_eq!(
        value_of(&raw.call(&flagged).await),
        ErrorCode::PacketHeader.code()
    );
    assert_eq!(state(run.server.snapshot()), before);
    // The same connection and session still work.
    assert_eq!(
        raw.request(&mut session, &Request::DongleCount, now).await,
        1
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn replayed_packet_is_a_packet_number_error() {
    let (run, mut raw, mut session, now) = logged_in().await;
    let logout = session.request_frame(&Request::Logout(at(SLOT)), now);
    let first = raw.call(&logout).await;
    assert_eq!(
        session
            .open_reply(&logout.header, &first)
            .expect("ok")
            .value,
        3
    );
    // Log in again, then replay the captured logout: refused, the seat stays taken.
    assert_eq!(
        raw.request(&mut session, &Request::Login(at(SLOT)), now)
            .await,
        2
    );
    let before = state(run.server.snapshot());
    let replay = raw.call(&logout).await;
    assert_eq!(
        session.open_reply(&logout.header, &replay),
        Err(ErrorCode::PacketNumber),
        "answered with a tag"
    );
    assert_eq!(state(run.server.snapshot()), before);
    assert_eq!(run.taken(SLOT), 1);
    // A replay on another connection is refused too.
    let mut other = Raw::connect(run.addr).await;
    assert_eq!(
        value_of(&other.call(&logout).await),
        ErrorCode::PacketNumber.code()
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stale_or_future_time_stamps_are_rejected() {
    let (run, mut raw, mut session, now) = logged_in().await;
    let before = state(run.server.snapshot());
    for ts in [now - 61_000, now + 61_000] {
        assert_eq!(
            raw.request(&mut session, &Request::Logout(at(SLOT)), ts)
                .await,
            ErrorCode::TimeStamp.code()
        );
    }
    assert_eq!(state(run.server.snapshot()), before);
    // Within the 60 s window it is accepted.
    assert_eq!(
        raw.request(&mut session, &Request::Logout(at(SLOT)), now - 59_000)
            .await,
        3
    );
    // An init with a stale time-stamp is refused as well.
    let mut fresh = Raw::connect(run.addr).await;
    let hs = license_core::protocol::ClientHandshake::new().expect("hs");
    let init = Frame {
        header: license_core::protocol::Header {
            response: false,
            command: Command::Init.code(),
            session: 0,
            packet: 1,
            timestamp: now - 120_000,
        },
        payload: Request::Init {
            client_public: hs.public(),
            client_name: String::new(),
        }
        .encode_payload(),
        tag: [0; TAG_LEN],
    };
    assert_eq!(
        value_of(&fresh.call(&init).await),
        ErrorCode::TimeStamp.code()
    );
    assert_eq!(run.server.snapshot().sessions.len(), 1);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn time_stamps_are_not_checked_with_check_cmd_issue_time_0() {
    let mut cfg = config(3);
    cfg.check_cmd_issue_time = false;
    let run = start(cfg).await;
    let now = license_core::clock::WallClock::unix_millis(&*run.clock);
    let mut raw = Raw::connect(run.addr).await;
    let mut session = raw.init(now - 3_600_000).await;
    assert_eq!(
        raw.request(&mut session, &Request::Login(at(SLOT)), now + 86_400_000)
            .await,
        2
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn forged_or_misrouted_requests_are_session_password_errors() {
    let (run, mut raw, mut session, now) = logged_in().await;
    let before = state(run.server.snapshot());
    // A flipped payload byte: the tag no longer verifies.
    let mut forged = session.request_frame(&Request::Logout(at(SLOT)), now);
    let mut payload = forged.payload.to_vec();
    payload[7] ^= 1;
    forged.payload = payload.into();
    let answer = raw.call(&forged).await;
    assert_eq!(
        answer.tag, [0; TAG_LEN],
        "no key proves an answer to a forged request"
    );
    assert_eq!(value_of(&answer), ErrorCode::SessionPassword.code());
    // Another session id, and no session at all.
    let mut elsewhere = session.request_frame(&Request::Logout(at(SLOT)), now);
    elsewhere.header.session ^= 0xFFFF;
    assert_eq!(
        value_of(&raw.call(&elsewhere).await),
        ErrorCode::SessionPassword.code()
    );
    elsewhere.header.session = 0;
    assert_eq!(
        value_of(&raw.call(&elsewhere).await),
        ErrorCode::SessionPassword.code()
    );
    assert_eq!(state(run.server.snapshot()), before);
    // The failed packet numbers were not consumed: the next genuine request works.
    assert_eq!(
        raw.request(&mut session, &Request::Logout(at(SLOT)), now)
            .await,
        3
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_pinning_another_key_refuses_the_server() {
    let run = start(config(3)).await;
    let mut cfg = run.client_config();
    cfg.pinned_key = Some(
        license_core::protocol::ServerIdentity::generate()
            .expect("key")
            .public_key(),
    );
    let api = license_client::RemoteApi::new(cfg);
    assert_eq!(api.init().await, Err(ErrorCode::ServerKeyMismatch));
    assert_eq!(api.init_count().await, 0);
    let mut cfg = run.client_config();
    cfg.pinned_key = Some(run.server.public_key());
    let api = license_client::RemoteApi::new(cfg);
    assert_eq!(api.init().await, Ok(1));
    run.stop().await;
}
