//! Exact fixed-point numbers: prices in ten-thousandths and percentages in hundredths, so
//! that rounding follows the contract exactly instead of the whims of binary floating point.

use std::fmt;

const PRICE_SCALE: i64 = 10_000;

/// The largest price accepted: far above any real share price, small enough that products
/// of prices never overflow.
const MAX_PRICE_UNITS: i64 = 1_000_000_000 * PRICE_SCALE;

/// A positive price with at most four decimals, held as an integer count of ten-thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i64);

/// Why a number is not a price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("a price must be a finite number")]
    NotFinite,
    #[error("a price must be greater than 0 after rounding to 4 decimals")]
    NotPositive,
    #[error("a price must be at most {}", Price::MAX)]
    TooLarge,
}

impl Price {
    /// The largest price accepted, in whole currency units.
    pub const MAX: i64 = MAX_PRICE_UNITS / PRICE_SCALE;

    /// The largest number that rounds to zero (half of a ten-thousandth, which half-to-even
    /// rounds down): every price accepted is above it.
    pub const ROUNDS_TO_ZERO: f64 = 0.5 / PRICE_SCALE as f64;

    /// A price from a count of ten-thousandths, as stored.
    ///
    /// # Errors
    /// [`PriceError`] when the count is not positive or too large.
    pub fn from_units(units: i64) -> Result<Self, PriceError> {
        if units <= 0 {
            Err(PriceError::NotPositive)
        } else if units > MAX_PRICE_UNITS {
            Err(PriceError::TooLarge)
        } else {
            Ok(Self(units))
        }
    }

    /// A price from a JSON-style number, rounded half-to-even to four decimals.
    ///
    /// The number is rounded by its shortest decimal form (what a client wrote, `1.00005`),
    /// not by its binary approximation, so that halves are really halves.
    ///
    /// # Errors
    /// [`PriceError`] when the number is not finite, rounds to zero or less, or is too large.
    pub fn from_f64(value: f64) -> Result<Self, PriceError> {
        if !value.is_finite() {
            return Err(PriceError::NotFinite);
        }
        if value <= 0.0 {
            return Err(PriceError::NotPositive);
        }
        if value > Self::MAX as f64 + 1.0 {
            return Err(PriceError::TooLarge);
        }
        Self::from_units(round_decimal_text_half_even(&format!("{value}")))
    }

    pub fn units(self) -> i64 {
        self.0
    }

    pub fn to_f64(self) -> f64 {
        units_to_f64(self.0, PRICE_SCALE)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_f64())
    }
}

/// Rounds a plain decimal text (`123.456789`, as `f64`'s `Display` writes it) half-to-even
/// to ten-thousandths.
fn round_decimal_text_half_even(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = whole.parse().unwrap_or(i64::MAX / PRICE_SCALE);
    let mut digits = fraction.bytes().map(|b| i64::from(b - b'0'));
    let mut kept = 0_i64;
    for _ in 0..4 {
        kept = kept * 10 + digits.next().unwrap_or(0);
    }
    let first_dropped = digits.next().unwrap_or(0);
    let rest_nonzero = digits.any(|d| d != 0);
    let units = whole.saturating_mul(PRICE_SCALE).saturating_add(kept);
    let round_up = first_dropped > 5 || (first_dropped == 5 && (rest_nonzero || units % 2 == 1));
    units + i64::from(round_up)
}

/// A signed amount with its own scale, turned into the `f64` a client sees: the nearest
/// double to the exact decimal, which JSON writes back as that decimal.
fn units_to_f64(units: i64, scale: i64) -> f64 {
    units as f64 / scale as f64
}

/// `numerator / denominator` rounded half away from zero to an integer.
///
/// # Panics
/// Never for a non-zero denominator; callers pass prices, which are positive.
pub fn round_ratio_half_away(numerator: i128, denominator: i128) -> i64 {
    debug_assert!(denominator != 0);
    // On magnitudes, so that no step overflows whatever the operands (`i128::MIN` included).
    let (n, d) = (numerator.unsigned_abs(), denominator.unsigned_abs());
    let (quotient, remainder) = (n / d, n % d);
    // `remainder ≥ d − remainder` is `2 × remainder ≥ d` without the doubling.
    let magnitude = quotient + u128::from(remainder >= d - remainder);
    let negative = (numerator < 0) != (denominator < 0);
    let saturated = if negative { i64::MIN } else { i64::MAX };
    i128::try_from(magnitude)
        .ok()
        .map(|m| if negative { -m } else { m })
        .and_then(|rounded| i64::try_from(rounded).ok())
        .unwrap_or(saturated)
}

/// A percentage held in hundredths (`1234` is 12.34 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(i64);

impl Percent {
    pub fn from_hundredths(hundredths: i64) -> Self {
        Self(hundredths)
    }

    /// `(to / from − 1) × 100`, rounded half away from zero to two decimals.
    pub fn change_between(from: Price, to: Price) -> Self {
        let delta = i128::from(to.units()) - i128::from(from.units());
        Self(round_ratio_half_away(
            delta * 10_000,
            i128::from(from.units()),
        ))
    }

    pub fn hundredths(self) -> i64 {
        self.0
    }

    pub fn to_f64(self) -> f64 {
        units_to_f64(self.0, 100)
    }
}

/// A signed price difference in ten-thousandths, as a client sees it.
pub(crate) fn price_delta_to_f64(units: i64) -> f64 {
    units_to_f64(units, PRICE_SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_half_to_even_on_the_written_decimal() {
        assert_eq!(Price::from_f64(1.00005).unwrap().units(), 10_000);
        assert_eq!(Price::from_f64(1.00015).unwrap().units(), 10_002);
        assert_eq!(Price::from_f64(1.000051).unwrap().units(), 10_001);
        assert_eq!(Price::from_f64(189.1234).unwrap().units(), 1_891_234);
        assert_eq!(Price::from_f64(2.0).unwrap().units(), 20_000);
    }

    #[test]
    fn a_price_that_rounds_to_zero_is_rejected() {
        assert_eq!(Price::from_f64(0.00004), Err(PriceError::NotPositive));
        assert_eq!(Price::from_f64(0.00005), Err(PriceError::NotPositive));
        assert_eq!(Price::from_f64(0.00006).unwrap().units(), 1);
        assert_eq!(Price::from_f64(-1.0), Err(PriceError::NotPositive));
        assert_eq!(Price::from_f64(f64::NAN), Err(PriceError::NotFinite));
        assert_eq!(Price::from_f64(f64::INFINITY), Err(PriceError::NotFinite));
        assert_eq!(Price::from_f64(1e300), Err(PriceError::TooLarge));
    }

    #[test]
    fn the_published_bounds_are_the_ones_applied() {
        assert_eq!(
            Price::from_f64(Price::ROUNDS_TO_ZERO),
            Err(PriceError::NotPositive)
        );
        assert_eq!(Price::from_f64(0.000051).unwrap().units(), 1);
        assert!(Price::from_f64(Price::MAX as f64).is_ok());
        assert_eq!(
            Price::from_f64(Price::MAX as f64 + 1.0),
            Err(PriceError::TooLarge)
        );
        assert_eq!(
            PriceError::TooLarge.to_string(),
            "a price must be at most 1000000000"
        );
    }

    #[test]
    fn ratios_round_half_away_from_zero() {
        assert_eq!(round_ratio_half_away(5, 2), 3);
        assert_eq!(round_ratio_half_away(-5, 2), -3);
        assert_eq!(round_ratio_half_away(4, 3), 1);
        assert_eq!(round_ratio_half_away(-4, 3), -1);
        assert_eq!(round_ratio_half_away(0, 7), 0);
    }

    #[test]
    fn ratios_of_huge_operands_neither_overflow_nor_panic() {
        // Found by fuzzing: doubling the remainder overflowed i128 (a panic in debug builds).
        assert_eq!(
            round_ratio_half_away(
                -133_444_057_505_426_801_890_794_324_922_839_884_901,
                -133_444_065_459_191_554_299_362_608_741_899_068_517
            ),
            1
        );
        assert_eq!(round_ratio_half_away(i128::MIN, -1), i64::MAX);
        assert_eq!(round_ratio_half_away(i128::MIN, 1), i64::MIN);
        assert_eq!(round_ratio_half_away(i128::MIN, i128::MIN), 1);
        assert_eq!(round_ratio_half_away(i128::MAX, i128::MIN), -1);
        assert_eq!(round_ratio_half_away(-3, i128::MAX), 0);
    }

    #[test]
    fn percent_change_is_exact() {
        let from = Price::from_units(1_000_000).unwrap();
        let to = Price::from_units(1_012_345).unwrap();
        // 1.2345 % rounds half away from zero to 1.23 (…45 is below the half of 1.235).
        assert_eq!(Percent::change_between(from, to).hundredths(), 123);
        let to = Price::from_units(1_000_050).unwrap();
        // 0.005 % is exactly half a hundredth: away from zero.
        assert_eq!(Percent::change_between(from, to).hundredths(), 1);
        assert_eq!(Percent::change_between(to, from).hundredths(), -0);
        assert_eq!(Percent::from_hundredths(-1234).to_f64(), -12.34);
    }

    proptest! {
        #[test]
        fn four_decimal_prices_survive_the_round_trip(units in 1_i64..=1_000_000_000_000) {
            let price = Price::from_units(units).unwrap();
            prop_assert_eq!(Price::from_f64(price.to_f64()).unwrap(), price);
        }

        #[test]
        fn any_float_either_parses_or_is_refused(value in proptest::num::f64::ANY) {
            if let Ok(price) = Price::from_f64(value) {
                prop_assert!(price.units() > 0);
                prop_assert!((price.to_f64() - value).abs() <= 0.00005 + value.abs() * 1e-12);
            }
        }
    }
}
