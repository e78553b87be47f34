//! Wall-clock time at the edges: the engine takes time as an input, and
//! the API shows it as RFC 3339 UTC with microseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Microseconds in one second.
pub const SECOND: i64 = 1_000_000;
/// Microseconds in one day.
pub const DAY: i64 = 86_400 * SECOND;

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

/// `2026-11-22T03:04:05.123456Z`.
pub fn format_micros(micros: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|time| time.format(&format).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 time (any offset) into microseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_microseconds_and_parses_back() {
        let micros = 1_795_316_645_123_456;
        let text = format_micros(micros);
        assert_eq!(text, "2026-11-22T03:04:05.123456Z");
        assert_eq!(parse_rfc3339(&text), Some(micros));
        assert_eq!(
            parse_rfc3339("2026-11-22T04:04:05.123456+01:00"),
            Some(micros)
        );
        assert_eq!(parse_rfc3339("22/11/2026"), None);
    }
}
