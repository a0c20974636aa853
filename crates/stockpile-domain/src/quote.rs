use chrono::NaiveDate;

use crate::decimal::price_delta_to_f64;
use crate::{round_ratio_half_away, Percent, Price, PriceBar};

/// A stock's latest quote, derived from its latest bar and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub as_of: NaiveDate,
    pub price: Price,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub volume: i64,
    pub previous_close: Option<Price>,
    /// `price − previous_close`, in ten-thousandths.
    pub change_units: Option<i64>,
    pub change_percent: Option<Percent>,
}

impl Quote {
    /// The quote of `latest`, compared with `previous` (the bar before it, if any).
    pub fn derive(latest: &PriceBar, previous: Option<&PriceBar>) -> Self {
        let previous_close = previous.map(PriceBar::close);
        Self {
            as_of: latest.date(),
            price: latest.close(),
            open: latest.open(),
            high: latest.high(),
            low: latest.low(),
            volume: latest.volume(),
            previous_close,
            change_units: previous_close.map(|prev| latest.close().units() - prev.units()),
            change_percent: previous_close
                .map(|prev| Percent::change_between(prev, latest.close())),
        }
    }

    /// The change as a client sees it (four decimals).
    pub fn change(&self) -> Option<f64> {
        self.change_units.map(price_delta_to_f64)
    }
}

/// The mean of `volume_sum` over `bar_count` bars, rounded half away from zero.
pub fn average_volume(volume_sum: i64, bar_count: i64) -> Option<i64> {
    (bar_count > 0).then(|| round_ratio_half_away(i128::from(volume_sum), i128::from(bar_count)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(day: u32, close: i64, volume: i64) -> PriceBar {
        let p = Price::from_units(close).unwrap();
        PriceBar::new(
            NaiveDate::from_ymd_opt(2025, 11, day).unwrap(),
            p,
            p,
            p,
            p,
            volume,
        )
        .unwrap()
    }

    #[test]
    fn derives_change_from_the_previous_close() {
        let quote = Quote::derive(&bar(21, 1_050_000, 7), Some(&bar(20, 1_000_000, 3)));
        assert_eq!(quote.change(), Some(5.0));
        assert_eq!(quote.change_percent.unwrap().to_f64(), 5.0);
        assert_eq!(quote.volume, 7);
        assert_eq!(quote.as_of, NaiveDate::from_ymd_opt(2025, 11, 21).unwrap());
    }

    #[test]
    fn a_single_bar_has_a_price_but_no_change() {
        let quote = Quote::derive(&bar(21, 1_050_000, 7), None);
        assert_eq!(quote.price.units(), 1_050_000);
        assert_eq!(quote.change(), None);
        assert_eq!(quote.change_percent, None);
    }

    #[test]
    fn average_volume_rounds_half_away_from_zero() {
        assert_eq!(average_volume(5, 2), Some(3));
        assert_eq!(average_volume(4, 3), Some(1));
        assert_eq!(average_volume(0, 0), None);
    }
}
