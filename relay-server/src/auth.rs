//! Authorization of listen and connect requests and of `renewToken`: where the SAS token is
//! found, which rule verifies it, and which HTTP status a failure maps to.
//!
//! - `401`: token missing, malformed, signed with an unknown rule or a wrong key, or expired.
//! - `403`: a valid token that lacks the right (`Listen` / `Send`; `Manage` implies both), whose
//!   audience does not cover the hybrid connection, or that names another host: one outside
//!   `accepted_hosts`, or, when that is empty, not the host the request was sent to (its
//!   `Host`), so a token minted for another relay sharing a key is not accepted here.

use std::time::{SystemTime, UNIX_EPOCH};

use hc_protocol::sas::SasError;
use hc_protocol::uri::PARAM_TOKEN;
use hc_protocol::{SERVICE_BUS_AUTHORIZATION, SasToken};
use http::HeaderMap;

use crate::config::{HybridConnectionConfig, Right, SasRule};
use crate::refusal::Refusal;

/// An `accepted_hosts` entry that accepts a token for any host (the old default).
pub(crate) const ANY_HOST: &str = "*";

/// A successfully verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorized {
    /// The token's expiry (Unix seconds).
    pub expiry: u64,
}

/// Verifies tokens against the namespace rules and one hybrid connection's rules.
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    pub namespace_rules: Vec<SasRule>,
    pub accepted_hosts: Vec<String>,
}

impl Authorizer {
    /// Checks that `token` grants `right` on `hc` at `now` (Unix seconds), for a request sent
    /// to `reached_as` (its `Host` header).
    pub fn authorize(
        &self,
        hc: &HybridConnectionConfig,
        token: Option<&str>,
        right: Right,
        now: u64,
        reached_as: Option<&str>,
    ) -> Result<Authorized, Refusal> {
        let token = token.ok_or_else(|| {
            Refusal::unauthorized(format!(
                "MissingToken: the request has no {SERVICE_BUS_AUTHORIZATION} header and no \
                 {PARAM_TOKEN} parameter"
            ))
        })?;
        let parsed = SasToken::parse(token)
            .map_err(|e| Refusal::unauthorized(format!("MalformedToken: {e}")))?;
        let invalid_signature =
            || Refusal::unauthorized("InvalidSignature: the token signature is not valid");
        // Rules of the entity first, then namespace-wide rules, as Azure resolves them.
        let rule = hc
            .rules
            .iter()
            .chain(&self.namespace_rules)
            .find(|r| r.name == parsed.key_name())
            .ok_or_else(invalid_signature)?;
        parsed.verify(&rule.key, now).map_err(|e| match e {
            SasError::Expired { expired_at, .. } => Refusal::unauthorized(format!(
                "ExpiredToken: the token expired at {expired_at} (Unix time)"
            )),
            _ => invalid_signature(),
        })?;
        let audience = parsed.audience();
        let host_ok = if self.accepted_hosts.is_empty() {
            reached_as.is_some_and(|authority| audience.names_host_of(authority))
        } else {
            self.accepted_hosts
                .iter()
                .any(|h| h == ANY_HOST || h.eq_ignore_ascii_case(audience.host()))
        };
        if !host_ok {
            return Err(Refusal::forbidden(format!(
                "InvalidAudience: the token is for host '{}', which this relay does not serve",
                audience.host()
            )));
        }
        if !audience.covers_path(&hc.name) {
            return Err(Refusal::forbidden(format!(
                "InvalidAudience: the token's resource does not cover hybrid connection '{}'",
                hc.name
            )));
        }
        if !rule.grants(right) {
            return Err(Refusal::forbidden(format!(
                "Unauthorized access. '{}' claim(s) are required to perform this operation. \
                 Resource: '{}'",
                right.as_str(),
                hc.name
            )));
        }
        Ok(Authorized {
            expiry: parsed.expiry(),
        })
    }
}

/// The token of a request: the `ServiceBusAuthorization` header, else the (already decoded)
/// `sb-hc-token` query parameter.
pub(crate) fn request_token<'a>(
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
) -> Option<&'a str> {
    headers
        .get(SERVICE_BUS_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(PARAM_TOKEN))
                .map(|(_, v)| v.as_str())
        })
        .filter(|t| !t.trim().is_empty())
}

/// The `Host` a request was sent to, which a token's audience must name by default.
pub(crate) fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
}

/// Wall-clock Unix time in milliseconds (token expiries are wall-clock times).
pub(crate) fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Wall-clock Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    u64::try_from(unix_millis() / 1000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use hc_protocol::Secret;
    use http::StatusCode;

    use super::*;

    fn setup() -> (Authorizer, HybridConnectionConfig) {
        let hc = HybridConnectionConfig::new(
            "license",
            vec![
                SasRule::new("listen", "lk", &[Right::Listen]),
                SasRule::new("send", "sk", &[Right::Send]),
            ],
        );
        let auth = Authorizer {
            namespace_rules: vec![SasRule::new("root", "rk", &[Right::Manage])],
            accepted_hosts: Vec::new(),
        };
        (auth, hc)
    }

    fn token(resource: &str, name: &str, key: &str, se: u64) -> String {
        SasToken::sign(resource, name, &Secret::new(key), se)
            .expect("sign")
            .expose()
            .to_owned()
    }

    #[test]
    fn statuses() {
        let (auth, hc) = setup();
        let check = |t: Option<&str>, right| {
            auth.authorize(&hc, t, right, 1000, Some("relay:9443"))
                .map_err(|r| r.status)
        };
        let listen = token("http://relay:9443/license", "listen", "lk", 2000);
        assert_eq!(
            check(Some(&listen), Right::Listen),
            Ok(Authorized { expiry: 2000 })
        );
        assert_eq!(check(None, Right::Listen), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            check(Some("garbage"), Right::Listen),
            Err(StatusCode::UNAUTHORIZED)
        );
        let wrong_key = token("http://relay/license", "listen", "nope", 2000);
        assert_eq!(
            check(Some(&wrong_key), Right::Listen),
            Err(StatusCode::UNAUTHORIZED)
        );
        let unknown_rule = token("http://relay/license", "who", "lk", 2000);
        assert_eq!(
            check(Some(&unknown_rule), Right::Listen),
            Err(StatusCode::UNAUTHORIZED)
        );
        let expired = token("http://relay/license", "listen", "lk", 999);
        assert_eq!(
            check(Some(&expired), Right::Listen),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            check(Some(&listen), Right::Send),
            Err(StatusCode::FORBIDDEN)
        );
        let other_path = token("http://relay/other", "listen", "lk", 2000);
        assert_eq!(
            check(Some(&other_path), Right::Listen),
            Err(StatusCode::FORBIDDEN)
        );
        let root = token("http://relay/", "root", "rk", 2000);
        assert!(check(Some(&root), Right::Listen).is_ok());
        assert!(check(Some(&root), Right::Send).is_ok());
    }

    #[test]
    fn accepted_hosts_restrict_audience() {
        let (mut auth, hc) = setup();
        auth.accepted_hosts = vec!["relay.example".into()];
        let good = token("http://RELAY.example:443/license", "listen", "lk", 2000);
        let reached = Some("10.0.0.1:9443");
        assert!(
            auth.authorize(&hc, Some(&good), Right::Listen, 1, reached)
                .is_ok()
        );
        let bad = token("http://evil.example/license", "listen", "lk", 2000);
        let err = auth
            .authorize(&hc, Some(&bad), Right::Listen, 1, reached)
            .expect_err("host");
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        auth.accepted_hosts = vec![ANY_HOST.into()];
        assert!(
            auth.authorize(&hc, Some(&bad), Right::Listen, 1, None)
                .is_ok()
        );
    }

    #[test]
    fn by_default_the_audience_must_name_the_host_the_request_was_sent_to() {
        let (auth, hc) = setup();
        let for_here = token("http://relay.example:443/license", "listen", "lk", 2000);
        let for_elsewhere = token("http://other.example/license", "listen", "lk", 2000);
        let v6 = token("http://[::1]:9443/license", "listen", "lk", 2000);
        let status = |t: &str, host: Option<&str>| {
            auth.authorize(&hc, Some(t), Right::Listen, 1, host)
                .map(|_| ())
                .map_err(|r| r.status)
        };
        assert_eq!(status(&for_here, Some("Relay.Example:9443")), Ok(()));
        assert_eq!(status(&for_here, Some("relay.example")), Ok(()));
        assert_eq!(status(&v6, Some("[::1]:9443")), Ok(()));
        let forbidden = Err(StatusCode::FORBIDDEN);
        assert_eq!(
            status(&for_elsewhere, Some("relay.example:9443")),
            forbidden
        );
        assert_eq!(status(&for_here, Some("127.0.0.1:9443")), forbidden);
        assert_eq!(status(&for_here, None), forbidden);
    }

    #[test]
    fn header_wins_over_query() {
        let mut headers = HeaderMap::new();
        let query = vec![("sb-hc-token".to_owned(), "from-query".to_owned())];
        assert_eq!(request_token(&headers, &query), Some("from-query"));
        headers.insert(
            SERVICE_BUS_AUTHORIZATION,
            "from-header".parse().expect("value"),
        );
        assert_eq!(request_token(&headers, &query), Some("from-header"));
        assert_eq!(request_token(&HeaderMap::new(), &[]), None);
    }
}
