//! Who holds how many sessions: the per-address and per-site counts behind the session quotas,
//! and each holder's never-logged-in ("pre-login") sessions, oldest first, which are the ones
//! eviction may take. `Init` needs no credential, so these are what keep a flood from one
//! address or site from costing anyone else their session (see `admission.rs`).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::clock::Instant;
use crate::ids::SessionId;

/// The address a quota counts: the canonical IP, with IPv6 taken per /64 (one host can hold a
/// whole /64, so counting single IPv6 addresses would be no limit at all). The server counts
/// connections per the same key.
pub fn quota_key(ip: IpAddr) -> IpAddr {
    match super::identity::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// One holder's sessions.
#[derive(Debug, Default)]
pub(crate) struct Holder {
    /// All its sessions.
    pub(crate) sessions: usize,
    /// Its pre-login sessions by (start, id): the first is the oldest.
    pub(crate) prelogin: BTreeSet<(Instant, SessionId)>,
}

impl Holder {
    pub(crate) fn oldest_prelogin(&self) -> Option<SessionId> {
        self.prelogin.first().map(|&(_, id)| id)
    }
}

/// What the index needs to know of a session to file it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filed<'a> {
    pub(crate) id: SessionId,
    pub(crate) addr: IpAddr,
    pub(crate) site: Option<&'a str>,
    pub(crate) started: Instant,
}

/// Sessions per address and per site.
#[derive(Debug, Default)]
pub(crate) struct SessionIndex {
    addrs: HashMap<IpAddr, Holder>,
    sites: HashMap<String, Holder>,
}

impl SessionIndex {
    pub(crate) fn add(&mut self, s: Filed<'_>, prelogin: bool) {
        let entry = (s.started, s.id);
        let addr = self.addrs.entry(s.addr).or_default();
        addr.sessions += 1;
        if prelogin {
            addr.prelogin.insert(entry);
        }
        if let Some(site) = s.site {
            let site = self.sites.entry(site.to_owned()).or_default();
            site.sessions += 1;
            if prelogin {
                site.prelogin.insert(entry);
            }
        }
    }

    pub(crate) fn remove(&mut self, s: Filed<'_>) {
        let entry = (s.started, s.id);
        if let Some(addr) = self.addrs.get_mut(&s.addr) {
            addr.sessions = addr.sessions.saturating_sub(1);
            addr.prelogin.remove(&entry);
            if addr.sessions == 0 {
                self.addrs.remove(&s.addr);
            }
        }
        if let Some(name) = s.site
            && let Some(site) = self.sites.get_mut(name)
        {
            site.sessions = site.sessions.saturating_sub(1);
            site.prelogin.remove(&entry);
            if site.sessions == 0 {
                self.sites.remove(name);
            }
        }
    }

    /// The session logged in: it is no longer a candidate for eviction.
    pub(crate) fn logged_in(&mut self, s: Filed<'_>) {
        let entry = (s.started, s.id);
        if let Some(addr) = self.addrs.get_mut(&s.addr) {
            addr.prelogin.remove(&entry);
        }
        if let Some(site) = s.site.and_then(|name| self.sites.get_mut(name)) {
            site.prelogin.remove(&entry);
        }
    }

    pub(crate) fn addr(&self, addr: IpAddr) -> Option<&Holder> {
        self.addrs.get(&addr)
    }

    pub(crate) fn site(&self, site: &str) -> Option<&Holder> {
        self.sites.get(site)
    }

    /// The address other than `except` holding the most pre-login sessions, with its oldest
    /// one and how many it holds.
    pub(crate) fn largest_prelogin_holder(&self, except: IpAddr) -> Option<(SessionId, usize)> {
        self.addrs
            .iter()
            .filter(|(addr, h)| **addr != except && !h.prelogin.is_empty())
            .max_by_key(|(_, h)| h.prelogin.len())
            .and_then(|(_, h)| Some((h.oldest_prelogin()?, h.prelogin.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(quota_key(a), quota_key(b));
        assert_ne!(quota_key(a), quota_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(quota_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
