//! Identity mode `loopback`: each remote client's connections reach the target from their own
//! loopback source address, so an unmodified license server that counts seats per IP address
//! (and cannot read a PROXY header) still sees one address per real client.
//!
//! The address is chosen deterministically from the client's site and IP address — never the
//! port, so every connection of one client gets the same address, across listener restarts
//! too: SHA-256 of `dongle-relay loopback v1 NUL site NUL ip`, reduced onto the usable
//! addresses of a configurable range inside `127.0.0.0/8` (default `127.64.0.0/10`). Usable
//! means: not the range's first or last address, no `.0` or `.255` last octet (network- and
//! broadcast-like addresses some software treats specially), and never `127.0.0.1`.
//!
//! Two clients can hash to the same address; a bounded map of recent owners detects it and
//! the listener warns. Binding works on Linux, where the whole of 127/8 is routed to `lo`, and
//! on Windows, whose loopback pseudo-interface answers on every address of 127/8 too (the
//! vendor's license server runs there). Elsewhere (macOS and the BSDs configure only
//! 127.0.0.1), or when the bind fails, the connection fails with a clear reason (the sender is
//! rejected with 502 like an unreachable target).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpSocket, TcpStream};

use crate::identity::{IdentityError, RemoteClient};
use crate::target::{Connected, TargetConnector, TargetRequest, TcpTarget};

/// Whether this platform answers on every address of `127.0.0.0/8` without configuration, so
/// that any source in the range can be bound: Linux and Windows do.
pub const SUPPORTED: bool = cfg!(any(target_os = "linux", windows));

/// Recent address owners remembered for collision detection.
pub const OWNER_MEMORY: usize = 4096;

/// Domain separation for the hash (changing it would move every client to a new address).
const HASH_CONTEXT: &[u8] = b"dongle-relay loopback v1\0";

/// A validated loopback range and the deterministic client → address mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRange {
    net: Ipv4Net,
}

impl SourceRange {
    /// Accepts ranges inside `127.0.0.0/8` with a prefix of `/30` or shorter.
    ///
    /// # Errors
    /// [`IdentityError::Range`] otherwise.
    pub fn new(net: Ipv4Net) -> Result<Self, IdentityError> {
        let net = net.trunc();
        let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default();
        if !loopback.contains(&net) || net.prefix_len() > 30 {
            return Err(IdentityError::Range(net));
        }
        Ok(Self { net })
    }

    /// The range.
    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// How many addresses clients can be mapped to.
    pub fn usable(&self) -> u64 {
        let size = 1u64 << (32 - u32::from(self.net.prefix_len()));
        if self.net.prefix_len() <= 24 {
            size / 256 * 254
        } else {
            size - 2
        }
    }

    /// The `index`-th usable address (`index < usable()`).
    fn nth(&self, index: u64) -> Ipv4Addr {
        let base = u64::from(u32::from(self.net.network()));
        let offset = if self.net.prefix_len() <= 24 {
            index / 254 * 256 + 1 + index % 254
        } else {
            1 + index
        };
        // Both fit in 32 bits: the offset stays inside the range.
        Ipv4Addr::from(u32::try_from(base + offset).unwrap_or(u32::MAX))
    }

    /// The source address of a client at `site` with address `ip`.
    pub fn map(&self, site: Option<&str>, ip: IpAddr) -> Ipv4Addr {
        let digest = Sha256::new()
            .chain_update(HASH_CONTEXT)
            .chain_update(site.unwrap_or("").as_bytes())
            .chain_update(b"\0")
            .chain_update(ip.to_canonical().to_string().as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let usable = self.usable();
        let index = u64::from_be_bytes(first) % usable;
        let addr = self.nth(index);
        if addr == Ipv4Addr::LOCALHOST {
            self.nth((index + 1) % usable)
        } else {
            addr
        }
    }
}

/// Who was last given a source address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Owner {
    site: Option<String>,
    ip: IpAddr,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.site {
            Some(site) => write!(f, "client {} at site {site}", self.ip),
            None => write!(f, "client {} (no site)", self.ip),
        }
    }
}

/// Two different clients were mapped to one source address: the target will count them as
/// one. Reported when the address changes hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The shared source address.
    pub source: Ipv4Addr,
    /// The client now using it.
    pub client: String,
    /// The client that used it before.
    pub previous: String,
}

impl fmt::Display for Collision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} and {} both map to loopback source {}; the target counts them as one client \
             (a larger loopback_range makes this rarer)",
            self.client, self.previous, self.source
        )
    }
}

/// The last owner of each recently used address, bounded to [`OWNER_MEMORY`] entries
/// (oldest forgotten first).
#[derive(Debug, Default)]
struct Owners {
    by_addr: HashMap<Ipv4Addr, Owner>,
    order: VecDeque<Ipv4Addr>,
}

impl Owners {
    /// Records `owner` for `addr`; returns the previous owner if it was someone else.
    fn claim(&mut self, addr: Ipv4Addr, owner: Owner) -> Option<Owner> {
        match self.by_addr.get_mut(&addr) {
            Some(current) if *current == owner => None,
            Some(current) => Some(std::mem::replace(current, owner)),
            None => {
                self.by_addr.insert(addr, owner);
                self.order.push_back(addr);
                if self.order.len() > OWNER_MEMORY
                    && let Some(old) = self.order.pop_front()
                {
                    self.by_addr.remove(&old);
                }
                None
            }
        }
    }
}

/// A TCP target reached from a per-client loopback source address.
#[derive(Debug)]
pub struct LoopbackTarget {
    tcp: TcpTarget,
    range: SourceRange,
    owners: Mutex<Owners>,
}

impl LoopbackTarget {
    /// Wraps a plain TCP target (which must be reachable on loopback) with source addresses
    /// from `range`.
    ///
    /// # Errors
    /// [`IdentityError::Range`] for a range outside 127/8 or smaller than /30.
    pub fn new(tcp: TcpTarget, range: Ipv4Net) -> Result<Self, IdentityError> {
        Ok(Self {
            tcp,
            range: SourceRange::new(range)?,
            owners: Mutex::default(),
        })
    }

    /// The mapping in use.
    pub fn range(&self) -> SourceRange {
        self.range
    }

    /// The source address `client` is given.
    pub fn source_for(&self, client: &RemoteClient) -> Ipv4Addr {
        self.range.map(client.site.as_deref(), client.addr.ip())
    }

    fn note_owner(&self, source: Ipv4Addr, client: &RemoteClient) -> Option<Collision> {
        let owner = Owner {
            site: client.site.clone(),
            ip: client.addr.ip(),
        };
        let now = owner.to_string();
        // A poisoned lock only means another connection panicked mid-update; the map is
        // still a usable hint.
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        owners.claim(source, owner).map(|previous| Collision {
            source,
            client: now,
            previous: previous.to_string(),
        })
    }

    /// The target's first IPv4 loopback address.
    async fn resolve(&self) -> std::io::Result<SocketAddr> {
        let all: Vec<SocketAddr> = tokio::net::lookup_host(self.tcp.addr()).await?.collect();
        all.iter()
            .copied()
            .find(|a| matches!(a.ip(), IpAddr::V4(v4) if v4.is_loopback()))
            .ok_or_else(|| {
                let list: Vec<String> = all.iter().map(ToString::to_string).collect();
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "loopback identity needs a target on IPv4 loopback, {} resolves to [{}]",
                        self.tcp.addr(),
                        list.join(", ")
                    ),
                )
            })
    }
}

impl TargetConnector for LoopbackTarget {
    type Stream = TcpStream;

    async fn connect(&self, request: &TargetRequest<'_>) -> std::io::Result<Connected<TcpStream>> {
        let client = request.client;
        let source = self.source_for(client);
        if !SUPPORTED {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "loopback identity (source {source} for client {}) needs Linux or Windows, where all of 127.0.0.0/8 is local",
                    client.addr.ip()
                ),
            ));
        }
        let target = self.resolve().await?;
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(source), 0))
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind loopback source {source} for client {}: {e}",
                        client.addr.ip()
                    ),
                )
            })?;
        let stream = socket.connect(target).await?;
        hc_client::net::tune(&stream, self.tcp.keepalive());
        let mut connected = Connected::tcp(stream);
        connected.collision = self.note_owner(source, client);
        Ok(connected)
    }

    fn describe(&self) -> String {
        format!(
            "{} (loopback sources {})",
            self.tcp.describe(),
            self.range.net()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use hc_protocol::{Accept, RemoteEndpoint};

    use super::*;
    use crate::identity::ClientSource;

    fn range(s: &str) -> SourceRange {
        SourceRange::new(s.parse().expect("net")).expect("range")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn mapping_is_deterministic_per_site_and_ip_and_stays_in_range() {
        let r = range("127.64.0.0/10");
        let a = r.map(Some("branch-a"), ip("10.0.0.5"));
        assert_eq!(a, r.map(Some("branch-a"), ip("10.0.0.5")));
        assert_eq!(a, r.map(Some("branch-a"), ip("::ffff:10.0.0.5")));
        assert_ne!(a, r.map(Some("branch-b"), ip("10.0.0.5")));
        assert_ne!(a, r.map(Some("branch-a"), ip("10.0.0.6")));
        assert_ne!(a, r.map(None, ip("10.0.0.5")));
        // A stable function (computed independently): clients keep their address across
        // releases, so this value must never change.
        assert_eq!(a, Ipv4Addr::new(127, 127, 6, 119));
        for i in 0..2000u32 {
            let addr = r.map(Some("s"), IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            assert!(r.net().contains(&addr), "{addr}");
            let last = addr.octets()[3];
            assert!(last != 0 && last != 255, "{addr}");
            assert_ne!(addr, Ipv4Addr::LOCALHOST);
        }
    }

    #[test]
    fn small_ranges_avoid_first_and_last_and_localhost() {
        let r = range("127.0.0.0/29");
        assert_eq!(r.usable(), 6);
        let seen: HashSet<Ipv4Addr> = (0..200u32)
            .map(|i| r.map(None, IpAddr::V4(Ipv4Addr::from(i))))
            .collect();
        assert!(seen.iter().all(|a| {
            let last = a.octets()[3];
            (2..=6).contains(&last) // .0 network, .7 broadcast, .1 is 127.0.0.1
        }));
        assert_eq!(range("127.1.0.0/24").usable(), 254);
        assert_eq!(range("127.64.0.0/10").usable(), (1 << 22) / 256 * 254);
        for bad in ["10.0.0.0/8", "0.0.0.0/0", "127.0.0.0/31", "127.0.0.4/32"] {
            assert!(
                SourceRange::new(bad.parse().expect("net")).is_err(),
                "{bad}"
            );
        }
        // Host bits are ignored.
        assert_eq!(range("127.64.1.2/10").net().to_string(), "127.64.0.0/10");
    }

    #[test]
    fn collisions_are_detected_and_the_memory_is_bounded() {
        let mut owners = Owners::default();
        let at = |site: &str, i: &str| Owner {
            site: Some(site.into()),
            ip: ip(i),
        };
        let addr = Ipv4Addr::new(127, 64, 0, 1);
        assert_eq!(owners.claim(addr, at("a", "10.0.0.1")), None);
        assert_eq!(owners.claim(addr, at("a", "10.0.0.1")), None);
        assert_eq!(
            owners.claim(addr, at("b", "10.0.0.1")),
            Some(at("a", "10.0.0.1"))
        );
        for i in 0..(OWNER_MEMORY as u32 + 10) {
            owners.claim(Ipv4Addr::from(0x7f50_0000 + i), at("x", "10.0.0.9"));
        }
        assert_eq!(owners.by_addr.len(), OWNER_MEMORY);
        assert_eq!(owners.order.len(), OWNER_MEMORY);
        // The first address was forgotten: a new owner is no longer a reported collision.
        assert_eq!(owners.claim(addr, at("c", "10.0.0.1")), None);
    }

    #[test]
    fn target_reports_a_collision_when_an_address_changes_hands() {
        // A /30 has two usable addresses, so three clients must share one.
        let target = LoopbackTarget::new(
            TcpTarget::new("127.0.0.1:9", None),
            "127.9.9.0/30".parse().expect("net"),
        )
        .expect("target");
        let clients: Vec<RemoteClient> = (1..=3)
            .map(|i| RemoteClient {
                addr: SocketAddr::new(ip(&format!("10.0.0.{i}")), 1000),
                site: Some("a".into()),
                source: ClientSource::FromHeader,
            })
            .collect();
        let mut collisions = 0;
        for c in &clients {
            let source = target.source_for(c);
            if let Some(col) = target.note_owner(source, c) {
                assert_eq!(col.source, source);
                assert!(col.to_string().contains("both map to loopback source"));
                collisions += 1;
            }
        }
        assert!(collisions >= 1);
    }

    #[test]
    fn relay_endpoint_clients_are_mapped_when_the_header_is_missing() {
        let accept = Accept {
            address: "wss://relay.test/$hc/license?sb-hc-action=accept".into(),
            id: "1".into(),
            connect_headers: BTreeMap::new(),
            remote_endpoint: Some(RemoteEndpoint {
                address: "203.0.113.5".into(),
                port: 40000,
            }),
        };
        let client = RemoteClient::from_accept(&accept, Some("hq"));
        assert_eq!(client.source, ClientSource::FromRelayEndpoint);
        let target = LoopbackTarget::new(
            TcpTarget::new("127.0.0.1:9", None),
            crate::identity::default_loopback_range(),
        )
        .expect("target");
        assert_eq!(
            target.source_for(&client),
            target.range().map(Some("hq"), ip("203.0.113.5"))
        );
    }
}
