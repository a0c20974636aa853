use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

use crate::{ParseEnumError, PriceBar};

/// The width of one bar in a price history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Interval {
    #[default]
    Daily,
    /// ISO weeks, Monday to Sunday.
    Weekly,
    /// Calendar months.
    Monthly,
}

impl Interval {
    pub const ALL: [Self; 3] = [Self::Daily, Self::Weekly, Self::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "1d",
            Self::Weekly => "1w",
            Self::Monthly => "1mo",
        }
    }

    /// The bucket a date falls into: bars of one bucket aggregate into one.
    fn bucket(self, date: NaiveDate) -> (i32, u32) {
        match self {
            Self::Daily => (date.year(), date.ordinal()),
            Self::Weekly => {
                let week = date.iso_week();
                (week.year(), week.week())
            }
            Self::Monthly => (date.year(), date.month()),
        }
    }
}

impl FromStr for Interval {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| ParseEnumError::new(s, &["1d", "1w", "1mo"]))
    }
}

/// Aggregates daily bars (oldest first) into bars of `interval`: first open, highest high,
/// lowest low, last close, summed volume, dated by the first trading day of the bucket.
pub fn aggregate_bars(daily: &[PriceBar], interval: Interval) -> Vec<PriceBar> {
    if interval == Interval::Daily {
        return daily.to_vec();
    }
    let mut aggregated: Vec<PriceBar> = Vec::new();
    let mut current_bucket = None;
    for bar in daily {
        let bucket = interval.bucket(bar.date());
        match aggregated.last_mut() {
            Some(open_bar) if current_bucket == Some(bucket) => {
                *open_bar = merge(open_bar, bar);
            }
            _ => {
                aggregated.push(*bar);
                current_bucket = Some(bucket);
            }
        }
    }
    aggregated
}

fn merge(first: &PriceBar, next: &PriceBar) -> PriceBar {
    PriceBar::new(
        first.date(),
        first.open(),
        first.high().max(next.high()),
        first.low().min(next.low()),
        next.close(),
        first.volume().saturating_add(next.volume()),
    )
    .unwrap_or(*first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Price;
    use proptest::prelude::*;

    fn bar(date: NaiveDate, o: i64, h: i64, l: i64, c: i64, v: i64) -> PriceBar {
        let p = |u| Price::from_units(u).unwrap();
        PriceBar::new(date, p(o), p(h), p(l), p(c), v).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn parses_exactly_the_listed_values() {
        assert_eq!("1w".parse::<Interval>().unwrap(), Interval::Weekly);
        assert!("1W".parse::<Interval>().is_err());
        assert!("1m".parse::<Interval>().is_err());
    }

    #[test]
    fn weekly_bars_follow_iso_weeks_across_a_year_end() {
        // 2024-12-30 (Mon) .. 2025-01-03 (Fri) is ISO week 2025-W01; 2025-01-06 starts W02.
        let daily = vec![
            bar(d(2024, 12, 27), 10, 12, 9, 11, 1),
            bar(d(2024, 12, 30), 11, 15, 10, 14, 2),
            bar(d(2025, 1, 2), 14, 14, 8, 9, 3),
            bar(d(2025, 1, 6), 9, 10, 9, 10, 4),
        ];
        let weekly = aggregate_bars(&daily, Interval::Weekly);
        assert_eq!(weekly.len(), 3);
        assert_eq!(weekly[1], bar(d(2024, 12, 30), 11, 15, 8, 9, 5));
        assert_eq!(weekly[2].date(), d(2025, 1, 6));
    }

    #[test]
    fn monthly_bars_are_dated_by_their_first_trading_day() {
        let daily = vec![
            bar(d(2025, 3, 3), 10, 11, 9, 10, 1),
            bar(d(2025, 3, 31), 10, 20, 5, 19, 1),
        ];
        let monthly = aggregate_bars(&daily, Interval::Monthly);
        assert_eq!(monthly, vec![bar(d(2025, 3, 3), 10, 20, 5, 19, 2)]);
    }

    proptest! {
        #[test]
        fn aggregation_preserves_volume_extremes_and_ends(
            days in proptest::collection::vec((1_i64..1000, 0_i64..1000, 0_i64..1000, 0_i64..1_000_000), 1..120),
            interval in prop_oneof![Just(Interval::Weekly), Just(Interval::Monthly), Just(Interval::Daily)],
        ) {
            let start = d(2023, 12, 20);
            let daily: Vec<PriceBar> = days
                .iter()
                .enumerate()
                .map(|(i, &(low, up, spread, v))| {
                    bar(start + chrono::Days::new(i as u64), low + up % (spread + 1), low + up + spread, low, low + up, v)
                })
                .collect();
            let out = aggregate_bars(&daily, interval);
            prop_assert_eq!(out.iter().map(|b| b.volume()).sum::<i64>(), daily.iter().map(|b| b.volume()).sum::<i64>());
            prop_assert_eq!(out.iter().map(|b| b.high()).max(), daily.iter().map(|b| b.high()).max());
            prop_assert_eq!(out.iter().map(|b| b.low()).min(), daily.iter().map(|b| b.low()).min());
            prop_assert_eq!(out.first().map(|b| (b.date(), b.open())), daily.first().map(|b| (b.date(), b.open())));
            prop_assert_eq!(out.last().map(|b| b.close()), daily.last().map(|b| b.close()));
            prop_assert!(out.windows(2).all(|w| w[0].date() < w[1].date()));
        }
    }
}
