//! Bars built from prices in units of 1/10,000, as tests write them.

use chrono::NaiveDate;
use stockpile_domain::{Price, PriceBar};

/// A valid bar; panics (a broken test) when the figures break the bar rule.
pub fn bar_of_units(
    day: NaiveDate,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i64,
) -> PriceBar {
    let price = |units| Price::from_units(units).unwrap_or_else(|e| panic!("{units}: {e:?}"));
    PriceBar::new(
        day,
        price(open),
        price(high),
        price(low),
        price(close),
        volume,
    )
    .unwrap_or_else(|errors| panic!("not a bar: {errors:?}"))
}
