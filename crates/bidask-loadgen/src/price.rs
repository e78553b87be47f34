//! Prices the load generator sends: whole multiples of a product's tick
//! size, above zero and within the contract's ceiling, so that every order
//! it places is one the server must accept (a 422 is then a server bug, not
//! noise from the generator).

use std::fmt;

/// The contract's highest allowed price, in whole currency units.
const MAX_PRICE_UNITS: u64 = 1_000_000;

/// More decimals than any real tick size; bounds the arithmetic below.
const MAX_SCALE: u32 = 9;

/// Why a tick size from the catalog cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the tick size {text:?} is not a positive decimal of at most {MAX_SCALE} places below {MAX_PRICE_UNITS}"
)]
pub struct InvalidTickSize {
    /// The text as the catalog sent it, for the message.
    pub text: String,
}

/// A product's price step: `units` × 10^-`scale` (`0.01` is 1 × 10^-2).
///
/// Kept as an integer pair rather than a float so that prices built on it
/// are exact and print exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickSize {
    units: u64,
    scale: u32,
}

/// How a price between two ticks is moved onto one.
#[derive(Debug, Clone, Copy)]
enum Rounding {
    Down,
    Nearest,
    Up,
}

/// A price on a tick grid: `ticks` steps of `tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    ticks: u64,
    tick: TickSize,
}

impl TickSize {
    /// The contract's default tick, for products that do not name one.
    pub const CENT: TickSize = TickSize { units: 1, scale: 2 };

    /// Reads a decimal such as `"0.01"`, `"0.5"` or `"1"`.
    pub fn parse(text: &str) -> Result<Self, InvalidTickSize> {
        let invalid = || InvalidTickSize {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
        let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !digits_only(whole)
            || !digits_only(fraction)
        {
            return Err(invalid());
        }
        // Trailing zeros carry no value; dropping them keeps the scale small.
        let fraction = fraction.trim_end_matches('0');
        let scale = u32::try_from(fraction.len())
            .ok()
            .filter(|scale| *scale <= MAX_SCALE)
            .ok_or_else(invalid)?;
        let whole_value: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let fraction_value: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| invalid())?
        };
        let units = whole_value
            .checked_mul(10u64.pow(scale))
            .and_then(|value| value.checked_add(fraction_value))
            .ok_or_else(invalid)?;
        let tick = TickSize { units, scale };
        if units == 0 || tick.max_ticks() == 0 {
            return Err(invalid());
        }
        Ok(tick)
    }

    /// The price `ticks` steps above zero, kept between one tick and the
    /// ceiling.
    pub fn price_at(self, ticks: u64) -> Price {
        Price {
            ticks: ticks.clamp(1, self.max_ticks()),
            tick: self,
        }
    }

    /// The price on this grid nearest to `cents` (hundredths of a currency
    /// unit), never below one tick nor above the contract's ceiling: the
    /// caller may aim anywhere, and still sends a valid price.
    pub fn nearest(self, cents: i64) -> Price {
        self.snap(cents, Rounding::Nearest)
    }

    /// The highest price on this grid at or below `cents` (but at least one
    /// tick): where a bid meant to stay under a price goes.
    pub fn at_most(self, cents: i64) -> Price {
        self.snap(cents, Rounding::Down)
    }

    /// The lowest price on this grid at or above `cents` (but at most the
    /// ceiling): where an ask meant to stay over a price goes.
    pub fn at_least(self, cents: i64) -> Price {
        self.snap(cents, Rounding::Up)
    }

    fn snap(self, cents: i64, rounding: Rounding) -> Price {
        let numerator = i128::from(cents) * 10i128.pow(self.scale);
        let denominator = 100 * i128::from(self.units);
        let offset = match rounding {
            Rounding::Down => 0,
            Rounding::Nearest => denominator / 2,
            Rounding::Up => denominator - 1,
        };
        let ticks = (numerator + offset).div_euclid(denominator);
        let ticks = u64::try_from(ticks.max(1))
            .unwrap_or(u64::MAX)
            .min(self.max_ticks());
        Price { ticks, tick: self }
    }

    /// How many ticks fit under the ceiling.
    fn max_ticks(self) -> u64 {
        let ceiling = u128::from(MAX_PRICE_UNITS) * 10u128.pow(self.scale);
        u64::try_from(ceiling / u128::from(self.units)).unwrap_or(u64::MAX)
    }
}

impl Default for TickSize {
    fn default() -> Self {
        Self::CENT
    }
}

impl fmt::Display for TickSize {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(formatter, u128::from(self.units), self.scale, self.scale)
    }
}

impl Price {
    /// Steps of the tick above zero; at least 1.
    pub fn ticks(self) -> u64 {
        self.ticks
    }

    /// The grid the price lies on.
    pub fn tick(self) -> TickSize {
        self.tick
    }
}

/// Prints at least two decimals, as the server's own prices do, so the
/// strings the generator sends look like the ones it reads back.
impl fmt::Display for Price {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = u128::from(self.ticks) * u128::from(self.tick.units);
        write_decimal(formatter, value, self.tick.scale, self.tick.scale.max(2))
    }
}

/// Writes `value` × 10^-`scale` with exactly `decimals` places (`decimals` ≥ `scale`).
fn write_decimal(
    formatter: &mut fmt::Formatter<'_>,
    value: u128,
    scale: u32,
    decimals: u32,
) -> fmt::Result {
    let widened = value * 10u128.pow(decimals.saturating_sub(scale));
    let divisor = 10u128.pow(decimals);
    let whole = widened / divisor;
    if decimals == 0 {
        return write!(formatter, "{whole}");
    }
    let fraction = widened % divisor;
    let width = decimals as usize;
    write!(formatter, "{whole}.{fraction:0width$}")
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    use super::*;

    /// Whether `price`, printed, is a positive whole multiple of `tick`.
    fn on_tick(price: Price, tick: TickSize) -> bool {
        // A printed price is itself a decimal the tick parser reads.
        let Ok(value) = TickSize::parse(&price.to_string()) else {
            return false;
        };
        let common = value.scale.max(tick.scale);
        let value_units = u128::from(value.units) * 10u128.pow(common - value.scale);
        let tick_units = u128::from(tick.units) * 10u128.pow(common - tick.scale);
        value_units > 0 && value_units % tick_units == 0
    }

    #[test]
    fn tick_sizes_parse_exactly() {
        assert_eq!(TickSize::parse("0.01"), Ok(TickSize { units: 1, scale: 2 }));
        assert_eq!(TickSize::parse("0.50"), Ok(TickSize { units: 5, scale: 1 }));
        assert_eq!(TickSize::parse("1"), Ok(TickSize { units: 1, scale: 0 }));
        assert_eq!(
            TickSize::parse("2.5"),
            Ok(TickSize {
                units: 25,
                scale: 1
            })
        );
        assert_eq!(
            TickSize::parse("0.25").map(|tick| tick.to_string()),
            Ok("0.25".to_owned())
        );
    }

    #[test]
    fn unusable_tick_sizes_are_refused() {
        for text in [
            "",
            ".",
            "0",
            "0.00",
            "-0.01",
            "abc",
            "1.2.3",
            "1e-2",
            "0.0000000001",
            "2000000",
        ] {
            assert!(TickSize::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn prices_print_with_at_least_two_decimals() {
        assert_eq!(TickSize::CENT.nearest(20_137).to_string(), "201.37");
        assert_eq!(TickSize::CENT.nearest(20_000).to_string(), "200.00");
        let dollar = TickSize::parse("1").map(|tick| tick.nearest(20_137).to_string());
        assert_eq!(dollar, Ok("201.00".to_owned()));
        let fine = TickSize::parse("0.005").map(|tick| tick.nearest(20_137).to_string());
        assert_eq!(fine, Ok("201.370".to_owned()));
    }

    #[test]
    fn prices_round_to_the_nearest_tick() {
        let quarter = TickSize::parse("0.25").map(|tick| tick.nearest(20_113).to_string());
        assert_eq!(quarter, Ok("201.25".to_owned()));
        let quarter = TickSize::parse("0.25").map(|tick| tick.nearest(20_138).to_string());
        assert_eq!(quarter, Ok("201.50".to_owned()));
    }

    #[test]
    fn every_price_is_positive_on_tick_and_under_the_ceiling() {
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        for text in ["0.01", "0.05", "0.25", "0.5", "1", "3", "0.003", "7.77"] {
            let Ok(tick) = TickSize::parse(text) else {
                panic!("{text} is a valid tick size");
            };
            for cents in [i64::MIN, -1, 0, 1, 99, 100, i64::MAX] {
                let price = tick.nearest(cents);
                assert!(on_tick(price, tick), "{price} is off the {tick} tick");
                assert!(
                    price.ticks() <= tick.max_ticks(),
                    "{price} is over the ceiling"
                );
            }
            for _ in 0..10_000 {
                let price = tick.nearest(rng.random_range(-10_000..200_000_000));
                assert!(on_tick(price, tick), "{price} is off the {tick} tick");
                assert!(
                    price.ticks() <= tick.max_ticks(),
                    "{price} is over the ceiling"
                );
            }
        }
    }

    #[test]
    fn directed_rounding_stays_on_its_side() {
        let Ok(dollar) = TickSize::parse("1") else {
            panic!("1 is a valid tick size");
        };
        assert_eq!(dollar.at_most(20_099).to_string(), "200.00");
        assert_eq!(dollar.at_least(20_001).to_string(), "201.00");
        assert_eq!(dollar.at_least(20_000).to_string(), "200.00");
        assert_eq!(dollar.at_most(-5).to_string(), "1.00");
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        for text in ["0.01", "0.25", "1", "0.003"] {
            let Ok(tick) = TickSize::parse(text) else {
                panic!("{text} is a valid tick size");
            };
            for _ in 0..10_000 {
                let cents = rng.random_range(1_000..100_000);
                let (below, above) = (tick.at_most(cents), tick.at_least(cents));
                assert!(on_tick(below, tick) && on_tick(above, tick));
                assert!(below.ticks() <= above.ticks());
                assert!(above.ticks() - below.ticks() <= 1);
                // Compared in cents after scaling up, so no rounding hides a crossing.
                let scaled =
                    |price: Price| u128::from(price.ticks()) * u128::from(tick.units) * 100;
                let target = u128::try_from(cents).unwrap_or(0) * 10u128.pow(tick.scale);
                assert!(scaled(below) <= target, "{below} above {cents} cents");
                assert!(scaled(above) >= target, "{above} below {cents} cents");
            }
        }
    }

    #[test]
    fn the_ceiling_is_one_million() {
        assert_eq!(TickSize::CENT.nearest(i64::MAX).to_string(), "1000000.00");
        let odd = TickSize::parse("7.77").map(|tick| tick.nearest(i64::MAX).to_string());
        assert_eq!(odd, Ok("999999.00".to_owned()));
    }
}
