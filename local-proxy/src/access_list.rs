//! Which local clients may use the proxy: a deny list (wins) and an allow list (empty means
//! everyone), of IP networks in CIDR notation or single addresses.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// Allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    /// Clients allowed; empty allows all.
    pub allow: Vec<IpNet>,
    /// Clients refused, even if allowed.
    pub deny: Vec<IpNet>,
}

impl AccessList {
    /// Whether `ip` may connect. IPv4-mapped IPv6 addresses are checked as IPv4.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// Parses `10.0.0.0/8`, `192.0.2.7` or `::1` (a bare address is a single-host network).
///
/// # Errors
/// A message naming the value.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_empty_allow_means_everyone() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let open = AccessList::default();
        assert!(open.permits(ip("203.0.113.9")));
        let list = AccessList {
            allow: vec![
                parse_net("10.0.0.0/8").expect("net"),
                parse_net("::1").expect("v6"),
            ],
            deny: vec![parse_net("10.0.0.66").expect("host")],
        };
        assert!(list.permits(ip("10.1.2.3")));
        assert!(list.permits(ip("::ffff:10.1.2.3")));
        assert!(list.permits(ip("::1")));
        assert!(!list.permits(ip("10.0.0.66")));
        assert!(!list.permits(ip("192.0.2.1")));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("localhost").is_err());
    }
}
