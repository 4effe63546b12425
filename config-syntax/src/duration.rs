//! Durations: `250ms`, `30s`, `5m`, `1h 30m` (humantime's syntax), or a bare number of
//! seconds (`30`, `20.5`), which older configuration files use (`idle_timeout_secs = 3600`).
//! In TOML a duration may be a string or a number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A value that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration like 500ms, 30s, 5m or 1h ({reason})")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h 30m` or a bare (possibly fractional) number of
/// seconds.
///
/// # Errors
/// [`DurationError`] naming the text and what is wrong with it.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let error = |reason: String| DurationError {
        text: text.to_owned(),
        reason,
    };
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && t.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        let secs: f64 = t.parse().map_err(|_| error("not a number".to_owned()))?;
        return seconds(secs).map_err(error);
    }
    humantime::parse_duration(t).map_err(|e| error(e.to_string()))
}

/// Writes `d` in [`parse_duration`]'s syntax (`20s 500ms`, `1h`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A number of seconds as a duration.
fn seconds(secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{secs} seconds is out of range"))
}

/// A duration in a configuration file: a string in [`parse_duration`]'s syntax or a number
/// of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Seconds(f64),
    Text(String),
}

impl Written {
    fn into_duration(self) -> Result<Duration, String> {
        match self {
            Self::Seconds(secs) if secs < 0.0 => Err(format!("{secs} is negative")),
            Self::Seconds(secs) => seconds(secs),
            Self::Text(text) => parse_duration(&text).map_err(|e| e.to_string()),
        }
    }
}

/// Serde `deserialize_with` for a `Duration` field.
///
/// # Errors
/// The value is neither a duration string nor a number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Written::deserialize(d)?
        .into_duration()
        .map_err(serde::de::Error::custom)
}

/// Serde `deserialize_with` for an `Option<Duration>` field (use with `#[serde(default)]`).
///
/// # Errors
/// As for [`deserialize`].
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<Written>::deserialize(d)?
        .map(|w| w.into_duration().map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("20.5"), Ok(Duration::from_millis(20_500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for d in [
            Duration::from_millis(20_500),
            Duration::from_secs(5400),
            Duration::ZERO,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn errors_name_the_text() {
        for bad in ["", "ten", "5 parsecs", "-3", "1..2", "s"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(deserialize_with = "deserialize")]
        idle: Duration,
        #[serde(default, deserialize_with = "deserialize_option")]
        ping: Option<Duration>,
    }

    #[test]
    fn toml_takes_strings_and_numbers_of_seconds() {
        let f: File = toml::from_str("idle = \"90s\"\nping = 2.5").expect("parse");
        assert_eq!(f.idle, Duration::from_secs(90));
        assert_eq!(f.ping, Some(Duration::from_millis(2500)));
        let f: File = toml::from_str("idle = 3600").expect("parse");
        assert_eq!(f.idle, Duration::from_secs(3600));
        assert_eq!(f.ping, None);
        let e = toml::from_str::<File>("idle = \"soon\"").expect_err("bad");
        assert!(e.to_string().contains("\"soon\" is not a duration"), "{e}");
        let e = toml::from_str::<File>("idle = -1").expect_err("negative");
        assert!(e.to_string().contains("negative"), "{e}");
    }
}
