//! The body of `PUT /api/stocks/{ticker}` (`crates/stockpile-api/src/body.rs`): any bytes are a
//! profile, a 400 naming exactly the fields of the wrong shape (missing, unknown or mistyped)
//! or, when the shape is right, exactly the fields the contract's bounds refuse, or a plain 400
//! for a body that is not a JSON object; an accepted profile holds what was sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use stockpile_api::fuzzing::{stock_profile_body, ApiError};
use stockpile_domain::StockProfile;

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
    for (name, limit) in [
        ("name", StockProfile::NAME),
        ("exchange", StockProfile::EXCHANGE),
        ("sector", StockProfile::SECTOR),
    ] {
        if !text(name).is_some_and(|v| text_in(v, limit.min, limit.max)) {
            fields.push(name);
        }
    }
    let industry = StockProfile::INDUSTRY;
    if text("industry").is_some_and(|v| !text_in(v, industry.min, industry.max)) {
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

/// The fields of the wrong shape, sorted: unknown ones, required ones missing or not strings,
/// optional ones neither absent, `null` nor of their type.
fn misshapen(body: &Map<String, Value>) -> Vec<&str> {
    let optional = |name: &str, typed: fn(&Value) -> bool| {
        body.get(name).is_none_or(|v| v.is_null() || typed(v))
    };
    let mut fields: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !FIELDS.contains(k))
        .collect();
    fields.extend(
        ["name", "exchange", "sector"]
            .into_iter()
            .filter(|f| !body.get(*f).is_some_and(Value::is_string)),
    );
    for (name, typed) in [
        ("industry", Value::is_string as fn(&Value) -> bool),
        ("currency", Value::is_string),
        ("market_cap", |v: &Value| v.as_i64().is_some()),
    ] {
        if !optional(name, typed) {
            fields.push(name);
        }
    }
    fields.sort_unstable();
    fields
}

fuzz_target!(|bytes: &[u8]| {
    let json: Option<Value> = serde_json::from_slice(bytes).ok();
    let object = json.as_ref().and_then(Value::as_object);
    match stock_profile_body(bytes) {
        Ok(profile) => {
            let body = object.expect("an accepted body is an object");
            assert!(misshapen(body).is_empty() && refused(body).is_empty());
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
            let body = object.expect("a body refused by field is an object");
            // A field given twice is named too, though a `Value` keeps only its last value.
            if errors.iter().any(|e| e.message.contains("only once")) {
                return;
            }
            let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            let shape = misshapen(body);
            if shape.is_empty() {
                assert_eq!(fields, refused(body));
            } else {
                fields.sort_unstable();
                assert_eq!(fields, shape);
            }
        }
        Err(ApiError::MalformedBody(_)) => assert!(object.is_none(), "{object:?}"),
        Err(other) => panic!("a bad body must be a 400, not {other:?}"),
    }
});
