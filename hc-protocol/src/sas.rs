//! Shared Access Signature (SAS) tokens as Azure Relay issues and checks them.
//!
//! Format (identical in the .NET, Java and Node SDKs):
//!
//! ```text
//! SharedAccessSignature sr={enc(resource)}&sig={enc(base64(HMAC-SHA256(key, enc(resource) + "\n" + se)))}&se={expiry}&skn={enc(keyName)}
//! ```
//!
//! - The HMAC key is the UTF-8 bytes of the key string as the portal shows it; it is **not**
//!   base64-decoded.
//! - The string-to-sign uses the URL-*encoded* resource. SDKs disagree on the encoder (upper or
//!   lower-case hex, `+` for space), so a verifier must sign the raw `sr` value exactly as it was
//!   received, never a re-encoding of it.
//! - Audiences differ between SDKs (`http://ns/hc/` from .NET, `http://ns:443/hc` from Node), so
//!   [`Audience`] compares them after normalising scheme, port and trailing slash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The prefix every SAS token starts with.
pub const TOKEN_PREFIX: &str = "SharedAccessSignature ";

/// Default token lifetime of the Azure SDKs, in seconds.
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// Longest key name and key the service accepts (`MaxKeyNameLength`, `MaxKeyLength`).
pub const MAX_KEY_LEN: usize = 256;

/// Why a token was refused. Every variant maps to HTTP 401 on a listen or connect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SasError {
    /// The token does not start with `SharedAccessSignature `.
    #[error("token does not start with 'SharedAccessSignature '")]
    MissingPrefix,
    /// A required field (`sr`, `sig`, `se`, `skn`) is absent.
    #[error("token has no '{0}' field")]
    MissingField(&'static str),
    /// A field appears twice.
    #[error("token has more than one '{0}' field")]
    DuplicateField(String),
    /// `se` is not a decimal number of seconds.
    #[error("token expiry 'se' is not a number")]
    BadExpiry,
    /// A field is not valid percent-encoding or `sig` is not base64.
    #[error("token field '{0}' is not well encoded")]
    BadEncoding(&'static str),
    /// `sr` is not an absolute URI.
    #[error("token resource 'sr' is not a URI")]
    BadResource,
    /// The token expired at `se`.
    #[error("token expired at {expired_at} (now {now})")]
    Expired {
        /// The token's `se`.
        expired_at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The signature does not match the key.
    #[error("token signature does not match key '{key_name}'")]
    BadSignature {
        /// The key name the token claimed.
        key_name: String,
    },
    /// The key name or key is empty or longer than the service allows.
    #[error("key name and key must be 1..={MAX_KEY_LEN} characters")]
    BadKey,
}

/// A parsed SAS token. Field values are kept exactly as received (still percent-encoded)
/// because the signature covers the encoded resource.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    raw_resource: String,
    raw_expiry: String,
    signature: Vec<u8>,
    expiry: u64,
    key_name: String,
    audience: Audience,
}

impl std::fmt::Debug for SasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signature is a bearer credential: never print it.
        f.debug_struct("SasToken")
            .field("audience", &self.audience)
            .field("expiry", &self.expiry)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

impl SasToken {
    /// Signs `resource_uri` (for example `http://ns.example/hc/`) with `key` so that it expires
    /// at `expiry` (Unix seconds), and returns the token string.
    ///
    /// # Errors
    /// [`SasError::BadKey`] when the key name or key is empty or too long.
    pub fn sign(
        resource_uri: &str,
        key_name: &str,
        key: &Secret,
        expiry: u64,
    ) -> Result<Secret, SasError> {
        check_key(key_name, key)?;
        let sr = urlencoding::encode(resource_uri);
        let signature = hmac_sign(key, &sr, &expiry.to_string());
        let sig = urlencoding::encode(&BASE64.encode(signature)).into_owned();
        let skn = urlencoding::encode(key_name);
        Ok(Secret::new(format!(
            "{TOKEN_PREFIX}sr={sr}&sig={sig}&se={expiry}&skn={skn}"
        )))
    }

    /// Parses a token string. The signature is not checked here; see [`SasToken::verify`].
    ///
    /// # Errors
    /// A [`SasError`] naming the malformed part.
    pub fn parse(token: &str) -> Result<Self, SasError> {
        let body = token
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(SasError::MissingPrefix)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for part in body.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let slot = match name {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                // Unknown fields are ignored, as the service does for forward compatibility.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SasError::DuplicateField(name.to_owned()));
            }
        }
        let raw_resource = sr.ok_or(SasError::MissingField("sr"))?.to_owned();
        let raw_expiry = se.ok_or(SasError::MissingField("se"))?.to_owned();
        let expiry = raw_expiry.parse().map_err(|_| SasError::BadExpiry)?;
        let sig = decode(sig.ok_or(SasError::MissingField("sig"))?, "sig")?;
        let signature = BASE64
            .decode(sig.as_bytes())
            .map_err(|_| SasError::BadEncoding("sig"))?;
        let key_name = decode(skn.ok_or(SasError::MissingField("skn"))?, "skn")?;
        let audience = Audience::parse(&decode(&raw_resource, "sr")?)?;
        Ok(Self {
            raw_resource,
            raw_expiry,
            signature,
            expiry,
            key_name,
            audience,
        })
    }

    /// Checks the signature against `key` (in constant time) and the expiry against `now`.
    ///
    /// # Errors
    /// [`SasError::BadSignature`] or [`SasError::Expired`].
    pub fn verify(&self, key: &Secret, now: u64) -> Result<(), SasError> {
        let mut mac =
            HmacSha256::new_from_slice(key.expose().as_bytes()).map_err(|_| SasError::BadKey)?;
        mac.update(self.raw_resource.as_bytes());
        mac.update(b"\n");
        mac.update(self.raw_expiry.as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| SasError::BadSignature {
                key_name: self.key_name.clone(),
            })?;
        if self.expiry <= now {
            return Err(SasError::Expired {
                expired_at: self.expiry,
                now,
            });
        }
        Ok(())
    }

    /// The key name (`skn`) the token claims to be signed with.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The expiry (`se`) in Unix seconds.
    pub fn expiry(&self) -> u64 {
        self.expiry
    }

    /// The normalised resource (`sr`) the token grants access to.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }
}

/// The resource URI a token was issued for, normalised for comparison: the scheme is dropped
/// (SDKs force `http`), the port is dropped (.NET drops it, Node keeps `:443`), the host is
/// lower-cased, a `$hc` segment is removed and empty segments (trailing slash) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    host: String,
    segments: Vec<String>,
}

impl Audience {
    /// Parses a decoded resource URI such as `http://ns.example:443/hc`.
    ///
    /// # Errors
    /// [`SasError::BadResource`] when it is not an absolute URI with a host.
    pub fn parse(resource: &str) -> Result<Self, SasError> {
        let url = url::Url::parse(resource).map_err(|_| SasError::BadResource)?;
        let host = url
            .host_str()
            .ok_or(SasError::BadResource)?
            .to_ascii_lowercase();
        let segments = url
            .path_segments()
            .map(|segs| {
                segs.filter(|s| !s.is_empty() && *s != "$hc")
                    .map(|s| {
                        urlencoding::decode(s)
                            .map(|c| c.to_lowercase())
                            .unwrap_or_else(|_| s.to_lowercase())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self { host, segments })
    }

    /// The host the token names, lower-cased.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the token names the host of `authority` (`host[:port]`, as in an HTTP `Host`
    /// header), compared as [`Audience::parse`] normalises hosts (ports ignored).
    pub fn names_host_of(&self, authority: &str) -> bool {
        url::Url::parse(&format!("http://{authority}/"))
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|h| h == self.host)
    }

    /// Whether this audience grants access to the entity at `entity_path` (for example `hyco`
    /// or `a/b`). Entity names are case-insensitive; a namespace-wide token (no path) covers
    /// every entity below it, and a token for `a` covers `a/b`.
    pub fn covers_path(&self, entity_path: &str) -> bool {
        let entity: Vec<String> = entity_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .collect();
        entity.len() >= self.segments.len()
            && entity.iter().zip(&self.segments).all(|(e, s)| e == s)
    }
}

/// The resource URI our clients sign for an entity: the .NET SDK's normalised audience
/// `http://{host}/{path}/` (scheme forced to http, no port, trailing slash).
pub fn audience_uri(host: &str, entity_path: &str) -> String {
    format!("http://{host}/{}/", entity_path.trim_matches('/'))
}

/// A token as the value of an `sb-hc-token` query parameter (percent-encoded, as Node's
/// `encodeURIComponent` does).
pub fn encode_for_query(token: &Secret) -> Secret {
    Secret::new(urlencoding::encode(token.expose()).into_owned())
}

fn hmac_sign(key: &Secret, encoded_resource: &str, expiry: &str) -> Vec<u8> {
    // new_from_slice only fails for key sizes HMAC cannot take, and HMAC takes any size.
    let mut mac = match HmacSha256::new_from_slice(key.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(encoded_resource.as_bytes());
    mac.update(b"\n");
    mac.update(expiry.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn check_key(key_name: &str, key: &Secret) -> Result<(), SasError> {
    let ok = |s: &str| !s.is_empty() && s.chars().count() <= MAX_KEY_LEN;
    if ok(key_name) && ok(key.expose()) {
        Ok(())
    } else {
        Err(SasError::BadKey)
    }
}

fn decode(value: &str, field: &'static str) -> Result<String, SasError> {
    // Form encoders (.NET WebUtility) write spaces as '+'.
    urlencoding::decode(&value.replace('+', " "))
        .map(|c| c.into_owned())
        .map_err(|_| SasError::BadEncoding(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors from ../shared/research/relay-protocol.md §3: computed with Python's
    // `hmac` module and cross-checked by running hyco-ws' own `createRelayToken` in Node, i.e.
    // independently of this code.
    const KEY: &str = "SAMPLEKEYsampleKey0123456789abcdefABCDEF012=";
    const SE: u64 = 1_700_000_000;

    fn sig_of(token: &Secret) -> String {
        let t = token.expose();
        let start = t.find("&sig=").map(|i| i + 5).unwrap_or(0);
        let end = t[start..].find('&').map(|i| start + i).unwrap_or(t.len());
        urlencoding::decode(&t[start..end])
            .map(|s| s.into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn known_answer_node_style_resource() {
        let token = SasToken::sign(
            "http://contoso.servicebus.windows.net/hyco",
            "RootManageSharedAccessKey",
            &Secret::new(KEY),
            SE,
        )
        .expect("sign");
        assert_eq!(
            token.expose(),
            "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco\
             &sig=oCZ4GOuL299s31UuBW%2BBdncSAnHmvbyGpGGGqE1BAzo%3D&se=1700000000\
             &skn=RootManageSharedAccessKey"
        );
    }

    #[test]
    fn known_answer_dotnet_style_resource() {
        let uri = audience_uri("contoso.servicebus.windows.net", "hyco");
        assert_eq!(uri, "http://contoso.servicebus.windows.net/hyco/");
        let token = SasToken::sign(&uri, "k", &Secret::new(KEY), SE).expect("sign");
        assert_eq!(
            sig_of(&token),
            "G/OAVdOQoKIX2J/AVFcjyfJbeGKas//aKF922tRRZ6E="
        );
    }

    #[test]
    fn known_answer_node_with_port() {
        let token = SasToken::sign(
            "http://contoso.servicebus.windows.net:443/hyco",
            "k",
            &Secret::new(KEY),
            SE,
        )
        .expect("sign");
        assert_eq!(
            sig_of(&token),
            "CqYEa8LK9+ujDHIFZ8FC/fqjQkF79TBdZqeqdw8dcG4="
        );
    }

    #[test]
    fn verify_accepts_own_tokens_and_rejects_wrong_key_and_expiry() {
        let key = Secret::new(KEY);
        let token = SasToken::sign("http://ns/hyco/", "listen", &key, 2000).expect("sign");
        let parsed = SasToken::parse(token.expose()).expect("parse");
        assert_eq!(parsed.key_name(), "listen");
        assert_eq!(parsed.expiry(), 2000);
        assert!(parsed.audience().covers_path("hyco"));
        assert_eq!(parsed.verify(&key, 1999), Ok(()));
        assert_eq!(
            parsed.verify(&key, 2000),
            Err(SasError::Expired {
                expired_at: 2000,
                now: 2000
            })
        );
        assert!(matches!(
            parsed.verify(&Secret::new("other"), 1000),
            Err(SasError::BadSignature { .. })
        ));
    }

    #[test]
    fn verify_uses_raw_resource_encoding() {
        // A lower-case-hex token as old .NET HttpUtility produced it: the verifier must sign the
        // `sr` exactly as received, so a token signed over lower-case hex still verifies.
        let key = Secret::new(KEY);
        let sr = "http%3a%2f%2fns%2fhyco";
        let sig = hmac_sign(&key, sr, "5000");
        let token = format!(
            "SharedAccessSignature sr={sr}&sig={}&se=5000&skn=k",
            urlencoding::encode(&BASE64.encode(sig))
        );
        let parsed = SasToken::parse(&token).expect("parse");
        assert_eq!(parsed.verify(&key, 10), Ok(()));
        assert!(parsed.audience().covers_path("HYCO"));
    }

    #[test]
    fn audience_normalisation() {
        let a = Audience::parse("http://NS.example:443/$hc/Hyco/").expect("parse");
        assert_eq!(a.host(), "ns.example");
        assert!(a.covers_path("hyco"));
        assert!(a.covers_path("hyco/sub"));
        assert!(!a.covers_path("other"));
        assert!(!a.covers_path(""));
        let root = Audience::parse("http://ns.example/").expect("parse");
        assert!(root.covers_path("anything"));
        let nested = Audience::parse("https://ns/a/b").expect("parse");
        assert!(!nested.covers_path("a"));
        assert!(nested.covers_path("a/b"));
    }

    #[test]
    fn parse_errors_are_specific() {
        assert_eq!(SasToken::parse("Bearer x"), Err(SasError::MissingPrefix));
        assert_eq!(
            SasToken::parse("SharedAccessSignature sig=a&se=1&skn=k"),
            Err(SasError::MissingField("sr"))
        );
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=http%3A%2F%2Fn%2Fh&sig=AA%3D%3D&se=x&skn=k"),
            Err(SasError::BadExpiry)
        );
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=a&sr=b&sig=a&se=1&skn=k"),
            Err(SasError::DuplicateField("sr".into()))
        );
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=nope&sig=AA%3D%3D&se=1&skn=k"),
            Err(SasError::BadResource)
        );
    }

    #[test]
    fn empty_or_long_keys_are_refused() {
        assert_eq!(
            SasToken::sign("http://n/h", "", &Secret::new("k"), 1),
            Err(SasError::BadKey)
        );
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            SasToken::sign("http://n/h", "k", &Secret::new(long), 1),
            Err(SasError::BadKey)
        );
    }

    #[test]
    fn query_encoding_round_trips() {
        let token = SasToken::sign("http://n/h", "k", &Secret::new(KEY), 9).expect("sign");
        let encoded = encode_for_query(&token);
        assert!(!encoded.expose().contains([' ', '&', '='].as_slice()));
        assert_eq!(
            decode(encoded.expose(), "t").expect("decode"),
            token.expose()
        );
    }

    #[test]
    fn debug_hides_signature() {
        let token = SasToken::sign("http://n/h", "k", &Secret::new(KEY), 9).expect("sign");
        let parsed = SasToken::parse(token.expose()).expect("parse");
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("sig"), "{shown}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = SasToken::parse(&s);
            let _ = SasToken::parse(&format!("{TOKEN_PREFIX}{s}"));
        }

        #[test]
        fn sign_then_verify_round_trips(path in "[a-zA-Z0-9/_-]{1,30}", key in "[ -~]{1,64}", se in 1u64..u64::MAX) {
            let key = Secret::new(key);
            let token = SasToken::sign(&format!("http://ns.example/{path}"), "rule", &key, se).expect("sign");
            let parsed = SasToken::parse(token.expose()).expect("parse");
            proptest::prop_assert_eq!(parsed.verify(&key, se - 1), Ok(()));
        }
    }
}
