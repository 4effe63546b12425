//! The one place this crate imports license-core's Rust client from, so that moving the client
//! to its own crate changes one line here.

pub use license_client::blocking::RemoteApi;
pub use license_client::{ClientConfig, INI_FILE};
pub use license_core::config_file::ConfigError;
pub use license_core::{ErrorCode, SlotRef};
