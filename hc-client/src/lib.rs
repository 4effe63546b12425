//! The outbound side of Hybrid Connections shared by the relay-listener and the local-proxy:
//! TLS trust (system roots, custom CA, certificate pinning), egress through SOCKS5 or HTTP
//! CONNECT proxies, dialling relay WebSockets, and the TCP⇄WebSocket byte pump.

/// Installs rustls' ring crypto provider as the process default. Idempotent: later calls (and
/// a provider installed by someone else) are fine. Call it first in `main` and in test fixtures.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
