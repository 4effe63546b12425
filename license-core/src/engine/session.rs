//! Sessions (sections 6.1–6.4): created by `rInit_MatrixAPI`, identified by an id, holding a
//! per-session secret agreed at init, the client's information and its last access time; they
//! end by release, by the session timeout, or by an administrator. A session that never logged
//! in uses the much shorter pre-login timeout (`Init` is free for anyone; see `admission.rs`).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::clock::Instant;
use crate::ids::SessionSecret;

/// What the server knows about a client (section 6.2, step 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's address: the TCP peer, or the address a PROXY header reported.
    pub addr: SocketAddr,
    /// The client's site, when a relay reported it.
    pub site: Option<String>,
    /// The name the client gave at init (host and process), possibly empty.
    pub name: String,
}

impl ClientInfo {
    /// A client at `addr` with no site and no name.
    pub fn at(addr: SocketAddr) -> Self {
        Self {
            addr,
            site: None,
            name: String::new(),
        }
    }

    /// The address used for IP-based licences.
    pub fn ip(&self) -> IpAddr {
        super::identity::canonical_ip(self.addr.ip())
    }

    /// The name shown for this client: its own name, else its address.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            self.ip().to_string()
        } else {
            self.name.clone()
        }
    }
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client: ClientInfo,
    pub(crate) secret: SessionSecret,
    pub(crate) started: Instant,
    pub(crate) last_access: Instant,
    /// The highest packet number accepted so far; requests must carry a larger one.
    pub(crate) last_packet: u64,
    /// The (dongle index, AppSlot) pairs this session has a login record for.
    pub(crate) logins: Vec<(usize, u16)>,
    /// Whether it ever took a login: until then the pre-login timeout applies and the session
    /// may be evicted to make room.
    pub(crate) logged_in: bool,
}

impl Session {
    pub(crate) fn new(
        client: ClientInfo,
        secret: SessionSecret,
        first_packet: u64,
        now: Instant,
    ) -> Self {
        Self {
            client,
            secret,
            started: now,
            last_access: now,
            last_packet: first_packet,
            logins: Vec::new(),
            logged_in: false,
        }
    }

    /// True once no call came for longer than its timeout: `SessionTimeOut` (section 6.3), or
    /// `PreLoginTimeOut` for a session that never logged in (never longer than the former).
    pub(crate) fn expired(&self, now: Instant, settings: &super::EngineSettings) -> bool {
        let timeout = if self.logged_in {
            settings.session_timeout
        } else {
            settings.prelogin_timeout.min(settings.session_timeout)
        };
        now.saturating_duration_since(self.last_access) > timeout
    }

    /// How the quota index files this session.
    pub(crate) fn filed(&self, id: crate::ids::SessionId) -> super::quota::Filed<'_> {
        super::quota::Filed {
            id,
            addr: super::quota::quota_key(self.client.addr.ip()),
            site: self.client.site.as_deref(),
            started: self.started,
        }
    }
}
