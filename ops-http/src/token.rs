//! The bearer token that protects an ops endpoint: read from configuration (a file or an
//! environment variable) or generated, compared in constant time, never printed.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Fewer than [`MIN_TOKEN_LEN`] characters.
    #[error("the token is too short: at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    /// A character outside RFC 6750's `b64token` (letters, digits, `-._~+/`, trailing `=`).
    #[error("the token may only hold letters, digits and -._~+/ (then = padding)")]
    BadCharacter,
    /// The token file cannot be read.
    #[error("token file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A bearer token. `Debug` and `Display` never show it; [`BearerToken::expose`] is for the
/// places that must hand it over (printing a URL for the operator, a client sending it).
#[derive(Clone)]
pub struct BearerToken {
    secret: SecretString,
    /// A random key for this process and the token's tag under it: a presented token is tagged
    /// the same way and the tags compared with `Mac::verify_slice`, which takes the same time
    /// wherever they differ and whatever the presented length.
    key: [u8; 32],
    tag: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

impl BearerToken {
    /// A token from its text (surrounding blanks and a final newline are ignored).
    ///
    /// # Errors
    /// Too short, or a character a `Bearer` header cannot carry.
    pub fn new(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.chars().count() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        let body = text.trim_end_matches('=');
        let ok = !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if !ok {
            return Err(TokenError::BadCharacter);
        }
        let key: [u8; 32] = rand::random();
        let tag = tag_of(&key, text.as_bytes());
        Ok(Self {
            secret: SecretString::from(text),
            key,
            tag,
        })
    }

    /// Reads the token from the first line of `path`.
    ///
    /// # Errors
    /// The file cannot be read, or holds no usable token.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(text.lines().next().unwrap_or_default())
    }

    /// A new random token (48 hexadecimal characters, 192 bits).
    pub fn generate() -> Self {
        let bytes: [u8; 24] = rand::random();
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // 48 characters from the allowed set: cannot fail.
        Self::new(&text).unwrap_or_else(|_| unreachable!("a generated token is valid"))
    }

    /// The token's text.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Whether `presented` is this token (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.tag).is_ok()
    }

    /// Whether an `Authorization` header value carries this token (`Bearer <token>`, the
    /// scheme in any case).
    pub fn authorizes(&self, header: &str) -> bool {
        let mut parts = header.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let credentials = parts.next().unwrap_or_default().trim();
        scheme.eq_ignore_ascii_case("bearer") && self.matches(credentials)
    }
}

fn tag_of(key: &[u8; 32], text: &[u8]) -> [u8; 32] {
    let mut mac =
        HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(text);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_compared_and_hidden() {
        let token = BearerToken::new("  s3cr3t-token-0123456789\n").expect("valid");
        assert!(token.matches("s3cr3t-token-0123456789"));
        assert!(!token.matches("s3cr3t-token-012345678"));
        assert!(!token.matches("s3cr3t-token-0123456789x"));
        assert!(!token.matches(""));
        assert!(token.authorizes("Bearer s3cr3t-token-0123456789"));
        assert!(token.authorizes("bearer  s3cr3t-token-0123456789 "));
        assert!(!token.authorizes("Basic s3cr3t-token-0123456789"));
        assert!(!token.authorizes("s3cr3t-token-0123456789"));
        assert_eq!(format!("{token:?}"), "BearerToken(***)");
        assert!(matches!(
            BearerToken::new("short"),
            Err(TokenError::TooShort)
        ));
        assert!(matches!(
            BearerToken::new("has a space in the middle"),
            Err(TokenError::BadCharacter)
        ));
        assert!(BearerToken::new("YWJjZGVmZ2hpamtsbW5vcA==").is_ok());
        let generated = BearerToken::generate();
        assert_eq!(generated.expose().len(), 48);
        assert!(generated.matches(generated.expose()));
        assert_ne!(generated.expose(), BearerToken::generate().expose());
    }
}
