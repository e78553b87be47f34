//! Wall-clock time as the feed writes it: RFC 3339 UTC with microseconds
//! (`2026-11-22T03:04:05.123456Z`).
//!
//! The `fanout` scenario reads the `ts` of every event it receives and
//! compares it with its own clock (the server's and the load generator's
//! clocks are the same machine's). Parsing with `time` allocates nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

/// `2026-11-22T03:04:05.123456Z`, the server's own format (the Node
/// baseline's messages carry it too).
pub fn format_micros(micros: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|moment| moment.format(&format).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time in microseconds since the epoch; `None` for anything
/// else.
pub fn parse_micros(text: &str) -> Option<i64> {
    let moment = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(moment.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_format_reads_back_exactly() {
        let micros = 1_795_000_000_123_456;
        let text = format_micros(micros);
        assert_eq!(text.len(), "2026-11-22T03:04:05.123456Z".len(), "{text}");
        assert_eq!(parse_micros(&text), Some(micros));
        assert_eq!(
            parse_micros("2026-11-22T03:04:05.1Z"),
            parse_micros("2026-11-22T03:04:05.100000+00:00")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for text in ["", "yesterday", "2026-11-22", "2026-13-01T00:00:00Z"] {
            assert_eq!(parse_micros(text), None, "{text}");
        }
    }
}
