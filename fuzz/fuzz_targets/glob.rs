//! Cache-pattern matching (`crates/stockpile-infrastructure/src/cache/glob.rs`) agrees with
//! Redis on every pattern and key, so the in-memory cache removes exactly what `SCAN MATCH`
//! finds; an escaped literal matches only itself, and an escaped prefix with `*` exactly the
//! keys under it. Matching stays linear: a slow input is a finding (libFuzzer's `-timeout`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stockpile_infrastructure::cache::glob::{escape, Glob};

#[path = "../../crates/stockpile-infrastructure/tests/it/cache/redis_glob.rs"]
mod redis_glob;

use redis_glob::redis_stringmatch;

/// Whether the reference, exponential in the number of stars, answers quickly on this input.
fn reference_is_affordable(pattern: &str, key: &str) -> bool {
    pattern.bytes().filter(|&b| b == b'*').count() <= 3 || key.len() <= 12
}

fuzz_target!(|input: (&str, &str)| {
    let (pattern, key) = input;
    let glob = Glob::new(pattern);
    let matched = glob.matches(key);
    if reference_is_affordable(pattern, key) {
        // Under a literal prefix, as the Redis adapter sends every pattern and key (bare, Redis
        // would not match `*` against the empty string).
        let redis = redis_stringmatch(
            format!("p:{pattern}").as_bytes(),
            format!("p:{key}").as_bytes(),
        );
        assert_eq!(matched, redis, "pattern {pattern:?} against {key:?}");
    }

    let literal = Glob::new(&escape(pattern));
    assert!(literal.matches(pattern), "escaped {pattern:?}");
    assert_eq!(
        literal.matches(key),
        key == pattern,
        "escaped {pattern:?} against {key:?}"
    );

    let under = Glob::new(&format!("{}*", escape(pattern)));
    assert_eq!(
        under.matches(key),
        key.starts_with(pattern),
        "{pattern:?}* against {key:?}"
    );
});
