use chrono::{Days, NaiveDate};

/// The longest span a history request may cover: 20 years.
pub const MAX_HISTORY_SPAN_DAYS: i64 = 7_305;

/// The inclusive dates of a history request once its defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Why the requested dates cannot form a history range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryRangeError {
    #[error("'from' must not be after 'to'")]
    FromAfterTo,
    #[error("the range spans more than 7305 days (20 years); request a shorter range")]
    TooLong,
}

impl HistoryRange {
    /// Checks the dates the client gave, before anything is looked up.
    ///
    /// # Errors
    /// [`HistoryRangeError`] when `from` is after `to` or the span exceeds 20 years.
    pub fn check_requested(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<(), HistoryRangeError> {
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(HistoryRangeError::FromAfterTo);
            }
            if (to - from).num_days() > MAX_HISTORY_SPAN_DAYS {
                return Err(HistoryRangeError::TooLong);
            }
        }
        Ok(())
    }

    /// Applies the defaults against the stock's latest bar: neither date gives the 365 days
    /// ending at the latest bar, only `from` runs to the latest bar, only `to` gives the 365
    /// days ending at `to`. `None` when the stock has no bars and no `to` was given.
    ///
    /// # Errors
    /// [`HistoryRangeError`] as [`Self::check_requested`], also for the defaulted range.
    pub fn resolve(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        latest_bar: Option<NaiveDate>,
    ) -> Result<Option<Self>, HistoryRangeError> {
        Self::check_requested(from, to)?;
        let year_ending = |end: NaiveDate| {
            end.checked_sub_days(Days::new(364))
                .unwrap_or(NaiveDate::MIN)
        };
        let range = match (from, to, latest_bar) {
            (Some(from), Some(to), _) => Self { from, to },
            (None, Some(to), _) => Self {
                from: year_ending(to),
                to,
            },
            (Some(from), None, Some(latest)) => Self {
                from,
                to: latest.max(from),
            },
            (Some(from), None, None) => Self { from, to: from },
            (None, None, Some(latest)) => Self {
                from: year_ending(latest),
                to: latest,
            },
            (None, None, None) => return Ok(None),
        };
        if (range.to - range.from).num_days() > MAX_HISTORY_SPAN_DAYS {
            return Err(HistoryRangeError::TooLong);
        }
        Ok(Some(range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let latest = Some(d(2025, 11, 21));
        assert_eq!(
            HistoryRange::resolve(None, None, latest).unwrap(),
            Some(HistoryRange {
                from: d(2024, 11, 22),
                to: d(2025, 11, 21)
            })
        );
        assert_eq!(
            HistoryRange::resolve(Some(d(2025, 1, 1)), None, latest).unwrap(),
            Some(HistoryRange {
                from: d(2025, 1, 1),
                to: d(2025, 11, 21)
            })
        );
        assert_eq!(
            HistoryRange::resolve(None, Some(d(2025, 6, 30)), latest).unwrap(),
            Some(HistoryRange {
                from: d(2024, 7, 1),
                to: d(2025, 6, 30)
            })
        );
        assert_eq!(HistoryRange::resolve(None, None, None).unwrap(), None);
    }

    #[test]
    fn a_from_after_the_latest_bar_is_an_empty_range_not_an_error() {
        let range = HistoryRange::resolve(Some(d(2026, 1, 1)), None, Some(d(2025, 11, 21)))
            .unwrap()
            .unwrap();
        assert_eq!(range.from, d(2026, 1, 1));
    }

    #[test]
    fn rejects_reversed_and_too_long_ranges() {
        assert_eq!(
            HistoryRange::resolve(Some(d(2025, 2, 1)), Some(d(2025, 1, 1)), None),
            Err(HistoryRangeError::FromAfterTo)
        );
        let from = d(2000, 1, 1);
        let exactly_20y = from + Days::new(7305);
        assert!(HistoryRange::resolve(Some(from), Some(exactly_20y), None).is_ok());
        assert_eq!(
            HistoryRange::resolve(Some(from), Some(exactly_20y + Days::new(1)), None),
            Err(HistoryRangeError::TooLong)
        );
        assert_eq!(
            HistoryRange::resolve(Some(d(1990, 1, 1)), None, Some(d(2025, 1, 1))),
            Err(HistoryRangeError::TooLong)
        );
    }
}
