//! The glob matcher agrees with Redis: a table of tricky cases, and a property check against
//! a direct port of Redis's `stringmatchlen`.

use proptest::prelude::*;
use stockpile_infrastructure::cache::glob::{escape, Glob};

use super::redis_glob::redis_stringmatch;

/// What Redis answers for a key under a prefix: the relative pattern and key with a literal
/// prefix in front, which is how the Redis adapter sends them.
fn redis_matches(pattern: &str, key: &str) -> bool {
    redis_stringmatch(
        format!("p:{pattern}").as_bytes(),
        format!("p:{key}").as_bytes(),
    )
}

#[test]
fn matches_the_cases_that_trip_glob_matchers_up() {
    // (pattern, key, matches)
    let cases = [
        ("*", "", true),
        ("*", "anything:at:all", true),
        ("stocks:list:*", "stocks:list:abc", true),
        ("stocks:list:*", "stocks:detail:AAPL", false),
        ("stocks:*:AAPL", "stocks:detail:AAPL", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("[abc]x", "bx", true),
        ("[abc]x", "dx", false),
        ("[^abc]x", "dx", true),
        ("[^abc]x", "ax", false),
        ("[a-c]x", "bx", true),
        ("[c-a]x", "bx", true),
        ("[a-c]x", "dx", false),
        ("\\*", "*", true),
        ("\\*", "a", false),
        ("a\\?", "a?", true),
        ("a\\?", "ab", false),
        ("[\\]]", "]", true),
        ("[]a]", "]a]", false),
        ("[]", "", false),
        ("[", "", false),
        ("[", "a", false),
        ("[^", "a", true),
        ("[ab", "a", true),
        ("x\\", "x\\", true),
        ("[a-]", "_", true),
        ("***a", "a", true),
        ("a*", "a", true),
        ("?", "é", false),
    ];
    for (pattern, key, expected) in cases {
        assert_eq!(
            Glob::new(pattern).matches(key),
            expected,
            "pattern {pattern:?} against {key:?}"
        );
        assert_eq!(
            redis_matches(pattern, key),
            expected,
            "the reference disagrees on {pattern:?} against {key:?}"
        );
    }
}

#[test]
fn many_stars_do_not_take_exponential_time() {
    let pattern = "*a".repeat(40) + "b";
    let key = "a".repeat(200);
    let started = std::time::Instant::now();
    assert!(!Glob::new(&pattern).matches(&key));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

/// Strings over the bytes that mean something to a pattern, and a few that do not.
fn glob_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', '-', '^', '[', ']', '*', '?', '\\']),
        0..9,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn agrees_with_redis(pattern in glob_text(), key in glob_text()) {
        prop_assert_eq!(Glob::new(&pattern).matches(&key), redis_matches(&pattern, &key));
    }

    #[test]
    fn an_escaped_literal_matches_only_itself(literal in glob_text(), other in glob_text()) {
        let glob = Glob::new(&escape(&literal));
        prop_assert!(glob.matches(&literal));
        prop_assert_eq!(glob.matches(&other), other == literal);
    }

    #[test]
    fn an_escaped_prefix_and_a_star_match_exactly_the_keys_under_it(
        prefix in glob_text(),
        key in glob_text(),
    ) {
        let glob = Glob::new(&format!("{}*", escape(&prefix)));
        prop_assert_eq!(glob.matches(&key), key.starts_with(&prefix));
    }

    #[test]
    fn a_star_matches_everything(key in ".*") {
        prop_assert!(Glob::new("*").matches(&key));
    }
}
