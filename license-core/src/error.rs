//! The return codes of the remote API: every error of the MxNet2 manual (section 7, section 9
//! and the AppSlot errors of section 6.6) plus the few this implementation adds, as one enum
//! with the manual's numbers. `docs/error-codes.md` lists them.

use serde::{Deserialize, Serialize};

/// An error code of the remote API. The numeric values are the manual's; codes from -300 down
/// are this implementation's own (the manual's list "is not an exhaustive list").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("{} ({})", self.code(), self.meaning())]
pub enum ErrorCode {
    /// -11: logout from an AppSlot the client holds no login for (section 6.6).
    NotLoggedIn,
    /// -31: no licence left in the AppSlot.
    NoLicense,
    /// -100: cannot connect to the license server.
    Connect,
    /// -102: no Matrix dongle connected (or none with that number / user code).
    NoDongle,
    /// -104: the request's time-stamp is outside `CmdIssueTimeInterval` (section 6.8).
    TimeStamp,
    /// -105: session password error: unknown or expired session, or a request that fails
    /// authentication.
    SessionPassword,
    /// -106: packet length error.
    PacketLength,
    /// -107: packet header error.
    PacketHeader,
    /// -108: unknown command.
    UnknownCommand,
    /// -115: packet number error (a replayed or reordered request).
    PacketNumber,
    /// -116: the client library has no session with the server (client side).
    NoSession,
    /// -122: packet version error.
    PacketVersion,
    /// -200: SOCKS version error.
    SocksVersion,
    /// -201: the SOCKS server does not support the authentication offered.
    SocksNoAuthMethod,
    /// -202: SOCKS authentication error.
    SocksAuth,
    /// -203: send error.
    Send,
    /// -204: receive error (including no answer before the timeout).
    Receive,
    /// -205: socket error (the manual's `WSAEventSelect`).
    SocketSelect,
    /// -206: socket error (the manual's `WSAEnumNetworkEvents`).
    SocketEvents,
    /// -300: the server's public key does not match the key pinned in the client
    /// configuration (our extension).
    ServerKeyMismatch,
    /// -301: the server's answer failed authentication (our extension).
    ServerAuth,
    /// -302: the dongle backend cannot provide this (the USB key's protocol is not public; our
    /// extension).
    Unsupported,
    /// -303: the server holds too many sessions (our extension).
    TooManySessions,
}

impl ErrorCode {
    /// Every code, in the order of `docs/error-codes.md`.
    pub const ALL: [ErrorCode; 23] = [
        Self::NotLoggedIn,
        Self::NoLicense,
        Self::Connect,
        Self::NoDongle,
        Self::TimeStamp,
        Self::SessionPassword,
        Self::PacketLength,
        Self::PacketHeader,
        Self::UnknownCommand,
        Self::PacketNumber,
        Self::NoSession,
        Self::PacketVersion,
        Self::SocksVersion,
        Self::SocksNoAuthMethod,
        Self::SocksAuth,
        Self::Send,
        Self::Receive,
        Self::SocketSelect,
        Self::SocketEvents,
        Self::ServerKeyMismatch,
        Self::ServerAuth,
        Self::Unsupported,
        Self::TooManySessions,
    ];

    /// The manual's number.
    pub const fn code(self) -> i32 {
        match self {
            Self::NotLoggedIn => -11,
            Self::NoLicense => -31,
            Self::Connect => -100,
            Self::NoDongle => -102,
            Self::TimeStamp => -104,
            Self::SessionPassword => -105,
            Self::PacketLength => -106,
            Self::PacketHeader => -107,
            Self::UnknownCommand => -108,
            Self::PacketNumber => -115,
            Self::NoSession => -116,
            Self::PacketVersion => -122,
            Self::SocksVersion => -200,
            Self::SocksNoAuthMethod => -201,
            Self::SocksAuth => -202,
            Self::Send => -203,
            Self::Receive => -204,
            Self::SocketSelect => -205,
            Self::SocketEvents => -206,
            Self::ServerKeyMismatch => -300,
            Self::ServerAuth => -301,
            Self::Unsupported => -302,
            Self::TooManySessions => -303,
        }
    }

    /// What the code means, in the manual's words where it has some.
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::NotLoggedIn => "not logged in to this AppSlot",
            Self::NoLicense => "no licence left in the AppSlot",
            Self::Connect => "cannot connect to the license server",
            Self::NoDongle => "no Matrix dongle connected",
            Self::TimeStamp => "request time-stamp error",
            Self::SessionPassword => "session password error (session unknown or expired)",
            Self::PacketLength => "packet length error",
            Self::PacketHeader => "packet header error",
            Self::UnknownCommand => "unknown command",
            Self::PacketNumber => "packet number error",
            Self::NoSession => "client library does not have a session with the server",
            Self::PacketVersion => "packet version error",
            Self::SocksVersion => "SOCKS version error",
            Self::SocksNoAuthMethod => "SOCKS does not support authentication",
            Self::SocksAuth => "SOCKS authentication error",
            Self::Send => "send error",
            Self::Receive => "receive error",
            Self::SocketSelect => "socket error (select)",
            Self::SocketEvents => "socket error (network events)",
            Self::ServerKeyMismatch => "server public key does not match the pinned key",
            Self::ServerAuth => "server answer failed authentication",
            Self::Unsupported => "not available from this dongle backend",
            Self::TooManySessions => "the server has too many sessions",
        }
    }

    /// The code for a number, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl From<ErrorCode> for i32 {
    fn from(code: ErrorCode) -> i32 {
        code.code()
    }
}

impl TryFrom<i32> for ErrorCode {
    type Error = i32;

    fn try_from(code: i32) -> Result<Self, i32> {
        Self::from_code(code).ok_or(code)
    }
}

/// The meaning of any return value: an error's meaning for a known negative code, "ok" for
/// zero and positive values.
pub fn describe(value: i32) -> &'static str {
    match ErrorCode::from_code(value) {
        Some(code) => code.meaning(),
        None if value >= 0 => "ok",
        None => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_manuals_and_round_trip() {
        let expected = [
            -11, -31, -100, -102, -104, -105, -106, -107, -108, -115, -116, -122, -200, -201, -202,
            -203, -204, -205, -206, -300, -301, -302, -303,
        ];
        let codes: Vec<i32> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, expected);
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::try_from(code.code()), Ok(code));
            assert_eq!(i32::from(code), code.code());
            assert!(!code.meaning().is_empty());
        }
        assert_eq!(ErrorCode::try_from(-1), Err(-1));
        assert_eq!(describe(3), "ok");
        assert_eq!(describe(-31), "no licence left in the AppSlot");
        assert_eq!(
            ErrorCode::NoDongle.to_string(),
            "-102 (no Matrix dongle connected)"
        );
    }

    #[test]
    fn error_codes_doc_lists_every_code() {
        let doc = include_str!("../../docs/error-codes.md");
        for code in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("| {} |", code.code())),
                "{code:?} missing"
            );
        }
    }
}
