//! Readers for command-line values that clap has no parser for, shared by
//! every scenario: durations as people type them (`10s`, `500ms`, `2m`) and
//! fractions such as an error-rate budget.

use std::time::Duration;

/// Longest duration accepted: a load run or a timeout of more than a day
/// is a typo, not a plan.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Reads `10s`, `1.5s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
/// Zero is refused: neither a run nor a timeout can be empty.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use ms, s, m or h (e.g. 10s)"
            ));
        }
    };
    let amount: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    let duration = Duration::try_from_secs_f64(amount * seconds_per_unit)
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    if duration.is_zero() {
        return Err("a duration must be longer than zero".to_owned());
    }
    if duration > MAX_DURATION {
        return Err(format!("{text:?} is longer than a day"));
    }
    Ok(duration)
}

/// Reads a fraction between 0 and 1 inclusive (`0`, `0.01`, `1.0`).
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number between 0 and 1"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text:?} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn meaningless_durations_are_refused() {
        for text in [
            "", "s", "0", "0s", "-1s", "10x", "1.2.3s", "2d", "25h", "NaN", "inf",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn fractions_stay_between_zero_and_one() {
        assert_eq!(parse_fraction("0"), Ok(0.0));
        assert_eq!(parse_fraction("0.01"), Ok(0.01));
        assert_eq!(parse_fraction("1.0"), Ok(1.0));
        for text in ["-0.1", "1.01", "NaN", "x", ""] {
            assert!(parse_fraction(text).is_err(), "{text:?} was accepted");
        }
    }
}
