//! Where an ops endpoint may listen: loopback by default, anything else only with a token
//! (users of license servers have been burnt by admin pages open to the LAN).

use std::net::SocketAddr;

use crate::token::BearerToken;

/// The port admin endpoints use by default (`127.0.0.1:12380`): next to the license port
/// 12300, outside the common ranges.
pub const DEFAULT_ADMIN_PORT: u16 = 12380;

/// An address that may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve the admin endpoint on {0} without a bearer token: bind it to \
         127.0.0.1 or ::1, or configure a token"
    )]
    NeedsToken(SocketAddr),
}

/// Whether only this host can reach `addr` (127.0.0.0/8, ::1, IPv4-mapped loopback).
/// `0.0.0.0` and `::` are not loopback: they listen everywhere.
pub fn is_loopback_only(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Checks that an endpoint may listen on `addr` with `token`.
///
/// # Errors
/// [`BindError::NeedsToken`] for a non-loopback address without a token.
pub fn check_bind(addr: SocketAddr, token: Option<&BearerToken>) -> Result<(), BindError> {
    if token.is_none() && !is_loopback_only(&addr) {
        return Err(BindError::NeedsToken(addr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_without_token_anything_else_with_one() {
        let token = BearerToken::generate();
        for ok in [
            "127.0.0.1:0",
            "127.8.9.10:12380",
            "[::1]:1",
            "[::ffff:127.0.0.1]:2",
        ] {
            let addr: SocketAddr = ok.parse().expect("addr");
            assert_eq!(check_bind(addr, None), Ok(()), "{ok}");
        }
        for refused in [
            "0.0.0.0:12380",
            "[::]:12380",
            "10.0.0.5:80",
            "[2001:db8::1]:1",
        ] {
            let addr: SocketAddr = refused.parse().expect("addr");
            assert_eq!(
                check_bind(addr, None),
                Err(BindError::NeedsToken(addr)),
                "{refused}"
            );
            assert_eq!(check_bind(addr, Some(&token)), Ok(()), "{refused}");
        }
    }
}
