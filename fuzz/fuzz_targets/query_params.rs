//! The query-string parsers of the four reads (`crates/stockpile-api/src/params.rs`) against the
//! contract's table of parameters, written here apart from the parsers:
//!
//! - a bad input is always a validation error (a 400), never anything else or a panic;
//! - exactly the parameters with a bad value, or given twice, are named, in the endpoint's order;
//! - an accepted value is the one sent, normalised, and within its range;
//! - the order of the parameters does not matter, and the normalised request, sent again,
//!   parses to itself (equivalent requests must share one cache key).

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use oracles::iso_date;
use stockpile_api::fuzzing::{
    history_params, leaderboard_params, list_query, top_params, ApiError,
};

/// The digits-only integers of the contract: `+5`, ` 5` and `5.0` are not integers here.
fn integer_in(value: &str, min: u32, max: u32) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && value.parse::<u32>().is_ok_and(|n| (min..=max).contains(&n))
}

type Rule = (&'static str, fn(&str) -> bool);

/// A free-text filter: no NUL (PostgreSQL text cannot hold one), and at most `max` characters.
fn text_filter(value: &str, max: usize) -> bool {
    !value.contains('\0') && value.chars().count() <= max
}

const LIST: &[Rule] = &[
    ("q", |v| text_filter(v, 64)),
    ("sector", |v| text_filter(v, usize::MAX)),
    ("exchange", |v| text_filter(v, usize::MAX)),
    ("sort", |v| {
        [
            "ticker",
            "name",
            "market_cap",
            "price",
            "change_percent",
            "volume",
        ]
        .contains(&v)
    }),
    ("order", |v| ["asc", "desc"].contains(&v)),
    ("page", |v| integer_in(v, 1, u32::MAX)),
    ("page_size", |v| integer_in(v, 1, 200)),
];
const HISTORY: &[Rule] = &[
    ("from", |v| iso_date(v).is_some()),
    ("to", |v| iso_date(v).is_some()),
    ("interval", |v| ["1d", "1w", "1mo"].contains(&v)),
];
const TOP: &[Rule] = &[
    ("metric", |v| ["gainers", "losers", "active"].contains(&v)),
    ("limit", |v| integer_in(v, 1, 100)),
];
const LEADERBOARD: &[Rule] = &[
    ("period", |v| {
        ["1w", "1m", "3m", "6m", "1y", "ytd"].contains(&v)
    }),
    ("limit", |v| integer_in(v, 1, 100)),
    ("sector", |v| text_filter(v, usize::MAX)),
];

/// The decoded pairs, as any `application/x-www-form-urlencoded` reader sees them.
fn pairs(query: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.as_bytes()).collect()
}

/// The one value of a parameter, if it was given exactly once.
fn single<'a>(pairs: &'a [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'a str> {
    let mut values = pairs.iter().filter(|(k, _)| k == name);
    let first = values.next()?;
    values.next().is_none().then_some(first.1.as_ref())
}

/// The parameters the contract says are bad, in the endpoint's order.
fn expected_errors(query: &str, rules: &[Rule]) -> Vec<&'static str> {
    let pairs = pairs(query);
    rules
        .iter()
        .filter(|(name, valid)| {
            let values: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_ref())
                .collect();
            values.len() > 1 || values.first().is_some_and(|v| !valid(v))
        })
        .map(|(name, _)| *name)
        .collect()
}

/// What the parser reported: `Ok(())` or the fields it named, with their messages.
fn outcome<T>(result: &Result<T, ApiError>) -> Result<(), Vec<(String, String)>> {
    match result {
        Ok(_) => Ok(()),
        Err(ApiError::Invalid(errors)) => {
            assert!(!errors.is_empty(), "a 400 names at least one field");
            Err(errors
                .iter()
                .map(|e| (e.field.clone(), e.message.clone()))
                .collect())
        }
        Err(other) => panic!("bad query parameters must be a 400, not {other:?}"),
    }
}

/// Checks one endpoint's parser on `query`; returns its value when it accepted the query.
fn check<T: PartialEq + std::fmt::Debug>(
    query: &str,
    rules: &[Rule],
    parse: fn(&str) -> Result<T, ApiError>,
) -> Option<T> {
    let result = parse(query);
    let reported = outcome(&result);
    let named: Vec<String> = match &reported {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|(field, _)| field.clone()).collect(),
    };
    assert_eq!(named, expected_errors(query, rules), "{query:?}");

    let reversed: Vec<&str> = query.split('&').rev().collect();
    let reversed = parse(&reversed.join("&"));
    assert_eq!(outcome(&reversed), reported, "order changed {query:?}");
    let value = result.ok()?;
    assert_eq!(
        reversed.ok().as_ref(),
        Some(&value),
        "order changed {query:?}"
    );
    Some(value)
}

/// The query string of a normalised request.
fn encode(pairs: &[(&str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A normalised filter: trimmed, lower case, never blank.
fn assert_normalised(filter: Option<&str>, sent: Option<&str>) {
    let expected = sent
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    assert_eq!(filter, expected.as_deref());
}

fuzz_target!(|query: &str| {
    let sent = pairs(query);

    if let Some(list) = check(query, LIST, list_query) {
        assert_normalised(list.search.as_deref(), single(&sent, "q"));
        assert_normalised(list.sector.as_deref(), single(&sent, "sector"));
        assert_normalised(list.exchange.as_deref(), single(&sent, "exchange"));
        assert_eq!(
            list.sort.as_str(),
            single(&sent, "sort").unwrap_or("ticker")
        );
        assert_eq!(list.order.as_str(), single(&sent, "order").unwrap_or("asc"));
        assert!(list.page.page >= 1);
        assert!((1..=200).contains(&list.page.page_size));
        let mut again = vec![
            ("sort", list.sort.as_str().to_owned()),
            ("order", list.order.as_str().to_owned()),
            ("page", list.page.page.to_string()),
            ("page_size", list.page.page_size.to_string()),
        ];
        for (name, filter) in [
            ("q", &list.search),
            ("sector", &list.sector),
            ("exchange", &list.exchange),
        ] {
            again.extend(filter.clone().map(|f| (name, f)));
        }
        assert_eq!(list_query(&encode(&again)).ok(), Some(list), "{query:?}");
    }

    if let Some((from, to, interval)) = check(query, HISTORY, history_params) {
        assert_eq!(from, single(&sent, "from").and_then(iso_date));
        assert_eq!(to, single(&sent, "to").and_then(iso_date));
        assert_eq!(interval.as_str(), single(&sent, "interval").unwrap_or("1d"));
        let mut again = vec![("interval", interval.as_str().to_owned())];
        again.extend(from.map(|d| ("from", d.format("%Y-%m-%d").to_string())));
        again.extend(to.map(|d| ("to", d.format("%Y-%m-%d").to_string())));
        assert_eq!(
            history_params(&encode(&again)).ok(),
            Some((from, to, interval))
        );
    }

    if let Some((metric, limit)) = check(query, TOP, top_params) {
        assert_eq!(
            metric.as_str(),
            single(&sent, "metric").unwrap_or("gainers")
        );
        assert!((1..=100).contains(&limit));
        let again = [
            ("metric", metric.as_str().to_owned()),
            ("limit", limit.to_string()),
        ];
        assert_eq!(top_params(&encode(&again)).ok(), Some((metric, limit)));
    }

    if let Some((period, limit, sector)) = check(query, LEADERBOARD, leaderboard_params) {
        assert_eq!(period.as_str(), single(&sent, "period").unwrap_or("1m"));
        assert!((1..=100).contains(&limit));
        assert_normalised(sector.as_deref(), single(&sent, "sector"));
        let mut again = vec![
            ("period", period.as_str().to_owned()),
            ("limit", limit.to_string()),
        ];
        again.extend(sector.clone().map(|s| ("sector", s)));
        assert_eq!(
            leaderboard_params(&encode(&again)).ok(),
            Some((period, limit, sector))
        );
    }
});
