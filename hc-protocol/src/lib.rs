//! The Azure Relay **Hybrid Connections** (HC) protocol, without any I/O.
//!
//! Everything both ends of the protocol must agree on lives here, so that the self-hosted relay
//! (`relay-server`) and the clients (`relay-listener`, `local-proxy`) cannot drift apart:
//!
//! - [`sas`]: Shared Access Signature tokens, in the exact format and string-to-sign of the
//!   Azure SDKs, plus verification and audience matching for the relay side.
//! - [`connection_string`]: Azure-style connection strings (`Endpoint=sb://…;…`).
//! - [`uri`]: the `/$hc/{path}` URIs and the relay-owned `sb-hc-*` query parameters.
//! - [`control`]: the JSON control-channel messages (`accept`, `renewToken`, and HTTP mode's
//!   `request` and `response`).
//! - [`headers`]: HTTP headers as the JSON maps of control messages, and back.
//! - [`status`]: HTTP status codes and WebSocket close codes the protocol assigns meaning to.
//! - [`secret`]: a string wrapper that never prints its content.
//!
//! The facts behind this module are collected in `docs/hc-protocol.md`.

pub mod connection_string;
pub mod control;
pub mod headers;
pub mod sas;
pub mod secret;
pub mod status;
pub mod uri;

pub use connection_string::{ConnectionString, ConnectionStringError};
pub use control::{
    Accept, ControlError, ControlMessage, HttpRequest, HttpResponse, RemoteEndpoint, RenewToken,
};
pub use sas::{SasError, SasToken};
pub use secret::{Secret, redact_for_log};
pub use uri::{Action, RelayEndpoint, UriError};

/// Header that carries a SAS token on listen and connect upgrades (what the .NET, Java and
/// Node clients send).
pub const SERVICE_BUS_AUTHORIZATION: &str = "ServiceBusAuthorization";
