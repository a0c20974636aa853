//! Prices and percentages (`crates/stockpile-domain/src/decimal.rs`): a price is the number a
//! client wrote, rounded half-to-even to four decimals; it is positive, bounded, monotone and
//! survives its own round trip; ratios round half away from zero and never panic.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oracles::{Decimal, MAX_PRICE_UNITS};
use stockpile_domain::{round_ratio_half_away, Percent, Price, PriceError};

const MAX_UNITS: i64 = MAX_PRICE_UNITS as i64;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Any two doubles, NaN, infinities and subnormals included.
    a: f64,
    b: f64,
    /// A decimal as a client writes it: `whole.fraction`, fraction digits taken modulo 10.
    whole: u32,
    fraction: Vec<u8>,
    units: i64,
    numerator: i128,
    denominator: i128,
}

/// What `Price::from_f64` must answer for a double: the bounds and the rounding, within the
/// double's own precision.
fn check_any_double(value: f64) -> Result<Price, PriceError> {
    let result = Price::from_f64(value);
    let scaled = value * 10_000.0;
    let slack = scaled.abs() * 1e-15;
    match &result {
        Ok(price) => {
            assert!((1..=MAX_UNITS).contains(&price.units()), "{value:e}");
            assert!(
                (price.units() as f64 - scaled).abs() <= 0.5 + slack,
                "{value:e} became {price:?}"
            );
            assert_eq!(Price::from_f64(price.to_f64()).as_ref(), Ok(price));
            assert_eq!(Price::from_units(price.units()).as_ref(), Ok(price));
        }
        Err(PriceError::NotFinite) => assert!(!value.is_finite()),
        Err(PriceError::NotPositive) => assert!(scaled <= 0.5 + slack, "{value:e}"),
        Err(PriceError::TooLarge) => {
            assert!(scaled >= MAX_UNITS as f64 + 0.5 - slack, "{value:e}");
        }
    }
    if value.is_finite() {
        assert_ne!(result, Err(PriceError::NotFinite));
    }
    result
}

/// `round_ratio_half_away` against its definition: within half of the denominator of the
/// exact quotient, and away from zero on an exact half. Checked where the arithmetic fits.
fn check_ratio(numerator: i128, denominator: i128) {
    if denominator == 0 {
        return;
    }
    let rounded = i128::from(round_ratio_half_away(numerator, denominator));
    let (n, d) = if denominator < 0 {
        (numerator.checked_neg(), denominator.checked_neg())
    } else {
        (Some(numerator), Some(denominator))
    };
    let Some((n, d)) = n.zip(d) else { return };
    let Some(error) = rounded
        .checked_mul(d)
        .and_then(|r| r.checked_sub(n))
        .and_then(|e| e.checked_mul(2))
    else {
        return;
    };
    if rounded == i128::from(i64::MAX) || rounded == i128::from(i64::MIN) {
        return; // Saturated: out of i64's range, as documented.
    }
    let Some(error) = error.checked_abs() else {
        return;
    };
    assert!(error <= d, "{numerator} / {denominator} gave {rounded}");
    if error == d {
        // An exact half goes away from zero: the rounded value is the larger in magnitude.
        let scaled = rounded.checked_abs().and_then(|r| r.checked_mul(d));
        if let Some((scaled, exact)) = scaled.zip(n.checked_abs()) {
            assert!(scaled > exact, "{numerator} / {denominator}");
        }
    }
}

fuzz_target!(|input: Input| {
    let a = check_any_double(input.a);
    let b = check_any_double(input.b);
    if let (Ok(a_price), Ok(b_price)) = (a, b) {
        if input.a <= input.b {
            assert!(
                a_price <= b_price,
                "{} ≤ {} but not after rounding",
                input.a,
                input.b
            );
        }
        let change = Percent::change_between(a_price, b_price).hundredths();
        let delta = i128::from(b_price.units()) - i128::from(a_price.units());
        assert!(change == 0 || i128::from(change.signum()) == delta.signum());
        check_ratio(delta * 10_000, i128::from(a_price.units()));
    }

    // A written decimal of up to 15 significant digits survives the trip through a double
    // exactly, so its rounding must be exactly the written number's.
    let decimal = Decimal {
        whole: input.whole % 2_000_000_000,
        fraction: input.fraction.iter().take(20).map(|d| d % 10).collect(),
        exponent: 0,
    };
    let text = decimal.text();
    let value: f64 = text.parse().expect("a decimal");
    let expected = decimal.units().expect("below 10^30");
    let result = Price::from_f64(value);
    if decimal.significant_digits() <= 15 {
        let expected = match expected {
            0 => Err(PriceError::NotPositive),
            n if n > MAX_PRICE_UNITS => Err(PriceError::TooLarge),
            n => Ok(n as i64),
        };
        assert_eq!(result.map(Price::units), expected, "{text}");
    } else if let Ok(price) = result {
        assert!(
            u128::from(price.units().unsigned_abs()).abs_diff(expected) <= 1,
            "{text}"
        );
    }

    if let Ok(price) = Price::from_units(input.units) {
        assert!((1..=MAX_UNITS).contains(&input.units));
        assert_eq!(price.units(), input.units);
    } else {
        assert!(!(1..=MAX_UNITS).contains(&input.units));
    }

    check_ratio(input.numerator, input.denominator);
});
