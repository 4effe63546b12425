//! Secrets that must never appear in logs: SAS keys, tokens and passwords. [`Secret`] holds
//! one we know about; [`redact_for_log`] removes those hidden in text we did not expect (a
//! malformed control message, a parser's error that quotes its input).

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

/// A secret string. `Debug` and `Display` print a fixed mask; the value is only reachable
/// through [`Secret::expose`], which makes every use greppable. It is kept in a
/// [`secrecy::SecretString`], so its memory is zeroed when it is dropped.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret value. Call only where the value is consumed (signing, sending).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

/// Equal values are equal secrets (configurations and tests compare them; tokens are checked
/// by their HMAC, never with this).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Names whose values are secrets wherever they appear in text: a SAS token's signature
/// (`sig=`, which is what makes a token usable) and a connection string's key.
const SECRET_NAMES: [&str; 3] = ["sig=", "sharedaccesskey=", "sharedaccesssignature="];

/// Marks where a secret was removed.
const REDACTED: &str = "<redacted>";

/// `text` cut to at most `max` bytes (on a character boundary) with the value after every
/// secret name (`sig=`, `SharedAccessKey=`, `SharedAccessSignature=`; case-insensitive) up to
/// the next delimiter replaced by `<redacted>`. For logging text that arrived from the
/// network: a token pasted into the wrong field must not reach a log at any level. The cut
/// comes after redaction so a secret straddling `max` cannot leave a prefix behind.
pub fn redact_for_log(text: &str, max: usize) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len().min(max) + REDACTED.len());
    let mut at = 0;
    while at < text.len() {
        let next = SECRET_NAMES
            .iter()
            .filter_map(|name| lower[at..].find(name).map(|i| (at + i, name.len())))
            .min();
        let Some((start, len)) = next else {
            out.push_str(&text[at..]);
            break;
        };
        let value = start + len;
        out.push_str(&text[at..value]);
        out.push_str(REDACTED);
        at = text[value..]
            .find(|c: char| {
                matches!(c, '&' | '"' | '\'' | ';' | ',' | '}' | ']') || c.is_whitespace()
            })
            .map_or(text.len(), |i| value + i);
    }
    let mut cut = out.len().min(max);
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_keys_are_redacted_wherever_they_appear() {
        let token = "SharedAccessSignature sr=http%3a%2f%2fr%2fhc&sig=AbC%2bdEf%3d&se=9&skn=l";
        let text = format!(
            "{{\"renew\":{{\"token\":\"{token}\"}}}} Endpoint=sb://r/;SharedAccessKey=k3y;x"
        );
        let out = redact_for_log(&text, 4096);
        assert!(!out.contains("AbC"), "{out}");
        assert!(!out.contains("k3y"), "{out}");
        assert!(out.contains("sig=<redacted>&se=9"), "{out}");
        assert!(out.contains("SharedAccessKey=<redacted>;x"), "{out}");
        assert_eq!(redact_for_log("SIG=abc", 100), "SIG=<redacted>");
        assert_eq!(redact_for_log("héllo", 2), "h");
        assert_eq!(redact_for_log("sig=", 100), "sig=<redacted>");
    }

    #[test]
    fn debug_and_display_mask_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s, Secret::from("hunter2"));
        assert_ne!(s, Secret::default());
        assert!(Secret::default().is_empty());
    }
}
