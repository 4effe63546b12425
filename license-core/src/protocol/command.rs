//! Commands: the remote API calls as typed requests and replies, and their payload encodings.
//! A reply payload starts with the call's return value (`i32`); a few successful replies carry
//! more (the init key exchange, client names, data variables).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ErrorCode;
use crate::ids::SlotRef;

/// Longest client name sent at init (bytes); longer names are cut.
pub const MAX_CLIENT_NAME: usize = 64;

/// Command codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Command {
    /// `rInit_MatrixAPI`.
    Init = 1,
    /// `rRelease_MatrixAPI`.
    Release = 2,
    /// `rLogIn_MatrixNet`.
    Login = 3,
    /// `rLogOut_MatrixNet`.
    Logout = 4,
    /// `rDongle_Count`.
    DongleCount = 5,
    /// `rDongle_ReadSerNr`.
    ReadSerNr = 6,
    /// `rDongle_GetLoginCount`.
    LoginCount = 7,
    /// `rDongle_GetLoginCountEx`.
    LoginCountEx = 8,
    /// `rDongle_ReadDataEx`.
    ReadData = 9,
}

impl Command {
    /// The command for a code.
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::Init,
            2 => Self::Release,
            3 => Self::Login,
            4 => Self::Logout,
            5 => Self::DongleCount,
            6 => Self::ReadSerNr,
            7 => Self::LoginCount,
            8 => Self::LoginCountEx,
            9 => Self::ReadData,
            _ => return None,
        })
    }

    /// The code.
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Opens a session: the client's ephemeral X25519 public key and its name.
    Init {
        /// X25519 public key.
        client_public: [u8; 32],
        /// Host/process name (at most [`MAX_CLIENT_NAME`] bytes of UTF-8).
        client_name: String,
    },
    /// Ends the session.
    Release,
    /// Takes or refreshes a seat.
    Login(SlotRef),
    /// Frees a seat.
    Logout(SlotRef),
    /// Number of dongles.
    DongleCount,
    /// Serial number.
    ReadSerNr {
        /// DngNr.
        dng_nr: u16,
        /// User code.
        user_code: i32,
    },
    /// Seats taken.
    LoginCount(SlotRef),
    /// Seats taken and client names.
    LoginCountEx(SlotRef),
    /// Data variables.
    ReadData {
        /// DngNr.
        dng_nr: u16,
        /// User code.
        user_code: i32,
        /// First variable (0-based).
        fpos: u16,
        /// How many.
        count: u16,
    },
}

impl Request {
    /// The command.
    pub fn command(&self) -> Command {
        match self {
            Self::Init { .. } => Command::Init,
            Self::Release => Command::Release,
            Self::Login(_) => Command::Login,
            Self::Logout(_) => Command::Logout,
            Self::DongleCount => Command::DongleCount,
            Self::ReadSerNr { .. } => Command::ReadSerNr,
            Self::LoginCount(_) => Command::LoginCount,
            Self::LoginCountEx(_) => Command::LoginCountEx,
            Self::ReadData { .. } => Command::ReadData,
        }
    }

    /// The payload.
    pub fn encode_payload(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Self::Init {
                client_public,
                client_name,
            } => {
                b.put_slice(client_public);
                let name = truncate_utf8(client_name, MAX_CLIENT_NAME);
                b.put_u8(u8::try_from(name.len()).unwrap_or(0));
                b.put_slice(name.as_bytes());
            }
            Self::Release | Self::DongleCount => {}
            Self::Login(s) | Self::Logout(s) | Self::LoginCount(s) | Self::LoginCountEx(s) => {
                b.put_i32(s.user_code);
                b.put_u16(s.slot);
                b.put_u16(s.dng_nr);
            }
            Self::ReadSerNr { dng_nr, user_code } => {
                b.put_i32(*user_code);
                b.put_u16(*dng_nr);
            }
            Self::ReadData {
                dng_nr,
                user_code,
                fpos,
                count,
            } => {
                b.put_i32(*user_code);
                b.put_u16(*dng_nr);
                b.put_u16(*fpos);
                b.put_u16(*count);
            }
        }
        b.freeze()
    }

    /// Decodes the payload of command `code`.
    ///
    /// # Errors
    /// -108 unknown command, -106 payload of the wrong length or an invalid name.
    pub fn decode(code: u16, mut p: &[u8]) -> Result<Self, ErrorCode> {
        let command = Command::from_code(code).ok_or(ErrorCode::UnknownCommand)?;
        let need = |p: &[u8], n: usize| {
            if p.len() == n {
                Ok(())
            } else {
                Err(ErrorCode::PacketLength)
            }
        };
        let slot = |p: &mut &[u8]| -> Result<SlotRef, ErrorCode> {
            need(p, 8)?;
            Ok(SlotRef {
                user_code: p.get_i32(),
                slot: p.get_u16(),
                dng_nr: p.get_u16(),
            })
        };
        Ok(match command {
            Command::Init => {
                if p.len() < 33 {
                    return Err(ErrorCode::PacketLength);
                }
                let mut client_public = [0u8; 32];
                p.copy_to_slice(&mut client_public);
                let n = usize::from(p.get_u8());
                if n > MAX_CLIENT_NAME || p.len() != n {
                    return Err(ErrorCode::PacketLength);
                }
                let client_name = std::str::from_utf8(p)
                    .map_err(|_| ErrorCode::PacketLength)?
                    .to_owned();
                Self::Init {
                    client_public,
                    client_name,
                }
            }
            Command::Release => {
                need(p, 0)?;
                Self::Release
            }
            Command::DongleCount => {
                need(p, 0)?;
                Self::DongleCount
            }
            Command::Login => Self::Login(slot(&mut p)?),
            Command::Logout => Self::Logout(slot(&mut p)?),
            Command::LoginCount => Self::LoginCount(slot(&mut p)?),
            Command::LoginCountEx => Self::LoginCountEx(slot(&mut p)?),
            Command::ReadSerNr => {
                need(p, 6)?;
                let user_code = p.get_i32();
                Self::ReadSerNr {
                    user_code,
                    dng_nr: p.get_u16(),
                }
            }
            Command::ReadData => {
                need(p, 10)?;
                let user_code = p.get_i32();
                Self::ReadData {
                    user_code,
                    dng_nr: p.get_u16(),
                    fpos: p.get_u16(),
                    count: p.get_u16(),
                }
            }
        })
    }
}

/// What a successful reply carries beyond its return value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// Nothing more.
    Empty,
    /// Init: the server's ephemeral X25519 key, its static Ed25519 key and its signature.
    Init {
        /// Ephemeral X25519 public key.
        server_public: [u8; 32],
        /// Static Ed25519 public key.
        server_key: [u8; 32],
        /// Ed25519 signature over the transcript.
        signature: [u8; 64],
    },
    /// Client names, one per seat.
    Names(Vec<String>),
    /// Data variables.
    Data(Vec<i32>),
}

/// A reply: the return value (an error code when negative) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The return value.
    pub value: i32,
    /// Extra content (only with a non-negative value).
    pub body: ReplyBody,
}

impl Reply {
    /// A reply with only a value.
    pub fn value(value: i32) -> Self {
        Self {
            value,
            body: ReplyBody::Empty,
        }
    }

    /// An error reply.
    pub fn error(code: ErrorCode) -> Self {
        Self::value(code.code())
    }

    /// The payload.
    pub fn encode_payload(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i32(self.value);
        match &self.body {
            ReplyBody::Empty => {}
            ReplyBody::Init {
                server_public,
                server_key,
                signature,
            } => {
                b.put_slice(server_public);
                b.put_slice(server_key);
                b.put_slice(signature);
            }
            ReplyBody::Names(names) => {
                // Tab-separated, as rDongle_GetLoginCountEx returns them; cut to fit a frame.
                let mut joined = names.join("\t");
                joined = truncate_utf8(&joined, super::MAX_PAYLOAD - 8).to_owned();
                b.put_u32(u32::try_from(joined.len()).unwrap_or(0));
                b.put_slice(joined.as_bytes());
            }
            ReplyBody::Data(data) => {
                let n = data.len().min((super::MAX_PAYLOAD - 8) / 4);
                b.put_u16(u16::try_from(n).unwrap_or(0));
                for v in &data[..n] {
                    b.put_i32(*v);
                }
            }
        }
        b.freeze()
    }

    /// Decodes the payload of a reply to `command`.
    ///
    /// # Errors
    /// -106 when the payload does not fit the command.
    pub fn decode(command: Command, mut p: &[u8]) -> Result<Self, ErrorCode> {
        if p.len() < 4 {
            return Err(ErrorCode::PacketLength);
        }
        let value = p.get_i32();
        if value < 0 {
            return Ok(Self::value(value));
        }
        let body = match command {
            Command::Init => {
                if p.len() != 128 {
                    return Err(ErrorCode::PacketLength);
                }
                let mut server_public = [0u8; 32];
                let mut server_key = [0u8; 32];
                let mut signature = [0u8; 64];
                p.copy_to_slice(&mut server_public);
                p.copy_to_slice(&mut server_key);
                p.copy_to_slice(&mut signature);
                ReplyBody::Init {
                    server_public,
                    server_key,
                    signature,
                }
            }
            Command::LoginCountEx => {
                if p.len() < 4 {
                    return Err(ErrorCode::PacketLength);
                }
                let n = usize::try_from(p.get_u32()).unwrap_or(usize::MAX);
                if p.len() != n {
                    return Err(ErrorCode::PacketLength);
                }
                let text = std::str::from_utf8(p).map_err(|_| ErrorCode::PacketLength)?;
                let names = if text.is_empty() {
                    Vec::new()
                } else {
                    text.split('\t').map(str::to_owned).collect()
                };
                ReplyBody::Names(names)
            }
            Command::ReadData => {
                if p.len() < 2 {
                    return Err(ErrorCode::PacketLength);
                }
                let n = usize::from(p.get_u16());
                if p.len() != n * 4 {
                    return Err(ErrorCode::PacketLength);
                }
                ReplyBody::Data((0..n).map(|_| p.get_i32()).collect())
            }
            _ => {
                if !p.is_empty() {
                    return Err(ErrorCode::PacketLength);
                }
                ReplyBody::Empty
            }
        };
        Ok(Self { value, body })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot_ref() -> impl Strategy<Value = SlotRef> {
        (any::<u16>(), any::<i32>(), any::<u16>()).prop_map(|(dng_nr, user_code, slot)| SlotRef {
            dng_nr,
            user_code,
            slot,
        })
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (any::<[u8; 32]>(), "[a-zA-Z0-9 ./é-]{0,40}").prop_map(|(client_public, n)| {
                Request::Init {
                    client_public,
                    client_name: truncate_utf8(&n, MAX_CLIENT_NAME).to_owned(),
                }
            }),
            Just(Request::Release),
            Just(Request::DongleCount),
            slot_ref().prop_map(Request::Login),
            slot_ref().prop_map(Request::Logout),
            slot_ref().prop_map(Request::LoginCount),
            slot_ref().prop_map(Request::LoginCountEx),
            (any::<u16>(), any::<i32>())
                .prop_map(|(dng_nr, user_code)| Request::ReadSerNr { dng_nr, user_code }),
            (any::<u16>(), any::<i32>(), any::<u16>(), any::<u16>()).prop_map(
                |(dng_nr, user_code, fpos, count)| Request::ReadData {
                    dng_nr,
                    user_code,
                    fpos,
                    count
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trip(r in request()) {
            let payload = r.encode_payload();
            prop_assert_eq!(Request::decode(r.command().code(), &payload), Ok(r));
        }

        #[test]
        fn reply_round_trip(value in 0..i32::MAX, names in proptest::collection::vec("[a-z0-9.]{1,12}", 0..5),
                            data in proptest::collection::vec(any::<i32>(), 0..20),
                            keys in any::<([u8; 32], [u8; 32])>(), sig in any::<[u8; 32]>()) {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&sig);
            let cases = [
                (Command::Login, Reply::value(value)),
                (Command::LoginCountEx, Reply { value, body: ReplyBody::Names(names) }),
                (Command::ReadData, Reply { value, body: ReplyBody::Data(data) }),
                (Command::Init, Reply { value, body: ReplyBody::Init {
                    server_public: keys.0, server_key: keys.1, signature } }),
                (Command::Logout, Reply::error(ErrorCode::NotLoggedIn)),
            ];
            for (command, reply) in cases {
                prop_assert_eq!(Reply::decode(command, &reply.encode_payload()), Ok(reply));
            }
        }

        #[test]
        fn arbitrary_payloads_never_panic(code: u16, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::decode(code, &bytes);
            if let Some(c) = Command::from_code(code) {
                let _ = Reply::decode(c, &bytes);
            }
        }
    }

    #[test]
    fn decode_errors() {
        assert_eq!(Request::decode(99, &[]), Err(ErrorCode::UnknownCommand));
        assert_eq!(Request::decode(3, &[0; 7]), Err(ErrorCode::PacketLength));
        assert_eq!(Request::decode(2, &[0]), Err(ErrorCode::PacketLength));
        let mut init = vec![0u8; 32];
        init.push(2);
        init.extend_from_slice(&[0xFF, 0xFE]);
        assert_eq!(Request::decode(1, &init), Err(ErrorCode::PacketLength));
    }
}
