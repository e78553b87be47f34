//! Prices and quantities: integer newtypes; a `Price` is never zero and a
//! `Quantity` is always 1 to 10,000.
//!
//! Money crosses the engine's edge as `rust_decimal::Decimal` and lives inside
//! as a whole number of ticks of the product's tick size, so matching compares
//! and adds integers and can never round.

use std::fmt;
use std::num::NonZeroU64;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// The highest price the contract allows, in currency units.
pub const MAX_PRICE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The largest quantity one order may carry.
pub const MAX_QUANTITY: u32 = 10_000;

/// A positive price, counted in ticks of its product's [`TickSize`].
///
/// The engine only needs prices to be positive integers, and that is all
/// the type guarantees: [`Price::from_ticks`] refuses zero. Prices from
/// outside come in through [`TickSize::price`], which also enforces the
/// contract's tick and ceiling, so no price above 1,000,000 reaches a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(NonZeroU64);

impl Price {
    /// A price of `ticks` ticks; `None` for zero.
    pub const fn from_ticks(ticks: u64) -> Option<Self> {
        match NonZeroU64::new(ticks) {
            Some(ticks) => Some(Self(ticks)),
            None => None,
        }
    }

    /// The price as a count of ticks.
    pub const fn ticks(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ticks", self.0)
    }
}

/// How many units an order is for: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

impl Quantity {
    /// One unit: a pair of sneakers.
    pub const ONE: Self = Self(1);

    /// `units` as a quantity, or an error naming the allowed range.
    pub const fn new(units: u32) -> Result<Self, QuantityError> {
        if units == 0 || units > MAX_QUANTITY {
            Err(QuantityError::OutOfRange)
        } else {
            Ok(Self(units))
        }
    }

    /// The number of units.
    pub const fn units(self) -> u32 {
        self.0
    }
}

/// Why a number is not a [`Quantity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Zero, negative or above the ceiling.
    #[error("quantity must be a whole number from 1 to {MAX_QUANTITY}")]
    OutOfRange,
}

/// The smallest step between two prices of a product, e.g. `0.01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TickSize {
    /// The step itself, normalized (no trailing zeros) so that scales compare.
    step: Decimal,
}

/// Why a decimal is not a valid price or tick size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// Zero or negative.
    #[error("price must be greater than zero")]
    NotPositive,
    /// Above the contract's ceiling.
    #[error("price must be at most {MAX_PRICE}")]
    TooHigh,
    /// Not a whole number of ticks.
    #[error("price must be a multiple of the tick size {0}")]
    OffTick(Decimal),
    /// A tick size must be positive and no larger than the ceiling.
    #[error("tick size must be greater than zero and at most {MAX_PRICE}")]
    InvalidTickSize,
}

impl TickSize {
    /// The contract's default tick: one cent.
    pub const CENT: Self = Self {
        step: Decimal::from_parts(1, 0, 0, false, 2),
    };

    /// A tick size of `step`, which must be positive and at most [`MAX_PRICE`].
    pub fn new(step: Decimal) -> Result<Self, PriceError> {
        if step <= Decimal::ZERO || step > MAX_PRICE {
            return Err(PriceError::InvalidTickSize);
        }
        // A step so small that the ceiling is more ticks than a u64 holds
        // could never be priced: refuse it here rather than overflow later.
        let ticks_in_ceiling = MAX_PRICE
            .checked_div(step)
            .and_then(|ticks| ticks.trunc().to_u64());
        if ticks_in_ceiling.is_none() {
            return Err(PriceError::InvalidTickSize);
        }
        Ok(Self {
            step: step.normalize(),
        })
    }

    /// The step as a decimal.
    pub const fn step(self) -> Decimal {
        self.step
    }

    /// Parses a decimal price: positive, on the tick, at most [`MAX_PRICE`].
    pub fn price(self, value: Decimal) -> Result<Price, PriceError> {
        if value <= Decimal::ZERO {
            return Err(PriceError::NotPositive);
        }
        if value > MAX_PRICE {
            return Err(PriceError::TooHigh);
        }
        // The remainder is exact where a quotient would be rounded to 28
        // digits, and could then look whole for a value just off the tick.
        let on_tick = value
            .checked_rem(self.step)
            .is_some_and(|remainder| remainder.is_zero());
        if !on_tick {
            return Err(PriceError::OffTick(self.step));
        }
        let ticks = value
            .checked_div(self.step)
            .ok_or(PriceError::OffTick(self.step))?;
        ticks
            .to_u64()
            .and_then(Price::from_ticks)
            .ok_or(PriceError::OffTick(self.step))
    }

    /// The decimal value of `price`, with the tick's number of decimals.
    pub fn decimal(self, price: Price) -> Decimal {
        let mut value = Decimal::from(price.ticks()) * self.step;
        value.rescale(self.step.scale());
        value
    }
}

impl Default for TickSize {
    fn default() -> Self {
        Self::CENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn cent_constant_matches_parsed_cent() {
        assert_eq!(TickSize::new(dec!(0.01)), Ok(TickSize::CENT));
        assert_eq!(TickSize::new(dec!(0.010)), Ok(TickSize::CENT));
    }

    #[test]
    fn prices_round_trip_through_ticks() {
        let tick = TickSize::CENT;
        let price = tick.price(dec!(210.00)).expect("valid price");
        assert_eq!(price.ticks(), 21_000);
        assert_eq!(tick.decimal(price).to_string(), "210.00");
        assert_eq!(tick.price(dec!(1000000)).map(Price::ticks), Ok(100_000_000));
    }

    #[test]
    fn invalid_prices_are_rejected_with_the_reason() {
        let tick = TickSize::CENT;
        assert_eq!(tick.price(dec!(0)), Err(PriceError::NotPositive));
        assert_eq!(tick.price(dec!(-5)), Err(PriceError::NotPositive));
        assert_eq!(tick.price(dec!(1000000.01)), Err(PriceError::TooHigh));
        assert_eq!(
            tick.price(dec!(210.001)),
            Err(PriceError::OffTick(dec!(0.01)))
        );
        // As far off the tick as a decimal of this size can be.
        assert_eq!(
            tick.price(dec!(999999.9900000000000000000001)),
            Err(PriceError::OffTick(dec!(0.01)))
        );
        let quarter = TickSize::new(dec!(0.25)).expect("valid tick");
        assert_eq!(quarter.price(dec!(10.75)).map(Price::ticks), Ok(43));
        assert!(quarter.price(dec!(10.10)).is_err());
        assert_eq!(
            quarter
                .decimal(Price::from_ticks(43).expect("non-zero"))
                .to_string(),
            "10.75"
        );
    }

    #[test]
    fn tick_sizes_must_be_positive_and_below_the_ceiling() {
        // So fine that the ceiling would be more ticks than a u64 holds.
        let absurd = Decimal::new(1, 28);
        assert_eq!(TickSize::new(absurd), Err(PriceError::InvalidTickSize));
        assert_eq!(TickSize::new(dec!(0)), Err(PriceError::InvalidTickSize));
        assert_eq!(TickSize::new(dec!(-0.01)), Err(PriceError::InvalidTickSize));
        assert_eq!(
            TickSize::new(dec!(1000001)),
            Err(PriceError::InvalidTickSize)
        );
    }

    #[test]
    fn quantities_stay_in_range() {
        assert_eq!(Quantity::new(0), Err(QuantityError::OutOfRange));
        assert_eq!(Quantity::new(10_001), Err(QuantityError::OutOfRange));
        assert_eq!(Quantity::new(10_000).map(Quantity::units), Ok(10_000));
    }
}
