//! SAS tokens for one hybrid connection, issued from connection-string credentials.
//!
//! A key (`SharedAccessKeyName` + `SharedAccessKey`) signs fresh tokens for the .NET-style
//! audience `http://{host}/{path}/` with a TTL (default 3600 s, as the SDKs) and can be renewed;
//! a pre-made `SharedAccessSignature` is used as-is until it expires. Renewal happens at
//! `TTL − max(5 min, 10 %)` (never later than half the TTL), which keeps a margin for clock skew
//! and slow relays while not churning tokens.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hc_protocol::connection_string::Credentials;
use hc_protocol::sas::{DEFAULT_TTL_SECS, SasToken, audience_uri};
use hc_protocol::{SasError, Secret};
use tokio::time::Instant;

/// A token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signing failed (the key or key name is empty or too long).
    #[error("cannot sign a token: {0}")]
    Sign(#[from] SasError),
    /// The system clock is before 1970.
    #[error("system clock is before 1970")]
    Clock,
}

/// A token and when to replace it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The `SharedAccessSignature …` string.
    pub token: Secret,
    /// Its expiry (`se`), Unix seconds; `None` when a fixed token's expiry cannot be read.
    pub expires_at: Option<u64>,
    /// How long after issuance to renew it; `None` for a fixed token (it cannot be renewed).
    pub renew_after: Option<Duration>,
}

/// Issues tokens for one hybrid connection.
#[derive(Debug)]
pub struct TokenSource {
    credentials: Credentials,
    audience: String,
    ttl: Duration,
    cached: Mutex<Option<(IssuedToken, Instant)>>,
}

impl TokenSource {
    /// Default token lifetime (the SDKs' 60 minutes).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(DEFAULT_TTL_SECS);

    /// A source for the hybrid connection `entity_path` at relay `host`, issuing tokens that
    /// live `ttl` (ignored for fixed tokens; at least one second).
    pub fn new(credentials: Credentials, host: &str, entity_path: &str, ttl: Duration) -> Self {
        Self {
            credentials,
            audience: audience_uri(host, entity_path),
            ttl: ttl.max(Duration::from_secs(1)),
            cached: Mutex::new(None),
        }
    }

    /// Whether tokens can be renewed (a key, not a fixed token).
    pub fn renewable(&self) -> bool {
        matches!(self.credentials, Credentials::Key { .. })
    }

    /// The resource URI tokens are signed for.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Issues a fresh token (signs now; a fixed token is returned as-is).
    ///
    /// # Errors
    /// [`TokenError`] when signing fails.
    pub fn issue(&self) -> Result<IssuedToken, TokenError> {
        match &self.credentials {
            Credentials::Key { key_name, key } => {
                let now = unix_now()?;
                let expiry = now.saturating_add(self.ttl.as_secs().max(1));
                let token = SasToken::sign(&self.audience, key_name, key, expiry)?;
                Ok(IssuedToken {
                    token,
                    expires_at: Some(expiry),
                    renew_after: Some(renew_after(self.ttl)),
                })
            }
            Credentials::Token(token) => Ok(IssuedToken {
                token: token.clone(),
                expires_at: SasToken::parse(token.expose()).ok().map(|t| t.expiry()),
                renew_after: None,
            }),
        }
    }

    /// The current token for short-lived uses (one sender connection each): reuses the last
    /// issued token until its renewal time, so a burst of connections signs once.
    ///
    /// # Errors
    /// [`TokenError`] when signing fails.
    pub fn current(&self) -> Result<Secret, TokenError> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, issued)) = cached.as_ref() {
            let fresh = token
                .renew_after
                .is_none_or(|after| issued.elapsed() < after);
            if fresh {
                return Ok(token.token.clone());
            }
        }
        let token = self.issue()?;
        let secret = token.token.clone();
        *cached = Some((token, Instant::now()));
        Ok(secret)
    }
}

/// When to renew a token that lives `ttl`: `ttl − max(5 min, ttl / 10)`, but not later than
/// `ttl / 2` (short test TTLs).
pub fn renew_after(ttl: Duration) -> Duration {
    let margin = Duration::from_secs(300).max(ttl / 10).min(ttl / 2);
    ttl.saturating_sub(margin)
}

fn unix_now() -> Result<u64, TokenError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| TokenError::Clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Credentials {
        Credentials::Key {
            key_name: "rule".into(),
            key: Secret::new("k3y"),
        }
    }

    #[test]
    fn renewal_margin_is_five_minutes_or_ten_percent_capped_at_half() {
        assert_eq!(
            renew_after(Duration::from_secs(3600)),
            Duration::from_secs(3240)
        );
        assert_eq!(
            renew_after(Duration::from_secs(36_000)),
            Duration::from_secs(32_400)
        );
        assert_eq!(
            renew_after(Duration::from_secs(600)),
            Duration::from_secs(300)
        );
        assert_eq!(renew_after(Duration::from_secs(4)), Duration::from_secs(2));
    }

    #[test]
    fn key_tokens_verify_for_the_dotnet_audience() {
        let source = TokenSource::new(key(), "ns.example", "/hyco/", Duration::from_secs(60));
        assert_eq!(source.audience(), "http://ns.example/hyco/");
        let issued = source.issue().expect("issue");
        let parsed = SasToken::parse(issued.token.expose()).expect("parse");
        let now = unix_now().expect("clock");
        parsed.verify(&Secret::new("k3y"), now).expect("verifies");
        assert!(parsed.audience().covers_path("hyco"));
        assert!(
            issued
                .expires_at
                .is_some_and(|e| e >= now + 59 && e <= now + 61)
        );
        assert_eq!(issued.renew_after, Some(Duration::from_secs(30)));
        assert!(source.renewable());
    }

    #[test]
    fn fixed_tokens_are_not_renewable() {
        let fixed = Secret::new(
            "SharedAccessSignature sr=http%3A%2F%2Fh%2Fhc&sig=AA%3D%3D&se=1700000000&skn=k",
        );
        let source = TokenSource::new(
            Credentials::Token(fixed.clone()),
            "h",
            "hc",
            Duration::from_secs(60),
        );
        let issued = source.issue().expect("issue");
        assert_eq!(issued.token, fixed);
        assert_eq!(issued.expires_at, Some(1_700_000_000));
        assert_eq!(issued.renew_after, None);
        assert!(!source.renewable());
    }

    #[tokio::test(start_paused = true)]
    async fn current_reuses_the_token_until_its_renewal_time() {
        let source = TokenSource::new(key(), "h", "hc", Duration::from_secs(3600));
        let first = source.current().expect("first");
        tokio::time::advance(Duration::from_secs(3239)).await;
        assert_eq!(source.current().expect("cached"), first);
        tokio::time::advance(Duration::from_secs(2)).await;
        let renewed = source.current().expect("renewed");
        // Wall-clock seconds did not move under paused time, so compare issue instants instead.
        let cached = source.cached.lock().expect("lock");
        let (_, issued_at) = cached.as_ref().expect("cached");
        assert_eq!(issued_at.elapsed(), Duration::ZERO);
        drop(renewed);
    }
}
