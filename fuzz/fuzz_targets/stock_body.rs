//! The body of `PUT /api/stocks/{ticker}` (`crates/stockpile-api/src/body.rs`): any bytes are a
//! profile, a 400 naming exactly the fields the contract's bounds refuse, or a 400 for a body
//! that is not the expected JSON; an accepted profile holds what was sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use stockpile_api::fuzzing::{stock_profile_body, ApiError};

const FIELDS: [&str; 6] = [
    "name",
    "exchange",
    "sector",
    "industry",
    "currency",
    "market_cap",
];

/// 1 to `max` characters, not only blanks (or, for an optional field, at most `max`), and
/// no NUL, which PostgreSQL text cannot hold.
fn text_in(value: &str, min: usize, max: usize) -> bool {
    let chars = value.chars().count();
    (min..=max).contains(&chars) && (min == 0 || !value.trim().is_empty()) && !value.contains('\0')
}

/// The fields the contract refuses, in field order, for a body of the right shape.
fn refused(body: &Map<String, Value>) -> Vec<&'static str> {
    let text = |name: &str| body.get(name).and_then(Value::as_str);
    let mut fields = Vec::new();
    for (name, max) in [("name", 200), ("exchange", 32), ("sector", 64)] {
        if !text(name).is_some_and(|v| text_in(v, 1, max)) {
            fields.push(name);
        }
    }
    if text("industry").is_some_and(|v| !text_in(v, 0, 128)) {
        fields.push("industry");
    }
    if text("currency")
        .is_some_and(|c| !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())))
    {
        fields.push("currency");
    }
    if body
        .get("market_cap")
        .and_then(Value::as_i64)
        .is_some_and(|m| m < 0)
    {
        fields.push("market_cap");
    }
    fields
}

/// Whether the JSON has the body's shape: an object of known fields, the required ones
/// strings, the optional ones absent, `null` or of their type.
fn has_the_shape(value: &Value) -> Option<&Map<String, Value>> {
    let body = value.as_object()?;
    let optional = |name: &str, typed: fn(&Value) -> bool| {
        body.get(name).is_none_or(|v| v.is_null() || typed(v))
    };
    let shaped = body.keys().all(|k| FIELDS.contains(&k.as_str()))
        && ["name", "exchange", "sector"]
            .iter()
            .all(|f| body.get(*f).is_some_and(Value::is_string))
        && optional("industry", Value::is_string)
        && optional("currency", Value::is_string)
        && optional("market_cap", |v| v.as_i64().is_some());
    shaped.then_some(body)
}

fuzz_target!(|bytes: &[u8]| {
    let json: Option<Value> = serde_json::from_slice(bytes).ok();
    let shaped = json.as_ref().and_then(has_the_shape);
    match stock_profile_body(bytes) {
        Ok(profile) => {
            let body = shaped.expect("an accepted body has the shape");
            assert!(refused(body).is_empty());
            let text = |name: &str| body.get(name).and_then(Value::as_str);
            assert_eq!(Some(profile.name()), text("name"));
            assert_eq!(Some(profile.exchange()), text("exchange"));
            assert_eq!(Some(profile.sector()), text("sector"));
            assert_eq!(profile.industry(), text("industry"));
            assert_eq!(
                profile.currency().as_str(),
                text("currency").unwrap_or("USD")
            );
            assert_eq!(
                profile.market_cap(),
                body.get("market_cap").and_then(Value::as_i64)
            );
        }
        Err(ApiError::Invalid(errors)) => {
            let body = shaped.expect("a body refused by field has the shape");
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, refused(body));
        }
        Err(ApiError::MalformedBody(_)) => {
            // Duplicate fields are refused although a `Value` keeps the last one, so a body of
            // the shape may still be malformed; one not of the shape must be.
        }
        Err(other) => panic!("a bad body must be a 400, not {other:?}"),
    }
});
