//! The cache key of every read, relative to the configured prefix, the generation each entry
//! belongs to, and the generations each write makes stale.
//!
//! Equivalent requests share one key: parameters are normalised (defaults applied, filters
//! lower-cased) into a canonical text before hashing, and the hash is XXH3, which is the
//! same in every process and release (unlike Rust's randomly seeded `DefaultHasher`).
//!
//! A generation is a key beside the entries (`gen:market`, `gen:stock:{TICKER}`,
//! `gen:history:{TICKER}`) holding a random token; every entry carries the token of its
//! generation at the time its load began, and is served only while that token is still the
//! one stored. A write makes a whole family stale by deleting one generation key, whatever
//! the number of entries in it (see [`crate::cache_aside`]).

use std::fmt::Write as _;

use chrono::NaiveDate;
use stockpile_domain::{Interval, ListQuery, MoverMetric, Period, Ticker};

/// The families of cached reads, for metrics and invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    List,
    Detail,
    History,
    Top,
    Leaderboard,
    /// One ticker's quote, an entry of a batch (`GET /api/quotes`).
    Quote,
}

impl KeyFamily {
    pub const ALL: [Self; 6] = [
        Self::List,
        Self::Detail,
        Self::History,
        Self::Top,
        Self::Leaderboard,
        Self::Quote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Detail => "detail",
            Self::History => "history",
            Self::Top => "top",
            Self::Leaderboard => "leaderboard",
            Self::Quote => "quote",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Where an entry lives, and the generation that must still be current for it to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryKey {
    /// The entry's key, exactly as API.md lists it.
    pub entry: String,
    /// The key of its generation.
    pub generation: String,
}

/// The generation of the entries every write makes stale: the list, top movers and the
/// leaderboard.
fn market_generation() -> String {
    "gen:market".to_owned()
}

/// `prefix` and the ticker: by concatenation rather than `format!`, since a hit builds two
/// such keys and the formatting machinery was a visible share of a small hit's cost.
fn ticker_key(prefix: &str, ticker: &Ticker) -> String {
    [prefix, ticker.as_str()].concat()
}

/// The generation of a ticker's detail and quote.
fn stock_generation(ticker: &Ticker) -> String {
    ticker_key("gen:stock:", ticker)
}

/// The generation of a ticker's history, whatever its range and interval.
fn history_generation(ticker: &Ticker) -> String {
    ticker_key("gen:history:", ticker)
}

fn hash_canonical(canonical: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()))
}

fn optional(text: Option<&str>) -> &str {
    text.unwrap_or("")
}

/// `stocks:list:{hash}`
pub fn list_key(query: &ListQuery) -> EntryKey {
    let canonical = format!(
        "q={}&sector={}&exchange={}&sort={}&order={}&page={}&page_size={}",
        optional(query.search.as_deref()),
        optional(query.sector.as_deref()),
        optional(query.exchange.as_deref()),
        query.sort.as_str(),
        query.order.as_str(),
        query.page.page,
        query.page.page_size,
    );
    EntryKey {
        entry: format!("stocks:list:{}", hash_canonical(&canonical)),
        generation: market_generation(),
    }
}

/// `stocks:detail:{TICKER}`
pub fn detail_key(ticker: &Ticker) -> EntryKey {
    EntryKey {
        entry: ticker_key("stocks:detail:", ticker),
        generation: stock_generation(ticker),
    }
}

/// `quotes:{TICKER}`: one ticker's part of a batch quote.
pub fn quote_key(ticker: &Ticker) -> EntryKey {
    EntryKey {
        entry: ticker_key("quotes:", ticker),
        generation: stock_generation(ticker),
    }
}

/// `stocks:history:{TICKER}:{hash}`
pub fn history_key(
    ticker: &Ticker,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    interval: Interval,
) -> EntryKey {
    let mut canonical = String::new();
    let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let _ = write!(
        canonical,
        "from={}&to={}&interval={}",
        date(from),
        date(to),
        interval.as_str()
    );
    EntryKey {
        entry: format!("stocks:history:{ticker}:{}", hash_canonical(&canonical)),
        generation: history_generation(ticker),
    }
}

/// `stocks:top:{hash}`
pub fn top_key(metric: MoverMetric, limit: u32) -> EntryKey {
    EntryKey {
        entry: format!(
            "stocks:top:{}",
            hash_canonical(&format!("metric={}&limit={limit}", metric.as_str()))
        ),
        generation: market_generation(),
    }
}

/// `leaderboard:top:{hash}`
pub fn leaderboard_key(period: Period, limit: u32, sector: Option<&str>) -> EntryKey {
    let canonical = format!(
        "period={}&limit={limit}&sector={}",
        period.as_str(),
        optional(sector)
    );
    EntryKey {
        entry: format!("leaderboard:top:{}", hash_canonical(&canonical)),
        generation: market_generation(),
    }
}

/// The generations a change of a stock's profile makes stale: its detail and quote, the
/// list, top movers and the leaderboard (API.md, "Writes").
pub fn stale_after_profile_change(ticker: &Ticker) -> Vec<String> {
    vec![stock_generation(ticker), market_generation()]
}

/// The generations a change of a stock's bars (or its removal) makes stale: those of a
/// profile change and its history.
pub fn stale_after_price_change(ticker: &Ticker) -> Vec<String> {
    let mut generations = stale_after_profile_change(ticker);
    generations.push(history_generation(ticker));
    generations
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockpile_domain::{PageRequest, SortField};

    #[test]
    fn defaults_and_explicit_values_share_a_key() {
        let implicit = ListQuery::default();
        let explicit = ListQuery {
            sort: SortField::Ticker,
            page: PageRequest {
                page: 1,
                page_size: 50,
            },
            ..ListQuery::default()
        };
        assert_eq!(list_key(&implicit), list_key(&explicit));
        let other = ListQuery {
            page: PageRequest {
                page: 2,
                page_size: 50,
            },
            ..ListQuery::default()
        };
        assert_ne!(list_key(&implicit), list_key(&other));
    }

    #[test]
    fn keys_are_stable_across_processes_and_releases() {
        // A fixed value: if this changes, every deployed cache entry silently becomes unreachable.
        assert_eq!(
            top_key(MoverMetric::Gainers, 10).entry,
            "stocks:top:c39769b38f7a8131"
        );
        assert!(list_key(&ListQuery::default())
            .entry
            .starts_with("stocks:list:"));
        assert_eq!(
            list_key(&ListQuery::default()).entry.len(),
            "stocks:list:".len() + 16
        );
    }

    #[test]
    fn keys_follow_the_contract() {
        let aapl = Ticker::parse("aapl").unwrap();
        assert_eq!(detail_key(&aapl).entry, "stocks:detail:AAPL");
        assert!(history_key(&aapl, None, None, Interval::Daily)
            .entry
            .starts_with("stocks:history:AAPL:"));
        assert!(leaderboard_key(Period::OneMonth, 10, None)
            .entry
            .starts_with("leaderboard:top:"));
        assert_eq!(quote_key(&aapl).entry, "quotes:AAPL");
    }

    /// API.md's "Makes stale" column, read through the generations: every entry a write
    /// makes stale belongs to a generation it revokes, and no other.
    #[test]
    fn writes_revoke_exactly_the_generations_of_what_they_make_stale() {
        let aapl = Ticker::parse("AAPL").unwrap();
        let msft = Ticker::parse("MSFT").unwrap();
        let market = [
            list_key(&ListQuery::default()),
            top_key(MoverMetric::Losers, 5),
            leaderboard_key(Period::OneYear, 10, Some("energy")),
        ];
        let history = history_key(&aapl, None, None, Interval::Weekly);
        let own = [detail_key(&aapl), quote_key(&aapl)];
        let others = [
            detail_key(&msft),
            quote_key(&msft),
            history_key(&msft, None, None, Interval::Daily),
        ];
        let revokes =
            |generations: &[String], key: &EntryKey| generations.contains(&key.generation);

        let profile = stale_after_profile_change(&aapl);
        let prices = stale_after_price_change(&aapl);
        for key in market.iter().chain(&own) {
            assert!(revokes(&profile, key), "a profile change leaves {key:?}");
            assert!(revokes(&prices, key), "a price change leaves {key:?}");
        }
        assert!(
            !revokes(&profile, &history),
            "a profile change is no new bar"
        );
        assert!(revokes(&prices, &history));
        for key in &others {
            assert!(!revokes(&prices, key), "AAPL's bars made {key:?} stale");
        }
    }
}
