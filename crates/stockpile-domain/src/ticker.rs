use std::fmt;

/// A stock's symbol: 1–10 characters, the first `[A-Za-z0-9]`, the rest `[A-Za-z0-9.-]`,
/// always held in upper case so that `aapl` and `AAPL` are the same ticker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticker(String);

/// Why a string is not a ticker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TickerError {
    #[error("a ticker must be 1 to 10 characters long")]
    Length,
    #[error(
        "a ticker must start with a letter or digit and contain only letters, digits, '.' and '-'"
    )]
    Characters,
}

impl Ticker {
    pub const MAX_LEN: usize = 10;

    /// The grammar [`Ticker::parse`] accepts, as a regular expression for documents such as
    /// the OpenAPI one (the parser itself needs no regular expression).
    pub const PATTERN: &'static str = "^[A-Za-z0-9][A-Za-z0-9.-]{0,9}$";

    /// Parses and normalises a ticker to upper case.
    ///
    /// # Errors
    /// [`TickerError`] when the text is empty, too long or has a character outside the set.
    pub fn parse(raw: &str) -> Result<Self, TickerError> {
        // Characters, not bytes: a short ticker with a non-ASCII letter is refused for that
        // letter, not as too long. (A character is a byte that does not continue another.)
        let characters = raw.bytes().filter(|b| b & 0xC0 != 0x80).count();
        if !(1..=Self::MAX_LEN).contains(&characters) {
            return Err(TickerError::Length);
        }
        // Bytes suffice from here: every byte of a non-ASCII character fails both tests.
        let (first, rest) = raw.as_bytes().split_at(1);
        let first_ok = first[0].is_ascii_alphanumeric();
        let rest_ok = rest
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-');
        if !(first_ok && rest_ok) {
            return Err(TickerError::Characters);
        }
        Ok(Self(raw.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Words that are routes under `/api/stocks/`, never tickers: no stock may be written
    /// under them, so `GET /api/stocks/TOP` can only ever be a 404. (`leaderboard`, the other
    /// route word, is eleven characters and so never parses as a ticker at all.)
    pub const RESERVED: [&'static str; 1] = ["TOP"];

    /// True when this ticker spells a route word and so cannot name a stock.
    pub fn is_reserved(&self) -> bool {
        Self::RESERVED.contains(&self.0.as_str())
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Ticker {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_to_upper_case() {
        assert_eq!(Ticker::parse("brk.b").unwrap().as_str(), "BRK.B");
    }

    #[test]
    fn rejects_bad_tickers() {
        for bad in ["", "ABCDEFGHIJK", ".A", "-A", "A B", "A_B", "AÄ", "A/B"] {
            assert!(Ticker::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepts_edge_tickers() {
        for good in ["A", "1", "ABCDEFGHIJ", "BF-B", "9.9"] {
            assert!(Ticker::parse(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn the_length_is_counted_in_characters_not_bytes() {
        // Found by fuzzing: ten characters in eleven bytes were refused as too long.
        assert_eq!(Ticker::parse("ÄÄÄÄÄÄ"), Err(TickerError::Characters));
        assert_eq!(Ticker::parse("ABCDEFGHIÄ"), Err(TickerError::Characters));
        assert_eq!(Ticker::parse("ABCDEFGHIJÄ"), Err(TickerError::Length));
    }

    #[test]
    fn the_pattern_states_the_parsers_length() {
        let tail = format!("{{0,{}}}$", Ticker::MAX_LEN - 1);
        assert!(Ticker::PATTERN.ends_with(&tail), "{}", Ticker::PATTERN);
    }

    #[test]
    fn route_words_are_reserved_in_any_case() {
        assert!(Ticker::parse("top").unwrap().is_reserved());
        assert!(Ticker::parse("leaderboard").is_err());
        assert!(!Ticker::parse("TOPS").unwrap().is_reserved());
    }

    proptest! {
        #[test]
        fn valid_tickers_round_trip(raw in Ticker::PATTERN.trim_start_matches('^').trim_end_matches('$')) {
            let ticker = Ticker::parse(&raw).unwrap();
            prop_assert_eq!(ticker.as_str(), raw.to_ascii_uppercase());
        }

        #[test]
        fn parse_never_panics_and_accepts_only_the_grammar(raw in "\\PC{0,14}") {
            if let Ok(ticker) = Ticker::parse(&raw) {
                prop_assert!((1..=10).contains(&ticker.as_str().len()));
                prop_assert!(ticker.as_str().chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '-'));
            }
        }
    }
}
