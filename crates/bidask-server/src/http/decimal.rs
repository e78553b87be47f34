//! Prices and tick sizes as a request writes them: a JSON string or
//! number, read exactly, never through a float.

use std::ops::Deref;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// A request's price or size as sent, a JSON string or number, kept as
/// text until its field's parser reads it ([`string_or_number`],
/// [`decimal`]). Its schema names both types, so that a client checking
/// its requests against the OpenAPI document may send either.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct StringOrNumber(Box<RawValue>);

impl Deref for StringOrNumber {
    type Target = RawValue;

    fn deref(&self) -> &RawValue {
        &self.0
    }
}

impl PartialSchema for StringOrNumber {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(
                [Type::String, Type::Number]
                    .into_iter()
                    .collect::<SchemaType>(),
            )
            .description(Some(
                "A JSON string or number, read exactly (never through a float).",
            ))
            .into()
    }
}

impl ToSchema for StringOrNumber {}

/// The text of a JSON string, or the literal of a JSON number.
pub fn string_or_number(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(text.to_owned())
    } else {
        None
    }
}

/// Why a request's price or tick size is not a decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Not a number at all: `"abc"`, `true`, `"1.2.3"`.
    NotANumber,
    /// A number with more significant digits than a `Decimal` holds
    /// (28), or beyond its range: no price or tick size is one.
    TooManyDigits,
}

/// A decimal from a JSON string or number, exactly as written: a number
/// is never read through a float, and a value with more digits than a
/// `Decimal` holds is refused, not rounded (`"210.000…0001"` must not
/// become a valid price of 210). Zeros at the end of a fraction are not
/// digits that matter: `"210.000…000"` is 210, however many there are.
pub fn decimal(raw: &RawValue) -> Result<Decimal, Unreadable> {
    let text = string_or_number(raw).ok_or(Unreadable::NotANumber)?;
    exact_decimal(text.trim())
}

/// The largest exponent written in scientific notation that can still
/// give a price or a quantity; beyond it the text is refused outright
/// rather than expanded.
const MAX_EXPONENT: i32 = 40;

fn exact_decimal(text: &str) -> Result<Decimal, Unreadable> {
    if !is_number(text) {
        return Err(Unreadable::NotANumber);
    }
    let written = match text.split_once(['e', 'E']) {
        None => text.to_owned(),
        // `Decimal::from_scientific` rounds an over-long mantissa, so the
        // point is moved in the text and the result parsed exactly.
        Some((mantissa, exponent)) => {
            // A range, not `abs()`: `i32::MIN.abs()` overflows, and
            // would wave `1e-2147483648` through to a string of 2 GiB.
            let exponent = exponent
                .parse::<i32>()
                .ok()
                .filter(|exponent| (-MAX_EXPONENT..=MAX_EXPONENT).contains(exponent))
                .ok_or(Unreadable::TooManyDigits)?;
            shift_point(mantissa, exponent).ok_or(Unreadable::TooManyDigits)?
        }
    };
    Decimal::from_str_exact(&written)
        .or_else(|_| Decimal::from_str_exact(&without_trailing_zeros(&written)))
        .map_err(|_| Unreadable::TooManyDigits)
}

/// `written` without the zeros that end its fraction, and without the
/// point if nothing is left after it.
fn without_trailing_zeros(written: &str) -> String {
    let Some((whole, fraction)) = written.split_once('.') else {
        return written.to_owned();
    };
    let whole = match whole {
        "" | "-" | "+" => format!("{whole}0"),
        _ => whole.to_owned(),
    };
    match fraction.trim_end_matches('0') {
        "" => whole,
        fraction => format!("{whole}.{fraction}"),
    }
}

/// Whether `text` is a decimal number as a price may be written:
/// `[-+]digits[.digits][e[-+]digits]`, digits on at least one side of
/// the point. rust_decimal alone would also read digit separators
/// (`2_10.00`), which JSON's decimal strings never hold.
fn is_number(text: &str) -> bool {
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (text, None),
    };
    let unsigned = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let exponent_ok = exponent.is_none_or(|exponent| {
        let unsigned = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        !unsigned.is_empty() && digits(unsigned)
    });
    !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction) && exponent_ok
}

/// `mantissa` (`[-+]digits[.digits]`) times ten to `exponent`, written out.
fn shift_point(mantissa: &str, exponent: i32) -> Option<String> {
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let point = i32::try_from(whole.len()).ok()?.checked_add(exponent)?;
    let length = i32::try_from(digits.len()).ok()?;
    let zeros = |count: i32| "0".repeat(usize::try_from(count).unwrap_or(0));
    Some(if point <= 0 {
        format!("{sign}0.{}{digits}", zeros(point.checked_neg()?))
    } else if point >= length {
        format!("{sign}{digits}{}", zeros(point - length))
    } else {
        let (left, right) = digits.split_at(usize::try_from(point).ok()?);
        format!("{sign}{left}.{right}")
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal::dec;

    use rust_decimal::Decimal;
    use serde_json::value::RawValue;

    use super::{Unreadable, decimal};

    fn parsed(json: &str) -> Option<Decimal> {
        let raw: Box<RawValue> = serde_json::from_str(json).ok()?;
        decimal(&raw).ok()
    }

    fn refusal(json: &str) -> Unreadable {
        let raw: Box<RawValue> = serde_json::from_str(json).expect("JSON");
        decimal(&raw).expect_err("refused")
    }

    #[test]
    fn decimals_are_read_exactly_as_written() {
        assert_eq!(parsed(r#""210.05""#), Some(dec!(210.05)));
        assert_eq!(parsed("210.05"), Some(dec!(210.05)));
        assert_eq!(parsed(r#"" 7 ""#), Some(dec!(7)));
        assert_eq!(parsed("-3.5"), Some(dec!(-3.5)));
        assert_eq!(parsed("2.1e2"), Some(dec!(210)));
        assert_eq!(parsed(r#""2.105E+2""#), Some(dec!(210.5)));
        assert_eq!(parsed("21050e-2"), Some(dec!(210.50)));
        assert_eq!(parsed("5e-1"), Some(dec!(0.5)));
        assert_eq!(parsed("-1.5e1"), Some(dec!(-15)));
    }

    #[test]
    fn zeros_ending_a_fraction_are_not_digits_that_matter() {
        let zeros = "0".repeat(40);
        assert_eq!(parsed(&format!(r#""210.{zeros}""#)), Some(dec!(210)));
        assert_eq!(parsed(&format!("210.5{zeros}")), Some(dec!(210.5)));
        assert_eq!(parsed(&format!(r#""-.{zeros}""#)), Some(dec!(0)));
        assert_eq!(parsed(&format!("2.1{zeros}e2")), Some(dec!(210)));
        // The scale as written is kept when it fits.
        assert_eq!(parsed(r#""210.50""#).map(|price| price.scale()), Some(2));
    }

    #[test]
    fn digits_a_decimal_cannot_hold_are_refused_not_rounded() {
        for json in [
            r#""210.000000000000000000000000001""#,
            "210.000000000000000000000000001",
            "2.10000000000000000000000000001e2",
            "1e-30",
            "1e41",
            "1e-41",
            "1e-2147483648",
            r#"".5e-2147483648""#,
            "250E-2147483648",
            "1e2147483647",
            "1e-2147483649",
            "0e1000",
            "123456789012345678901234567890",
        ] {
            assert_eq!(refusal(json), Unreadable::TooManyDigits, "{json}");
        }
        for json in [
            r#""1e""#,
            r#""e5""#,
            r#""1.2.3e1""#,
            r#""2_10.00""#,
            r#""-""#,
            r#"".""#,
            r#""""#,
            r#""abc""#,
            "true",
            "null",
            "[1]",
        ] {
            assert_eq!(refusal(json), Unreadable::NotANumber, "{json}");
        }
    }
}
