//! IP networks in configuration: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a
//! single-host network), and the allow/deny lists built from them (the relay's `[access]`,
//! the proxy's `--allow`/`--deny`). Host bits are dropped (`10.1.2.3/8` is `10.0.0.0/8`), and
//! IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`) are checked as the IPv4 address they are.

use std::net::IpAddr;

pub use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer};

/// A value that is not an IP address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {expected}")]
pub struct NetError {
    text: String,
    expected: &'static str,
}

/// Parses `10.0.0.0/8`, `192.0.2.7` or `::1`.
///
/// # Errors
/// [`NetError`] naming the text.
pub fn parse_net(text: &str) -> Result<IpNet, NetError> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| NetError {
            text: text.to_owned(),
            expected: "an IP address or CIDR network (10.0.0.0/8, 192.0.2.7, ::1)",
        })
}

/// Parses an IPv4 network such as `127.64.0.0/10` (the loopback range the listener maps
/// clients into).
///
/// # Errors
/// [`NetError`] naming the text.
pub fn parse_ipv4_net(text: &str) -> Result<Ipv4Net, NetError> {
    text.trim().parse().map_err(|_| NetError {
        text: text.to_owned(),
        expected: "an IPv4 CIDR range such as 127.64.0.0/10",
    })
}

/// Serde `deserialize_with` for a list of networks.
///
/// # Errors
/// The first entry that is not a network.
pub fn deserialize_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_net(s).map_err(serde::de::Error::custom))
        .collect()
}

/// Who may connect: a deny list, which wins, and an allow list, where empty means everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessList {
    /// Allowed addresses or networks; empty allows all.
    #[serde(default, deserialize_with = "deserialize_nets")]
    pub allow: Vec<IpNet>,
    /// Refused addresses or networks, even if allowed.
    #[serde(default, deserialize_with = "deserialize_nets")]
    pub deny: Vec<IpNet>,
}

impl AccessList {
    /// Whether a peer at `ip` may connect.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let hit = |list: &[IpNet]| list.iter().any(|n| n.contains(&ip));
        (self.allow.is_empty() || hit(&self.allow)) && !hit(&self.deny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks_and_bare_addresses() {
        assert_eq!(
            parse_net(" 10.1.2.3/8 ").expect("net").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_net("192.0.2.7").expect("host").to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(parse_net("::1").expect("v6").to_string(), "::1/128");
        for bad in ["10.0.0.0/33", "localhost", ""] {
            let e = parse_net(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(
            parse_ipv4_net("127.64.0.0/10").expect("v4").to_string(),
            "127.64.0.0/10"
        );
        assert!(parse_ipv4_net("::1/128").is_err());
    }

    #[test]
    fn deny_wins_and_empty_allow_means_everyone() {
        assert!(AccessList::default().permits(ip("203.0.113.9")));
        let list: AccessList =
            toml::from_str("allow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.0.0.66\"]")
                .expect("list");
        assert!(list.permits(ip("10.1.2.3")));
        assert!(
            list.permits(ip("::ffff:10.1.2.3")),
            "IPv4-mapped checked as IPv4"
        );
        assert!(list.permits(ip("::1")));
        assert!(!list.permits(ip("10.0.0.66")));
        assert!(!list.permits(ip("::ffff:10.0.0.66")));
        assert!(!list.permits(ip("192.0.2.1")));
        let e = toml::from_str::<AccessList>("allow = [\"10.0.0.0/33\"]").expect_err("bad");
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        let e = toml::from_str::<AccessList>("alow = []").expect_err("typo");
        assert!(e.to_string().contains("alow"), "{e}");
    }
}
