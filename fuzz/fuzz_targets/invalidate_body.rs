//! The body of `POST /api/cache/invalidate`: any bytes are the pattern that was sent, a 400
//! naming the fields of an object that is not `{"pattern": "<string>"}`, or a plain 400 for a
//! body that is not a JSON object; the pattern then selects exactly the keys Redis would select.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stockpile_api::fuzzing::{invalidate_body, ApiError};
use stockpile_infrastructure::cache::glob::Glob;

#[path = "../../crates/stockpile-infrastructure/tests/it/cache/redis_glob.rs"]
mod redis_glob;

/// Keys of every cache family of the contract, and the edge cases of a key.
const KEYS: &[&str] = &[
    "",
    "stocks:list:9f86d081884c7d65",
    "stocks:detail:AAPL",
    "stocks:detail:BRK.B",
    "stocks:history:MSFT:2c26b46b68ffc68f",
    "stocks:top:fcde2b2edba56bf4",
    "leaderboard:top:0123456789abcdef",
    "stocks:*:[x]\\",
];

/// The pattern, when the JSON is exactly an object with one string field `pattern`.
fn sent_pattern(json: &Value) -> Option<&str> {
    let object = json.as_object()?;
    (object.len() == 1).then_some(())?;
    object.get("pattern")?.as_str()
}

fuzz_target!(|bytes: &[u8]| {
    let json: Option<Value> = serde_json::from_slice(bytes).ok();
    let sent = json.as_ref().and_then(sent_pattern);
    match invalidate_body(bytes) {
        Ok(pattern) => {
            assert_eq!(
                Some(pattern.as_str()),
                sent,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            let glob = Glob::new(&pattern);
            let affordable = pattern.bytes().filter(|&b| b == b'*').count() <= 4;
            for key in KEYS.iter().filter(|_| affordable) {
                // Under a literal prefix, as the Redis adapter sends them.
                let redis = redis_glob::redis_stringmatch(
                    format!("p:{pattern}").as_bytes(),
                    format!("p:{key}").as_bytes(),
                );
                assert_eq!(glob.matches(key), redis, "{pattern:?} against {key:?}");
            }
        }
        // A duplicate `pattern` field is refused too, though a `Value` keeps the last one.
        Err(ApiError::Invalid(errors)) => {
            assert!(json.as_ref().is_some_and(Value::is_object), "{errors:?}");
            assert!(!errors.is_empty());
            assert!(
                sent.is_none() || errors.iter().all(|e| e.field == "pattern"),
                "{errors:?}"
            );
        }
        Err(ApiError::MalformedBody(_)) => {
            assert!(!json.as_ref().is_some_and(Value::is_object));
        }
        Err(other) => panic!("a bad body must be a 400, not {other:?}"),
    }
});
