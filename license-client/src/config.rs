//! The client library's settings: server address and port, connect timeout, SOCKS5 egress,
//! the local source address, the pinned server key, connection reuse, the client's name and
//! clock. Read from
//! `mxnetapi.ini` ([`crate::ini`]) or built in code.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use license_core::DEFAULT_PORT;
use license_core::clock::{SharedWallClock, SystemClock};
use license_core::protocol::ServerPublicKey;

/// Default connect timeout (`timeout=3000` in the manual's `mxnetapi.ini`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3000);
/// Default time to wait for an answer once connected.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A password that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The password, for the SOCKS handshake only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A SOCKS5 proxy (section 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksConfig {
    /// Proxy host.
    pub host: String,
    /// Proxy port (default 1080).
    pub port: u16,
    /// Username and password, when the proxy asks for them.
    pub auth: Option<(String, Password)>,
}

/// The client library's settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server host name or IP (`ip=`).
    pub host: String,
    /// Server port (`port=`).
    pub port: u16,
    /// Connect timeout (`timeout=`, milliseconds in the file).
    pub connect_timeout: Duration,
    /// Time to wait for an answer.
    pub io_timeout: Duration,
    /// SOCKS5 egress.
    pub socks: Option<SocksConfig>,
    /// The local address to connect from (`localip=`); `None` lets the system choose. On a
    /// multi-homed host it picks the interface, and on Linux any `127.x.y.z` works, which lets
    /// one machine act as several clients of an IP-licensed server.
    pub local_addr: Option<IpAddr>,
    /// The server key to insist on (`serverkey=`); `None` accepts any key.
    pub pinned_key: Option<ServerPublicKey>,
    /// Keep one connection open across calls (`persistent=1`); the default opens one
    /// connection per call, as the manual's client does (section 6.4).
    pub persistent: bool,
    /// The name sent at init (shown by `GetLoginCountEx` and in the server's status).
    pub client_name: String,
    /// Clock for request time-stamps.
    pub clock: SharedWallClock,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: DEFAULT_PORT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            socks: None,
            local_addr: None,
            pinned_key: None,
            persistent: false,
            client_name: default_client_name(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl ClientConfig {
    /// Defaults with the server at `host:port`.
    pub fn for_server(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            ..Self::default()
        }
    }
}

/// `host/pid`, from `HOSTNAME` or `/etc/hostname` when available.
pub fn default_client_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "client".to_owned());
    format!("{host}/{}", std::process::id())
}
