//! A report's period and filters as people write them: `from`/`to` as a date (`2026-12-01`,
//! UTC; a date as `to` includes that whole day) or an RFC 3339 time
//! (`2026-12-01T08:00:00Z`, `…+01:00`), parsed by chrono; without `from`, the period is the 30
//! days before `to`; without `to`, it ends now.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// How far back a period without `from` reaches.
pub const DEFAULT_DAYS: u64 = 30;
const DAY_MS: u64 = 86_400_000;

/// A period or filter that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// A bound is neither a date nor an RFC 3339 time.
    #[error(
        "{name}={value:?} is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T08:00:00Z)"
    )]
    BadDate {
        /// `from` or `to`.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// A bound is before 1970.
    #[error("{name}={value:?} is before 1970")]
    TooEarly {
        /// `from` or `to`.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// `from` is not before `to`.
    #[error("the period is empty: from {from} is not before to {to}")]
    Empty {
        /// The start.
        from: String,
        /// The end.
        to: String,
    },
}

/// `ms` (Unix ms) as RFC 3339 in UTC.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
        )
}

/// One bound in Unix ms; a date as the end bound means the end of that day.
///
/// # Errors
/// Not a date or time, or before 1970.
pub fn parse_bound(name: &'static str, value: &str, end: bool) -> Result<u64, PeriodError> {
    let value = value.trim();
    let millis = if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        t.timestamp_millis()
    } else if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = if end { d.succ_opt().unwrap_or(d) } else { d };
        day.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis())
    } else {
        return Err(PeriodError::BadDate {
            name,
            value: value.to_owned(),
        });
    };
    u64::try_from(millis).map_err(|_| PeriodError::TooEarly {
        name,
        value: value.to_owned(),
    })
}

/// The period `[from, to)` in Unix ms, with the defaults above (`now_ms`: the present).
///
/// # Errors
/// A bound cannot be read, or the period is empty.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    now_ms: u64,
) -> Result<(u64, u64), PeriodError> {
    let to_ms = match to.filter(|s| !s.trim().is_empty()) {
        Some(to) => parse_bound("to", to, true)?,
        None => now_ms,
    };
    let from_ms = match from.filter(|s| !s.trim().is_empty()) {
        Some(from) => parse_bound("from", from, false)?,
        None => to_ms.saturating_sub(DEFAULT_DAYS * DAY_MS),
    };
    if from_ms >= to_ms {
        return Err(PeriodError::Empty {
            from: rfc3339(from_ms),
            to: rfc3339(to_ms),
        });
    }
    Ok((from_ms, to_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_read() {
        assert_eq!(parse_bound("from", "1970-01-02", false), Ok(DAY_MS));
        assert_eq!(parse_bound("to", "1970-01-02", true), Ok(2 * DAY_MS));
        assert_eq!(
            parse_bound("from", "1970-01-01T01:00:00+01:00", false),
            Ok(0)
        );
        assert_eq!(rfc3339(DAY_MS + 1), "1970-01-02T00:00:00.001Z");
    }

    #[test]
    fn bad_periods_say_why() {
        let err = period(Some("2026-13-01"), None, DAY_MS).expect_err("month 13");
        assert!(
            err.to_string()
                .contains("from=\"2026-13-01\" is not a date"),
            "{err}"
        );
        let err = period(Some("1969-12-31"), None, DAY_MS).expect_err("before 1970");
        assert!(matches!(err, PeriodError::TooEarly { .. }), "{err}");
        let err = period(Some("1970-01-03"), Some("1970-01-02"), DAY_MS).expect_err("empty");
        assert!(err.to_string().contains("is not before"), "{err}");
        assert_eq!(period(None, None, 31 * DAY_MS), Ok((DAY_MS, 31 * DAY_MS)));
    }
}
