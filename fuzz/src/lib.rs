//! Oracles the fuzz targets share: the contract's rules for dates and for rounding written
//! decimals, computed exactly and apart from the code under test.

use chrono::NaiveDate;
use stockpile_domain::PriceBar;

/// The largest price in ten-thousandths (1,000,000,000).
pub const MAX_PRICE_UNITS: u128 = 10_000_000_000_000;

/// A calendar date written exactly `YYYY-MM-DD`.
pub fn iso_date(value: &str) -> Option<NaiveDate> {
    let b = value.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| value[range].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)
}

/// A non-negative decimal as a client writes it: `whole.fraction × 10^exponent`, the
/// fraction's digits 0–9.
#[derive(Debug, Clone)]
pub struct Decimal {
    pub whole: u32,
    pub fraction: Vec<u8>,
    pub exponent: i32,
}

impl Decimal {
    /// The JSON text of the number (`12.5`, `125e-1`, `0.000125E5`).
    pub fn text(&self) -> String {
        let mut text = self.whole.to_string();
        if !self.fraction.is_empty() {
            text.push('.');
            text.extend(self.fraction.iter().map(|d| char::from(b'0' + d)));
        }
        if self.exponent != 0 {
            text.push_str(&format!("e{}", self.exponent));
        }
        text
    }

    /// All digits as one integer `n`, with the value being `n / 10^scale`.
    fn integer_and_scale(&self) -> (u128, i32) {
        let n = self
            .fraction
            .iter()
            .fold(u128::from(self.whole), |n, d| n * 10 + u128::from(*d));
        (n, self.fraction.len() as i32 - self.exponent)
    }

    /// Digits that carry the value: zeros at either end do not count. Up to 15 survive the
    /// trip through a double exactly.
    pub fn significant_digits(&self) -> usize {
        let (n, _) = self.integer_and_scale();
        let text = n.to_string();
        text.trim_matches('0').len()
    }

    /// The value rounded half-to-even to ten-thousandths, exactly; `None` when it is far
    /// beyond any price.
    pub fn units(&self) -> Option<u128> {
        let (n, scale) = self.integer_and_scale();
        let shift = scale - 4;
        if shift <= 0 {
            return 10_u128
                .checked_pow(shift.unsigned_abs())
                .and_then(|p| n.checked_mul(p));
        }
        // Targets keep n below 10^30, so past 10^38 the value is below half a unit.
        let Some(divisor) = 10_u128.checked_pow(shift as u32) else {
            return Some(0);
        };
        let (quotient, remainder) = (n / divisor, n % divisor);
        let round_up = remainder > divisor - remainder
            || (remainder == divisor - remainder && quotient % 2 == 1);
        Some(quotient + u128::from(round_up))
    }
}

/// An accepted bar is what the domain's one bar rule makes of its own fields: the rule itself
/// (`low ≤ open, close ≤ high`, volume ≥ 0) is written only in `PriceBar::new`.
pub fn assert_holds_together(bar: &PriceBar) {
    let again = PriceBar::new(
        bar.date(),
        bar.open(),
        bar.high(),
        bar.low(),
        bar.close(),
        bar.volume(),
    );
    assert_eq!(again, Ok(*bar));
}
