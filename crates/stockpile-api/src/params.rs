//! Query parameters of the reads, parsed by hand into domain values.
//!
//! Rules: unknown parameters are ignored; a known parameter with a bad value is a 400 naming
//! it; a known parameter given more than once is a 400 too, because silently picking one of
//! two contradicting values would hide a client bug (and equivalent requests must share one
//! cache key). Every problem of a request is reported at once.

use std::collections::HashSet;
use std::str::FromStr;

use actix_web::web;
use chrono::NaiveDate;
use stockpile_application::{FieldError, MAX_QUOTE_TICKERS};
use stockpile_domain::{
    parse_iso_date, Interval, ListQuery, MoverMetric, PageRequest, ParseEnumError, Period,
    SortField, SortOrder, Ticker, MAX_LIMIT, MAX_PAGE, MAX_PAGE_SIZE, MAX_QUERY_LEN,
};

use crate::problem::ApiError;

/// The default number of movers or leaderboard places.
pub(crate) const DEFAULT_LIMIT: u32 = 10;

/// A ticker from a path segment; a bad one is a 400 about the `ticker` field.
pub(crate) fn parse_ticker(raw: &str) -> Result<Ticker, ApiError> {
    Ticker::parse(raw).map_err(|e| ApiError::invalid("ticker", e.to_string()))
}

/// The decoded pairs of a query string and the problems found so far.
struct Params {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl Params {
    fn parse(query_string: &str) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query_string)
            .map_err(|e| ApiError::invalid("query", e.to_string()))?
            .into_inner();
        Ok(Self {
            pairs,
            errors: Vec::new(),
        })
    }

    /// The one value of a parameter, `None` when absent; a repeated parameter is an error.
    fn single(&mut self, name: &str) -> Option<String> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name);
        let first = values.next()?;
        if values.next().is_some() {
            self.errors
                .push(FieldError::new(name, "must be given at most once"));
            return None;
        }
        Some(first.1.clone())
    }

    fn enumeration<T>(&mut self, name: &str) -> T
    where
        T: FromStr<Err = ParseEnumError> + Default,
    {
        let Some(raw) = self.single(name) else {
            return T::default();
        };
        raw.parse().unwrap_or_else(|e: ParseEnumError| {
            self.errors.push(FieldError::new(name, e.to_string()));
            T::default()
        })
    }

    fn integer(&mut self, name: &str, min: u32, max: u32, default: u32) -> u32 {
        let Some(raw) = self.single(name) else {
            return default;
        };
        // Digits only: `+5`, ` 5` and `5.0` are not what a client means by an integer here.
        let parsed = raw
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| raw.parse::<u32>().ok())
            .flatten()
            .filter(|n| (min..=max).contains(n));
        parsed.unwrap_or_else(|| {
            self.errors.push(FieldError::new(
                name,
                format!("must be an integer from {min} to {max}"),
            ));
            default
        })
    }

    fn date(&mut self, name: &str) -> Option<NaiveDate> {
        let raw = self.single(name)?;
        parse_iso_date(&raw)
            .map_err(|e| self.errors.push(FieldError::new(name, e.to_string())))
            .ok()
    }

    /// A free-text filter, normalised (trimmed, lower case, blank = none). A NUL (U+0000) is
    /// refused: no stored text holds one, and PostgreSQL fails on it instead of matching.
    /// The length limit applies to the normalised text, the one the search uses: lower-casing
    /// can lengthen it (`İ` becomes `i̇`, two characters).
    fn filter(&mut self, name: &str, max_chars: Option<usize>) -> Option<String> {
        let raw = self.single(name)?;
        if raw.contains('\0') {
            self.errors
                .push(FieldError::new(name, "must not contain a NUL character"));
            return None;
        }
        let normalised = ListQuery::normalise_filter(Some(&raw))?;
        if let Some(max) = max_chars {
            if normalised.chars().count() > max {
                self.errors.push(FieldError::new(
                    name,
                    format!("must be at most {max} characters once trimmed and lower-cased"),
                ));
                return None;
            }
        }
        Some(normalised)
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ApiError::Invalid(self.errors))
        }
    }
}

/// `GET /api/stocks`: `q`, `sector`, `exchange`, `sort`, `order`, `page`, `page_size`.
pub(crate) fn list_query(query_string: &str) -> Result<ListQuery, ApiError> {
    let mut params = Params::parse(query_string)?;
    let query = ListQuery {
        search: params.filter("q", Some(MAX_QUERY_LEN)),
        sector: params.filter("sector", None),
        exchange: params.filter("exchange", None),
        sort: params.enumeration::<SortField>("sort"),
        order: params.enumeration::<SortOrder>("order"),
        page: PageRequest {
            page: params.integer("page", 1, MAX_PAGE, PageRequest::default().page),
            page_size: params.integer(
                "page_size",
                1,
                MAX_PAGE_SIZE,
                PageRequest::default().page_size,
            ),
        },
    };
    params.finish(query)
}

/// `GET /api/stocks/{ticker}/history`: `from`, `to`, `interval`. Whether the range makes
/// sense (`from` after `to`, over 20 years) is the use case's rule, not a parsing matter.
pub(crate) fn history_params(
    query_string: &str,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>, Interval), ApiError> {
    let mut params = Params::parse(query_string)?;
    let from = params.date("from");
    let to = params.date("to");
    let interval = params.enumeration::<Interval>("interval");
    params.finish((from, to, interval))
}

/// `GET /api/stocks/top`: `metric`, `limit`.
pub(crate) fn top_params(query_string: &str) -> Result<(MoverMetric, u32), ApiError> {
    let mut params = Params::parse(query_string)?;
    let metric = params.enumeration::<MoverMetric>("metric");
    let limit = params.integer("limit", 1, MAX_LIMIT, DEFAULT_LIMIT);
    params.finish((metric, limit))
}

/// `GET /api/stocks/leaderboard/top`: `period`, `limit`, `sector`.
pub(crate) fn leaderboard_params(
    query_string: &str,
) -> Result<(Period, u32, Option<String>), ApiError> {
    let mut params = Params::parse(query_string)?;
    let period = params.enumeration::<Period>("period");
    let limit = params.integer("limit", 1, MAX_LIMIT, DEFAULT_LIMIT);
    let sector = params.filter("sector", None);
    params.finish((period, limit, sector))
}

/// `GET /api/quotes`: `tickers`, required, 1 to [`MAX_QUOTE_TICKERS`] distinct tickers
/// separated by commas, case-insensitive; a ticker given twice counts once, and the order of
/// first appearance is kept.
pub(crate) fn quote_tickers(query_string: &str) -> Result<Vec<Ticker>, ApiError> {
    const FIELD: &str = "tickers";
    let mut params = Params::parse(query_string)?;
    let repeated = params.pairs.iter().filter(|(k, _)| k == FIELD).count() > 1;
    let Some(raw) = params.single(FIELD) else {
        if !repeated {
            params.errors.push(FieldError::new(
                FIELD,
                format!("is required: 1 to {MAX_QUOTE_TICKERS} tickers separated by commas"),
            ));
        }
        return params.finish(Vec::new());
    };
    if raw.trim().is_empty() {
        params.errors.push(FieldError::new(
            FIELD,
            format!("must name 1 to {MAX_QUOTE_TICKERS} tickers separated by commas"),
        ));
        return params.finish(Vec::new());
    }
    let mut parsed: Vec<Ticker> = Vec::new();
    // A set of one char rather than the char `','`: the latter's searcher calls memchr per
    // part, which costs more than scanning these short parts.
    for part in raw.split([',']) {
        match Ticker::parse(part) {
            Ok(ticker) => parsed.push(ticker),
            Err(e) => params
                .errors
                .push(FieldError::new(FIELD, format!("{part:?}: {e}"))),
        }
    }
    // foldhash, seeded per process so that clients cannot choose colliding lists: with
    // SipHash, and a copy of each ticker, this was a third of a batch hit's own work.
    let mut seen =
        HashSet::with_capacity_and_hasher(parsed.len(), foldhash::fast::RandomState::default());
    let first: Vec<bool> = parsed.iter().map(|t| seen.insert(t.as_str())).collect();
    drop(seen);
    let tickers: Vec<Ticker> = parsed
        .into_iter()
        .zip(first)
        .filter_map(|(ticker, first)| first.then_some(ticker))
        .collect();
    if tickers.len() > MAX_QUOTE_TICKERS {
        params.errors.push(FieldError::new(
            FIELD,
            format!(
                "names {} distinct tickers; at most {MAX_QUOTE_TICKERS} are allowed",
                tickers.len()
            ),
        ));
    }
    params.finish(tickers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_give_the_default_query() {
        assert_eq!(list_query("").unwrap(), ListQuery::default());
        assert_eq!(
            list_query("page=1&sort=ticker&unknown=x").unwrap(),
            ListQuery::default()
        );
    }

    #[test]
    fn filters_are_normalised() {
        let query = list_query("q=%20App%20&sector=Information+Technology&exchange=").unwrap();
        assert_eq!(query.search.as_deref(), Some("app"));
        assert_eq!(query.sector.as_deref(), Some("information technology"));
        assert_eq!(query.exchange, None);
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let error = list_query("sort=Ticker&order=DESC&page=0&page_size=201").unwrap_err();
        assert_eq!(fields(error), ["sort", "order", "page", "page_size"]);
        for bad in [
            "page=-1",
            "page=1.0",
            "page=%2B1",
            "page=",
            "page_size=0",
            "page=x",
        ] {
            assert!(list_query(bad).is_err(), "{bad}");
        }
        assert!(list_query(&format!("q={}", "a".repeat(64))).is_ok());
        assert_eq!(
            fields(list_query(&format!("q={}", "a".repeat(65))).unwrap_err()),
            ["q"]
        );
    }

    #[test]
    fn the_search_limit_applies_to_the_text_searched() {
        // `İ` is one character, but lower-cased it is two (`i` and a combining dot).
        let dotted_capitals = "%C4%B0".repeat(64);
        assert_eq!(
            fields(list_query(&format!("q={dotted_capitals}")).unwrap_err()),
            ["q"]
        );
        let searched = list_query(&format!("q={}", "%C4%B0".repeat(32))).unwrap();
        assert_eq!(searched.search.map(|q| q.chars().count()), Some(64));
        // Surrounding blanks are not searched for, so they do not count.
        let padded = format!("q=%20%20{}%20", "a".repeat(64));
        assert_eq!(list_query(&padded).unwrap().search, Some("a".repeat(64)));
    }

    #[test]
    fn a_repeated_parameter_is_rejected() {
        assert_eq!(fields(list_query("page=1&page=2").unwrap_err()), ["page"]);
    }

    #[test]
    fn dates_must_be_iso() {
        let (from, _, _) = history_params("from=2025-01-02").unwrap();
        assert_eq!(from, NaiveDate::from_ymd_opt(2025, 1, 2));
        for bad in [
            "2025-1-2",
            "2025-02-30",
            "20250102",
            "2025-01-02T00:00",
            "x",
        ] {
            assert_eq!(
                fields(history_params(&format!("to={bad}")).unwrap_err()),
                ["to"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(history_params("from=2025-13-01&interval=1D").unwrap_err()),
            ["from", "interval"]
        );
        let (from, to, interval) = history_params("to=2025-01-31&interval=1mo").unwrap();
        assert_eq!((from, interval), (None, Interval::Monthly));
        assert_eq!(to, NaiveDate::from_ymd_opt(2025, 1, 31));
    }

    #[test]
    fn limits_and_enumerations_of_the_rankings() {
        assert_eq!(top_params("").unwrap(), (MoverMetric::Gainers, 10));
        assert_eq!(
            top_params("metric=active&limit=100").unwrap(),
            (MoverMetric::Active, 100)
        );
        assert_eq!(
            fields(top_params("metric=up&limit=101").unwrap_err()),
            ["metric", "limit"]
        );
        assert_eq!(
            leaderboard_params("period=ytd&sector=%20Energy").unwrap(),
            (Period::YearToDate, 10, Some("energy".to_owned()))
        );
        assert_eq!(
            fields(leaderboard_params("period=1M&limit=0").unwrap_err()),
            ["period", "limit"]
        );
    }

    #[test]
    fn quote_tickers_are_distinct_in_first_order_and_bounded() {
        let names = |query: &str| {
            quote_tickers(query)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("tickers=msft,AAPL,Msft&x=1"), ["MSFT", "AAPL"]);
        assert_eq!(names("tickers=brk.b"), ["BRK.B"]);
        let hundred: Vec<String> = (0..100).map(|i| format!("T{i}")).collect();
        let joined = hundred.join(",");
        assert_eq!(names(&format!("tickers={joined},t0,T99")).len(), 100);
        for bad in [
            "",
            "tickers=",
            "tickers=%20",
            "tickers=AAPL,,MSFT",
            "tickers=AAPL,",
            "tickers=AA%20PL",
            "tickers=AAPL&tickers=MSFT",
            "tickers=AAPL&TICKERS=MSFT&tickers=IBM",
        ] {
            assert_eq!(
                fields(quote_tickers(bad).unwrap_err())[..1],
                ["tickers"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(quote_tickers(&format!("tickers={joined},X")).unwrap_err()),
            ["tickers"]
        );
    }

    /// The documented pattern of `tickers`, without the anchors proptest does not take.
    fn documented_ticker_lists() -> impl Strategy<Value = String> {
        let pattern = crate::openapi::ticker_list_pattern();
        let unanchored = pattern.trim_start_matches('^').trim_end_matches('$');
        proptest::string::string_regex(unanchored).unwrap()
    }

    proptest! {
        #[test]
        fn every_ticker_list_the_document_allows_is_taken(tickers in documented_ticker_lists()) {
            let query = format!("tickers={tickers}");
            prop_assert!(quote_tickers(&query).is_ok(), "{}", query);
        }

        #[test]
        fn any_query_string_is_parsed_or_refused_but_never_panics(raw in "\\PC{0,80}") {
            for result in [
                list_query(&raw).map(drop),
                history_params(&raw).map(drop),
                top_params(&raw).map(drop),
                leaderboard_params(&raw).map(drop),
                quote_tickers(&raw).map(drop),
            ] {
                prop_assert!(matches!(result, Ok(()) | Err(ApiError::Invalid(_))));
            }
        }

        #[test]
        fn every_page_size_in_range_is_taken_as_is(size in 1_u32..=200) {
            let query = list_query(&format!("page_size={size}")).unwrap();
            prop_assert_eq!(query.page.page_size, size);
        }
    }
}
