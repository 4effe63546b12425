//! The wire protocol between the client library and the license server, documented byte by
//! byte in `docs/license-protocol.md`: versioned frames ([`frame`]), typed requests and answers
//! ([`command`]), the init key exchange and per-packet authentication ([`crypto`]), and a tokio
//! codec ([`codec`]).

pub mod codec;
pub mod command;
pub mod crypto;
pub mod frame;

pub use codec::{CodecError, FrameCodec};
pub use command::{Command, Reply, Request};
pub use crypto::{ClientHandshake, ServerIdentity, ServerPublicKey};
pub use frame::{Frame, FrameError, Header, MAX_PAYLOAD};
