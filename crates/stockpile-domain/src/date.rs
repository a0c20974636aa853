use chrono::NaiveDate;

/// Why a text is not a date of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a calendar date written YYYY-MM-DD")]
pub struct DateError;

/// Parses a calendar date written exactly `YYYY-MM-DD`, zero-padded: the one date grammar of
/// query parameters, request bodies and imported files (chrono alone would also take
/// `2025-1-2`, a sign or more than four year digits).
///
/// # Errors
/// [`DateError`] for any other shape, or a day the calendar does not have (`2025-02-30`).
pub fn parse_iso_date(text: &str) -> Result<NaiveDate, DateError> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(DateError);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| DateError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn takes_exactly_the_zero_padded_form_of_a_real_day() {
        assert_eq!(
            parse_iso_date("2025-01-02"),
            Ok(NaiveDate::from_ymd_opt(2025, 1, 2).unwrap())
        );
        assert!(parse_iso_date("2024-02-29").is_ok());
        for bad in [
            "2025-1-2",
            "2025-01-2",
            "2025-02-30",
            "2025-13-01",
            "2023-02-29",
            "20250102",
            "2025-01-02T00:00",
            " 2025-01-02",
            "+2025-01-02",
            "2025/01/02",
            "",
            "x",
        ] {
            assert_eq!(parse_iso_date(bad), Err(DateError), "{bad}");
        }
    }

    proptest! {
        /// Independent of the parser: a text is accepted exactly when it is how chrono writes
        /// the date it names.
        #[test]
        fn accepts_a_text_exactly_when_it_is_the_dates_own_form(text in "[0-9+ -]{0,4}-?[0-9]{1,2}-[0-9]{1,2}") {
            match parse_iso_date(&text) {
                Ok(date) => prop_assert_eq!(date.format("%Y-%m-%d").to_string(), text),
                Err(_) => prop_assert!(NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_or(true, |d| d.format("%Y-%m-%d").to_string() != text)),
            }
        }

        #[test]
        fn every_day_round_trips(days in 0_i64..3_000_000) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Days::new(days as u64);
            let text = date.format("%Y-%m-%d").to_string();
            prop_assume!(text.len() == 10);
            prop_assert_eq!(parse_iso_date(&text), Ok(date));
        }
    }
}
