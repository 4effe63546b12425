//! The semantic core of the MxNet2-style license service: what a licence *is* and how it is
//! asked for, with no server or client I/O. The server (`license-server`) and the client library
//! (`license-client`, wrapped by the C ABI) both build on it.
//!
//! - [`ids`]: session ids and secrets, the (dongle, user code, AppSlot) reference.
//! - [`error`]: the return codes (the manual's numbers).
//! - [`clock`]: time sources (the engine takes `now` from its callers).
//! - [`engine`]: sessions, AppSlot seats, timeouts, licence types; pure logic.
//! - [`dongle`]: what a dongle backend reports, and the naming rules of section 6.7.
//! - [`protocol`]: frames, commands, key exchange and packet authentication.
//! - [`private_file`]: who may read a file holding secrets (Windows: its ACL).
//! - [`config_file`]: the error type and read step shared by the server's and the client's
//!   configuration files.
//!
//! Dependencies point one way: `protocol` uses `ids` and `error`, never `engine`.

pub mod clock;
pub mod config_file;
pub mod dongle;
pub mod engine;
pub mod error;
pub mod ids;
pub mod private_file;
pub mod protocol;

pub use engine::Engine;
pub use error::ErrorCode;
pub use ids::{SessionId, SessionSecret, SlotRef};

/// The default port of the license service (section 3): the server listens on it, the client
/// and the site proxy dial it.
pub const DEFAULT_PORT: u16 = 12300;
