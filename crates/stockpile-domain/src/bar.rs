use chrono::NaiveDate;

use crate::{parse_iso_date, DateError, Price, PriceError};

/// The most bars one upload may carry.
pub const MAX_BARS_PER_UPLOAD: usize = 10_000;

/// One trading day of a stock: open, high, low and close prices and the volume traded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceBar {
    date: NaiveDate,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    volume: i64,
}

/// One of a bar's four prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceField {
    Open,
    High,
    Low,
    Close,
}

impl PriceField {
    /// The four, in the order a bar lists them.
    pub const ALL: [Self; 4] = [Self::Open, Self::High, Self::Low, Self::Close];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::High => "high",
            Self::Low => "low",
            Self::Close => "close",
        }
    }
}

/// Which field of a bar breaks which rule; the message is about that field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarError {
    #[error("{0}")]
    Date(DateError),
    #[error("{1}")]
    Price(PriceField, PriceError),
    /// Named on the low, the bound a client would fix, when it is above open or close.
    #[error("must not be above open or close")]
    LowAbove,
    /// Named on the high when the low is fine but open or close is above the high.
    #[error("must not be below open or close")]
    HighBelow,
    #[error("must be an integer of at least 0")]
    NegativeVolume,
}

impl BarError {
    /// The field of the bar the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Date(_) => "date",
            Self::Price(field, _) => field.as_str(),
            Self::LowAbove => "low",
            Self::HighBelow => "high",
            Self::NegativeVolume => "volume",
        }
    }
}

/// `low ≤ open, close ≤ high`: the one place this rule is written.
fn crossed(open: Price, high: Price, low: Price, close: Price) -> Option<BarError> {
    if low > open || low > close {
        Some(BarError::LowAbove)
    } else if open > high || close > high {
        Some(BarError::HighBelow)
    } else {
        None
    }
}

fn negative(volume: i64) -> Option<BarError> {
    (volume < 0).then_some(BarError::NegativeVolume)
}

impl PriceBar {
    /// A bar whose prices hold together (`low ≤ open, close ≤ high`) and whose volume is at
    /// least 0.
    ///
    /// # Errors
    /// Every [`BarError`] that applies, in field order.
    pub fn new(
        date: NaiveDate,
        open: Price,
        high: Price,
        low: Price,
        close: Price,
        volume: i64,
    ) -> Result<Self, Vec<BarError>> {
        let errors: Vec<_> = crossed(open, high, low, close)
            .into_iter()
            .chain(negative(volume))
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            date,
            open,
            high,
            low,
            close,
            volume,
        })
    }

    /// A bar as clients write one: the date as `YYYY-MM-DD` text, prices as numbers (rounded
    /// half-to-even to four decimals before any check) and the volume.
    ///
    /// Each rule is judged on its own, so that a bad date or price hides no other problem:
    /// the prices are compared whenever all four are prices, the volume always.
    ///
    /// # Errors
    /// Every [`BarError`] that applies, in field order.
    pub fn parse(
        date: &str,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: i64,
    ) -> Result<Self, Vec<BarError>> {
        let mut errors = Vec::new();
        let date = parse_iso_date(date)
            .map_err(|e| errors.push(BarError::Date(e)))
            .ok();
        let mut price = |field, value| {
            Price::from_f64(value)
                .map_err(|e| errors.push(BarError::Price(field, e)))
                .ok()
        };
        let open = price(PriceField::Open, open);
        let high = price(PriceField::High, high);
        let low = price(PriceField::Low, low);
        let close = price(PriceField::Close, close);
        match (date, open, high, low, close) {
            (Some(date), Some(open), Some(high), Some(low), Some(close)) => {
                Self::new(date, open, high, low, close, volume)
            }
            (None, Some(open), Some(high), Some(low), Some(close)) => {
                errors.extend(crossed(open, high, low, close));
                errors.extend(negative(volume));
                Err(errors)
            }
            _ => {
                errors.extend(negative(volume));
                Err(errors)
            }
        }
    }

    pub fn date(&self) -> NaiveDate {
        self.date
    }
    pub fn open(&self) -> Price {
        self.open
    }
    pub fn high(&self) -> Price {
        self.high
    }
    pub fn low(&self) -> Price {
        self.low
    }
    pub fn close(&self) -> Price {
        self.close
    }
    pub fn volume(&self) -> i64 {
        self.volume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(units: i64) -> Price {
        Price::from_units(units).unwrap()
    }

    #[test]
    fn rejects_inconsistent_prices() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        assert!(PriceBar::new(day, p(10), p(12), p(9), p(11), 100).is_ok());
        assert!(PriceBar::new(day, p(10), p(10), p(10), p(10), 0).is_ok());
        assert_eq!(
            PriceBar::new(day, p(8), p(12), p(9), p(11), 1),
            Err(vec![BarError::LowAbove])
        );
        assert_eq!(
            PriceBar::new(day, p(10), p(12), p(9), p(13), 1),
            Err(vec![BarError::HighBelow])
        );
        assert_eq!(
            PriceBar::new(day, p(10), p(9), p(9), p(9), 1),
            Err(vec![BarError::HighBelow])
        );
        assert_eq!(
            PriceBar::new(day, p(10), p(12), p(9), p(11), -1),
            Err(vec![BarError::NegativeVolume])
        );
    }

    #[test]
    fn reports_every_violated_field() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        let errors = PriceBar::new(day, p(10), p(12), p(11), p(11), -1).unwrap_err();
        assert_eq!(errors, vec![BarError::LowAbove, BarError::NegativeVolume]);
        let fields: Vec<_> = errors.iter().map(BarError::field).collect();
        assert_eq!(fields, ["low", "volume"]);
    }

    fn parsed_fields(result: Result<PriceBar, Vec<BarError>>) -> Vec<&'static str> {
        result.unwrap_err().iter().map(BarError::field).collect()
    }

    #[test]
    fn parsing_rounds_first_and_hides_no_problem_behind_another() {
        let bar = PriceBar::parse("2025-01-02", 1.00005, 1.00005, 1.00005, 1.00005, 0).unwrap();
        assert_eq!(bar.open().units(), 10_000);
        assert_eq!(bar.date(), NaiveDate::from_ymd_opt(2025, 1, 2).unwrap());
        // A bad date hides neither crossed prices nor a negative volume.
        assert_eq!(
            parsed_fields(PriceBar::parse("", 1.0, 2.0, 3.0, 1.5, -1)),
            ["date", "low", "volume"]
        );
        // A bad price hides the volume, and the prices are not compared without all four.
        assert_eq!(
            parsed_fields(PriceBar::parse(
                "2025-01-02",
                0.00004,
                2.0,
                3.0,
                f64::NAN,
                -1
            )),
            ["open", "close", "volume"]
        );
        assert_eq!(
            parsed_fields(PriceBar::parse("2025-1-2", 1.0, 0.9, 0.5, 0.8, 0)),
            ["date", "high"]
        );
    }
}
