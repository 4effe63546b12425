//! The custom headers our sender adds to its connect request. The relay passes them to the
//! listener in `accept.connectHeaders`; a later issue turns them into a PROXY v2 header so the
//! license server sees which client (and which site) a tunnelled connection belongs to.

/// The local client's address as the local-proxy saw it, `ip:port` (`[v6]:port`).
pub const CLIENT_HEADER: &str = "X-Dongle-Relay-Client";
/// The configured name of the client site (e.g. `branch-a`).
pub const SITE_HEADER: &str = "X-Dongle-Relay-Site";
