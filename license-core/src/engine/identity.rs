//! Who holds a seat: the licence type of section 6.7 (`SessionBaseLicense`). Per session (=1),
//! every session is its own identity; per IP (=0), all sessions from one client address share
//! one identity, so one seat per IP.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ids::SessionId;

/// How clients are counted (`SessionBaseLicense`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LicenseMode {
    /// `SessionBaseLicense=1` (the default): one seat per session (process).
    #[default]
    Session,
    /// `SessionBaseLicense=0`: one seat per client IP address.
    Ip,
}

impl LicenseMode {
    /// The identity of a login from `session` at `ip`.
    pub fn identity(self, session: SessionId, ip: IpAddr) -> Identity {
        match self {
            Self::Session => Identity::Session(session),
            Self::Ip => Identity::Ip(ip),
        }
    }

    /// The `SessionBaseLicense` value.
    pub fn session_base_license(self) -> u8 {
        match self {
            Self::Session => 1,
            Self::Ip => 0,
        }
    }
}

/// The holder of a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// A session (`SessionBaseLicense=1`).
    Session(SessionId),
    /// A client address (`SessionBaseLicense=0`).
    Ip(IpAddr),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(id) => write!(f, "session {id}"),
            Self::Ip(ip) => write!(f, "ip {ip}"),
        }
    }
}

/// The address used for IP identity: IPv4-mapped IPv6 addresses count as their IPv4 address,
/// so a dual-stack listener does not split one machine into two identities.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}
