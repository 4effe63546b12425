//! The outbound side of Hybrid Connections shared by the relay-listener and the local-proxy:
//! TLS trust (system roots, custom CA, certificate pinning), egress through SOCKS5 or HTTP
//! CONNECT proxies, dialling relay WebSockets, and the TCP⇄WebSocket byte pump.
//!
//! - [`trust`]: which relay certificates are trusted ([`TrustConfig`] → rustls `ClientConfig`).
//! - [`egress`]: how TCP reaches the relay (direct, SOCKS5, HTTP CONNECT).
//! - [`dial`]: one relay WebSocket: TCP, TLS, upgrade, refusal statuses ([`Dialer`]).
//! - [`access`]: the relay, hybrid connection and credentials of a component, and the four HC
//!   dials (listen, connect, accept, reject) built on [`Dialer`].
//! - [`token`]: SAS tokens issued from connection-string credentials, with renewal timing.
//! - [`subprotocol`]: the `dongle-relay.v1` half-close negotiation.
//! - [`identity`]: how the listener learns who the local client is (custom headers, PROXY v2).
//! - [`pump`]: the one byte pump between a local stream and a relay WebSocket.
//! - [`replicas`]: several relays serving one hybrid connection (configured, or the addresses
//!   of one host name, re-resolved), and the order to try them.
//! - [`resolve`]: host name → replica addresses, injectable for tests ([`resolve::Resolver`]).
//! - [`ws_io`]: a relay WebSocket as one byte stream (for the multiplexer).
//! - [`mux`]: many TCP streams over one relay WebSocket (`dongle-relay.mux.v1`, yamux).
//! - [`splice`]: the byte copy between a local stream and one multiplexed stream.
//! - [`azbridge`]: Azure Relay Bridge's in-stream preamble.
//! - [`backoff`]: reconnect delays (exponential, full jitter, capped).
//! - [`net`]: TCP socket tuning (no-delay, keepalive).
//! - [`capacity`]: what the machine holds (`somaxconn`, open-file limit), for default limits.
//! - [`slots`]: tunnel slots shared fairly per client, released when the client has gone.
//! - [`settings`]: the configuration-file sections shared by `listen` and `proxy`.

pub mod access;
pub mod azbridge;
pub mod backoff;
pub mod capacity;
pub mod dial;
pub mod egress;
pub mod identity;
pub mod mux;
pub mod net;
pub mod options;
pub mod pump;
pub mod replicas;
pub mod resolve;
pub mod settings;
pub mod slots;
pub mod splice;
pub mod subprotocol;
pub mod token;
pub mod trust;
pub mod ws_io;

pub use access::{AccessError, RelayAccess};
pub use backoff::{Backoff, Reconnect};
pub use dial::{DialError, DialTimeouts, Dialer, RelayIo, RelayStream};
pub use egress::{Egress, ProxyAuth};
pub use pump::{ByteMeter, PumpConfig, PumpEnd, PumpReport, pump};
pub use replicas::Replicas;
pub use resolve::{Resolve, Resolver};
pub use subprotocol::Framing;
pub use token::{IssuedToken, TokenError, TokenSource};
pub use trust::{Fingerprint, TrustConfig, TrustError};

/// Re-export so dependants use the same tungstenite as the pump.
pub use tokio_tungstenite;

/// Installs [`crypto_provider`] as the process default. Idempotent: later calls (and a
/// provider installed by someone else) are fine. Call it first in `main` and in test fixtures.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all we want.
    let _ = crypto_provider().install_default();
}

/// rustls' ring crypto provider with `TLS13_AES_128_GCM_SHA256` as the first cipher suite a
/// client offers (ring lists `TLS13_AES_256_GCM_SHA384` first; the rest keep their order).
///
/// Why: a TLS 1.3 key schedule is a run of HMACs over the suite's hash, and the CPUs these
/// programs run on compute SHA-256 in hardware (x86-64 and ARMv8 SHA extensions) but not
/// SHA-384. Every new 1:1 tunnel makes two TLS handshakes from our side, so the relay's
/// rendezvous rate is bound by them: preferring the SHA-256 suite cut the CPU per tunnel of
/// relay, listener and proxy by about 10 %, for 11 % more tunnels per second
/// (docs/performance.md, "TLS cipher suite").
/// AES-128-GCM is TLS 1.3's mandatory suite (RFC 8446 §9.1); a server still picks the one
/// it prefers.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: only the preferred suite moves.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}
