//! The body of `POST /api/stocks/{ticker}/prices` (`crates/stockpile-api/src/body.rs`).
//!
//! Raw bytes exercise the JSON reading: never a panic, never anything but a 400, and every
//! accepted bar holds together (`low ≤ open, close ≤ high`, positive prices, volume ≥ 0).
//! Bodies built from bars whose numbers are written as clients write them (fractions,
//! exponents, signs) check the rest against the contract computed exactly: a price is the
//! written decimal rounded half-to-even to 4 places, the checks apply after rounding, and
//! every invalid field of every bar is named `bars[i].field`.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oracles::{assert_holds_together, iso_date, Decimal, MAX_PRICE_UNITS};
use stockpile_api::fuzzing::{price_upload_body, ApiError};

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

/// The fields the contract refuses in one bar, in field order; `None` when a price has more
/// digits than a double carries and sits next to a rounding boundary, so the verdict is open.
fn refused(bar: &Bar) -> Option<Vec<&'static str>> {
    let mut fields = Vec::new();
    if iso_date(&bar.date.text()).is_none() {
        fields.push("date");
    }
    let mut prices = Vec::new();
    for (name, number) in [
        ("open", &bar.open),
        ("high", &bar.high),
        ("low", &bar.low),
        ("close", &bar.close),
    ] {
        match number.units() {
            Ok(Some(units)) => prices.push(units),
            Ok(None) => fields.push(name),
            Err(_) => return None,
        }
    }
    if let [open, high, low, close] = prices[..] {
        if low > open || low > close {
            fields.push("low");
        } else if open > high || close > high {
            fields.push("high");
        }
    }
    if bar.volume < 0 {
        fields.push("volume");
    }
    Some(fields)
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
    let Some(expected) = bars
        .iter()
        .enumerate()
        .map(|(i, bar)| {
            Some(
                refused(bar)?
                    .into_iter()
                    .map(move |f| format!("bars[{i}].{f}")),
            )
        })
        .collect::<Option<Vec<_>>>()
        .map(|fields| fields.into_iter().flatten().collect::<Vec<_>>())
    else {
        return;
    };
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
                    assert_eq!(
                        Ok(Some(u128::from(stored.units().unsigned_abs()))),
                        written.units()
                    );
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
