//! `Ticker::parse` accepts exactly the grammar of `docs/API.md`, normalises to upper case, and
//! names the right problem when it refuses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stockpile_domain::{Ticker, TickerError};

/// The contract's grammar, written apart from the parser: 1–10 characters, the first
/// `[A-Za-z0-9]`, the rest `[A-Za-z0-9.-]`.
fn in_grammar(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().collect();
    (1..=10).contains(&chars.len())
        && chars[0].is_ascii_alphanumeric()
        && chars[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

fuzz_target!(|raw: &str| {
    match Ticker::parse(raw) {
        Ok(ticker) => {
            assert!(in_grammar(raw), "accepted {raw:?}");
            assert_eq!(ticker.as_str(), raw.to_ascii_uppercase());
            assert_eq!(ticker.to_string(), ticker.as_str());
            // Normalised: parsing the result, or any other casing, gives the same ticker.
            assert_eq!(Ticker::parse(ticker.as_str()).as_ref(), Ok(&ticker));
            assert_eq!(
                Ticker::parse(&raw.to_ascii_lowercase()).as_ref(),
                Ok(&ticker)
            );
            assert_eq!(
                ticker.is_reserved(),
                Ticker::RESERVED.contains(&ticker.as_str())
            );
        }
        Err(error) => {
            assert!(!in_grammar(raw), "refused {raw:?}");
            // The message a client reads must name what is wrong with what it sent.
            let length_ok = (1..=Ticker::MAX_LEN).contains(&raw.chars().count());
            assert_eq!(
                error == TickerError::Length,
                !length_ok,
                "{raw:?} refused as {error:?}"
            );
        }
    }
});
