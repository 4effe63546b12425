//! Which peers may put a PROXY protocol v2 header in front of a connection (`TrustedProxy=`):
//! a list of addresses and networks, loopback by default because the relay-listener normally
//! runs on the dongle host itself. A header from anyone else is refused, so a LAN host cannot
//! claim to be another client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use config_syntax::parse_net;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The peers whose PROXY headers the server believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl Default for TrustedProxies {
    /// Loopback: `127.0.0.0/8` and `::1`.
    fn default() -> Self {
        Self::loopback()
    }
}

impl TrustedProxies {
    /// `127.0.0.0/8` and `::1` (the relay-listener on the same host).
    pub fn loopback() -> Self {
        let v4 = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).map(IpNet::V4);
        let v6 = Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).map(IpNet::V6);
        Self {
            nets: [v4, v6].into_iter().filter_map(Result::ok).collect(),
        }
    }

    /// Nobody: every PROXY header is refused.
    pub fn none() -> Self {
        Self { nets: Vec::new() }
    }

    /// Exactly these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Parses a list of addresses and networks separated by commas or blanks
    /// (`127.0.0.0/8, ::1, 10.0.0.5`); `none` or an empty list trusts nobody.
    ///
    /// # Errors
    /// The first entry that is neither an address nor a network.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        let entries: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if entries.len() == 1 && entries[0].eq_ignore_ascii_case("none") {
            return Ok(Self::none());
        }
        entries
            .into_iter()
            .map(|s| parse_net(s).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()
            .map(Self::new)
    }

    /// True when `ip` lies in one of the networks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// True when nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nets.is_empty() {
            return f.write_str("none");
        }
        for (i, n) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            // A single address reads better without its /32.
            if n.prefix_len() == n.max_prefix_len() {
                write!(f, "{}", n.addr())?;
            } else {
                write!(f, "{n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn loopback_by_default() {
        let t = TrustedProxies::default();
        assert!(t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("127.64.3.9")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped loopback");
        assert!(!t.contains(ip("10.0.0.1")));
        assert!(!t.contains(ip("::2")));
        assert_eq!(t.to_string(), "127.0.0.0/8, ::1");
    }

    #[test]
    fn lists_addresses_and_networks() {
        let t = TrustedProxies::parse_list(" 10.1.2.3, 192.168.0.0/16  fd00::/8").expect("parse");
        assert!(t.contains(ip("10.1.2.3")));
        assert!(!t.contains(ip("10.1.2.4")));
        assert!(t.contains(ip("192.168.44.1")));
        assert!(t.contains(ip("fd00::7")));
        assert!(!t.contains(ip("127.0.0.1")));
        assert_eq!(t.to_string(), "10.1.2.3, 192.168.0.0/16, fd00::/8");
        // Host bits are dropped: 10.1.2.3/8 means 10.0.0.0/8.
        let t = TrustedProxies::parse_list("10.1.2.3/8").expect("parse");
        assert!(t.contains(ip("10.200.0.1")));
    }

    #[test]
    fn none_and_empty_trust_nobody() {
        for text in ["none", "NONE", "", " , "] {
            let t = TrustedProxies::parse_list(text).expect("parse");
            assert!(t.is_empty(), "{text:?}");
            assert!(!t.contains(ip("127.0.0.1")));
            assert_eq!(t.to_string(), "none");
        }
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse_list("127.0.0.1, localhost").expect_err("bad");
        assert!(err.contains("localhost"), "{err}");
        assert!(TrustedProxies::parse_list("10.0.0.0/33").is_err());
    }
}
