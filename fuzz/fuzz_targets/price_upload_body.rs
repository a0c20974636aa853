//! The body of `POST /api/stocks/{ticker}/prices` (`crates/stockpile-api/src/body.rs`).
//!
//! Raw bytes exercise the JSON reading: never a panic, never anything but a 400, and every
//! accepted bar is one the domain's bar rule admits. Bodies built from bars whose numbers are
//! written as clients write them (fractions, exponents, signs) check the rest: every field the
//! domain's `PriceBar::parse` refuses is named `bars[i].field`, in order, and nothing else; a
//! price is the written decimal rounded half-to-even to 4 places, computed exactly here, so
//! an accepted bar holds exactly those values and a price is refused exactly when that value
//! is out of range. (The bar rule itself is written once, in the domain.)

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oracles::{assert_holds_together, iso_date, Decimal, MAX_PRICE_UNITS};
use stockpile_api::fuzzing::{price_upload_body, ApiError};
use stockpile_domain::{BarError, PriceBar};

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Bars(Vec<Bar>),
}

#[derive(Debug, Arbitrary)]
struct Bar {
    date: Date,
    open: Number,
    high: Number,
    low: Number,
    close: Number,
    volume: i64,
}

#[derive(Debug, Arbitrary)]
enum Date {
    /// Zero-padded `YYYY-MM-DD`, which may still not be a calendar date (`2025-02-30`).
    Numbers(u16, u8, u8),
    Text(String),
}

#[derive(Debug, Arbitrary)]
struct Number {
    negative: bool,
    whole: u32,
    fraction: Vec<u8>,
    exponent: i8,
}

impl Number {
    fn decimal(&self) -> Decimal {
        Decimal {
            whole: self.whole % 2_000_000_000,
            fraction: self.fraction.iter().take(20).map(|d| d % 10).collect(),
            exponent: i32::from(self.exponent % 24),
        }
    }

    fn text(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{}", self.decimal().text())
    }

    /// The price in ten-thousandths if the contract accepts it; `Err(exact)` when the value
    /// has more digits than a double carries, so only its neighbourhood is known.
    fn units(&self) -> Result<Option<u128>, u128> {
        let decimal = self.decimal();
        let units = decimal.units().unwrap_or(u128::MAX);
        let accepted = (!self.negative && (1..=MAX_PRICE_UNITS).contains(&units)).then_some(units);
        if decimal.significant_digits() <= 15 {
            Ok(accepted)
        } else {
            Err(units)
        }
    }
}

impl Date {
    fn text(&self) -> String {
        match self {
            Self::Numbers(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
            Self::Text(text) => text.clone(),
        }
    }
}

impl Number {
    /// The double the body's JSON reader makes of the text.
    fn value(&self) -> f64 {
        serde_json::from_str(&self.text()).expect("the text is a JSON number")
    }
}

/// The fields the domain refuses in one bar, in field order, each checked against the exact
/// price where the written decimal survives the trip through a double.
fn refused(bar: &Bar) -> Vec<&'static str> {
    let prices = [&bar.open, &bar.high, &bar.low, &bar.close];
    let [open, high, low, close] = prices.map(Number::value);
    let errors = PriceBar::parse(&bar.date.text(), open, high, low, close, bar.volume)
        .err()
        .unwrap_or_default();
    assert_eq!(
        errors.iter().any(|e| matches!(e, BarError::Date(_))),
        iso_date(&bar.date.text()).is_none(),
        "{bar:?}"
    );
    for (name, number) in ["open", "high", "low", "close"].into_iter().zip(prices) {
        if let Ok(accepted) = number.units() {
            let refused = errors
                .iter()
                .any(|e| matches!(e, BarError::Price(..)) && e.field() == name);
            assert_eq!(refused, accepted.is_none(), "{name} of {bar:?}");
        }
    }
    errors.iter().map(BarError::field).collect()
}

fn check_built(bars: &[Bar]) {
    let body = format!(
        r#"{{"bars":[{}]}}"#,
        bars.iter()
            .map(|bar| format!(
                r#"{{"date":{},"open":{},"high":{},"low":{},"close":{},"volume":{}}}"#,
                serde_json::Value::from(bar.date.text()),
                bar.open.text(),
                bar.high.text(),
                bar.low.text(),
                bar.close.text(),
                bar.volume
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let result = price_upload_body(body.as_bytes());
    let expected: Vec<String> = bars
        .iter()
        .enumerate()
        .flat_map(|(i, bar)| {
            refused(bar)
                .into_iter()
                .map(move |f| format!("bars[{i}].{f}"))
        })
        .collect();
    match result {
        Ok(accepted) => {
            assert!(expected.is_empty(), "{body} accepted, but {expected:?}");
            assert_eq!(accepted.len(), bars.len());
            for (bar, sent) in accepted.iter().zip(bars) {
                assert_holds_together(bar);
                assert_eq!(Some(bar.date()), iso_date(&sent.date.text()));
                for (stored, written) in [
                    (bar.open(), &sent.open),
                    (bar.high(), &sent.high),
                    (bar.low(), &sent.low),
                    (bar.close(), &sent.close),
                ] {
                    // Past 15 significant digits only the neighbourhood of the value is known.
                    if let Ok(exact) = written.units() {
                        assert_eq!(Some(u128::from(stored.units().unsigned_abs())), exact);
                    }
                }
                assert_eq!(bar.volume(), sent.volume);
            }
        }
        Err(ApiError::Invalid(errors)) => {
            let fields: Vec<String> = errors.into_iter().map(|e| e.field).collect();
            assert_eq!(fields, expected, "{body}");
        }
        Err(other) => panic!("{body} refused as {other:?}"),
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(bytes) => match price_upload_body(&bytes) {
            Ok(bars) => bars.iter().for_each(assert_holds_together),
            Err(ApiError::Invalid(errors)) => assert!(!errors.is_empty()),
            Err(ApiError::MalformedBody(_)) => {}
            Err(other) => panic!("a bad body must be a 400, not {other:?}"),
        },
        Input::Bars(bars) => check_built(&bars),
    }
});
