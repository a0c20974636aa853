use std::str::FromStr;

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::ParseEnumError;

/// A leaderboard period, counted back from the latest trading day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Period {
    OneWeek,
    #[default]
    OneMonth,
    ThreeMonths,
    SixMonths,
    OneYear,
    YearToDate,
}

impl Period {
    pub const ALL: [Self; 6] = [
        Self::OneWeek,
        Self::OneMonth,
        Self::ThreeMonths,
        Self::SixMonths,
        Self::OneYear,
        Self::YearToDate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneWeek => "1w",
            Self::OneMonth => "1m",
            Self::ThreeMonths => "3m",
            Self::SixMonths => "6m",
            Self::OneYear => "1y",
            Self::YearToDate => "ytd",
        }
    }

    /// The period's start for a leaderboard as of `as_of`: 7 days back, 1/3/6 calendar months
    /// or one calendar year back (clamped to the month's last day), or the previous 31 December.
    pub fn start(self, as_of: NaiveDate) -> NaiveDate {
        let months_back = |n| {
            as_of
                .checked_sub_months(Months::new(n))
                .unwrap_or(NaiveDate::MIN)
        };
        match self {
            Self::OneWeek => as_of
                .checked_sub_days(Days::new(7))
                .unwrap_or(NaiveDate::MIN),
            Self::OneMonth => months_back(1),
            Self::ThreeMonths => months_back(3),
            Self::SixMonths => months_back(6),
            Self::OneYear => months_back(12),
            Self::YearToDate => {
                NaiveDate::from_ymd_opt(as_of.year() - 1, 12, 31).unwrap_or(NaiveDate::MIN)
            }
        }
    }
}

impl FromStr for Period {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParseEnumError::new(s, &["1w", "1m", "3m", "6m", "1y", "ytd"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn starts_follow_calendar_arithmetic() {
        let cases = [
            (Period::OneWeek, d(2025, 11, 21), d(2025, 11, 14)),
            (Period::OneMonth, d(2025, 3, 31), d(2025, 2, 28)),
            (Period::OneMonth, d(2024, 3, 31), d(2024, 2, 29)),
            (Period::ThreeMonths, d(2025, 5, 31), d(2025, 2, 28)),
            (Period::SixMonths, d(2025, 8, 31), d(2025, 2, 28)),
            (Period::OneYear, d(2024, 2, 29), d(2023, 2, 28)),
            (Period::YearToDate, d(2025, 11, 21), d(2024, 12, 31)),
        ];
        for (period, as_of, start) in cases {
            assert_eq!(period.start(as_of), start, "{period:?} from {as_of}");
        }
    }

    #[test]
    fn parses_exactly_the_listed_values() {
        for p in Period::ALL {
            assert_eq!(p.as_str().parse::<Period>().unwrap(), p);
        }
        assert!("1M".parse::<Period>().is_err());
        assert!("YTD".parse::<Period>().is_err());
    }
}
