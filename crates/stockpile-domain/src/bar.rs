use chrono::NaiveDate;

use crate::Price;

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

/// Why a bar is not a valid trading day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarError {
    #[error("low must not be above open or close, and high must not be below them")]
    Inconsistent,
    #[error("volume must be an integer of at least 0")]
    NegativeVolume,
}

impl PriceBar {
    /// A bar whose prices hold together: `low ≤ open, close ≤ high`.
    ///
    /// # Errors
    /// [`BarError`] when the prices contradict each other or the volume is negative.
    pub fn new(
        date: NaiveDate,
        open: Price,
        high: Price,
        low: Price,
        close: Price,
        volume: i64,
    ) -> Result<Self, BarError> {
        if volume < 0 {
            return Err(BarError::NegativeVolume);
        }
        if low > open || low > close || open > high || close > high {
            return Err(BarError::Inconsistent);
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
            Err(BarError::Inconsistent)
        );
        assert_eq!(
            PriceBar::new(day, p(10), p(12), p(9), p(13), 1),
            Err(BarError::Inconsistent)
        );
        assert_eq!(
            PriceBar::new(day, p(10), p(9), p(9), p(9), 1),
            Err(BarError::Inconsistent)
        );
        assert_eq!(
            PriceBar::new(day, p(10), p(12), p(9), p(11), -1),
            Err(BarError::NegativeVolume)
        );
    }
}
