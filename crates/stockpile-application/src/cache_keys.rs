//! The cache key of every read, relative to the configured prefix, and the patterns each
//! write makes stale.
//!
//! Equivalent requests share one key: parameters are normalised (defaults applied, filters
//! lower-cased) into a canonical text before hashing, and the hash is XXH3, which is the
//! same in every process and release (unlike Rust's randomly seeded `DefaultHasher`).

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

fn hash_canonical(canonical: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()))
}

fn optional(text: Option<&str>) -> &str {
    text.unwrap_or("")
}

/// `stocks:list:{hash}`
pub fn list_key(query: &ListQuery) -> String {
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
    format!("stocks:list:{}", hash_canonical(&canonical))
}

/// `stocks:detail:{TICKER}`
pub fn detail_key(ticker: &Ticker) -> String {
    format!("stocks:detail:{ticker}")
}

/// `quotes:{TICKER}`: one ticker's part of a batch quote.
pub fn quote_key(ticker: &Ticker) -> String {
    format!("quotes:{ticker}")
}

/// `stocks:history:{TICKER}:{hash}`
pub fn history_key(
    ticker: &Ticker,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    interval: Interval,
) -> String {
    let mut canonical = String::new();
    let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let _ = write!(
        canonical,
        "from={}&to={}&interval={}",
        date(from),
        date(to),
        interval.as_str()
    );
    format!("stocks:history:{ticker}:{}", hash_canonical(&canonical))
}

/// `stocks:top:{hash}`
pub fn top_key(metric: MoverMetric, limit: u32) -> String {
    format!(
        "stocks:top:{}",
        hash_canonical(&format!("metric={}&limit={limit}", metric.as_str()))
    )
}

/// `leaderboard:top:{hash}`
pub fn leaderboard_key(period: Period, limit: u32, sector: Option<&str>) -> String {
    let canonical = format!(
        "period={}&limit={limit}&sector={}",
        period.as_str(),
        optional(sector)
    );
    format!("leaderboard:top:{}", hash_canonical(&canonical))
}

/// The patterns a change of a stock's profile makes stale.
pub fn stale_after_profile_change(ticker: &Ticker) -> Vec<String> {
    vec![
        detail_key(ticker),
        quote_key(ticker),
        "stocks:list:*".to_owned(),
        "stocks:top:*".to_owned(),
        "leaderboard:top:*".to_owned(),
    ]
}

/// The patterns a change of a stock's bars (or its removal) makes stale.
pub fn stale_after_price_change(ticker: &Ticker) -> Vec<String> {
    let mut patterns = stale_after_profile_change(ticker);
    patterns.push(format!("stocks:history:{ticker}:*"));
    patterns
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
            top_key(MoverMetric::Gainers, 10),
            "stocks:top:c39769b38f7a8131"
        );
        assert!(list_key(&ListQuery::default()).starts_with("stocks:list:"));
        assert_eq!(
            list_key(&ListQuery::default()).len(),
            "stocks:list:".len() + 16
        );
    }

    #[test]
    fn keys_follow_the_contract() {
        let aapl = Ticker::parse("aapl").unwrap();
        assert_eq!(detail_key(&aapl), "stocks:detail:AAPL");
        assert!(history_key(&aapl, None, None, Interval::Daily).starts_with("stocks:history:AAPL:"));
        assert!(leaderboard_key(Period::OneMonth, 10, None).starts_with("leaderboard:top:"));
        let patterns = stale_after_price_change(&aapl);
        assert!(patterns.contains(&"stocks:history:AAPL:*".to_owned()));
        assert_eq!(quote_key(&aapl), "quotes:AAPL");
        for patterns in [stale_after_profile_change(&aapl), patterns] {
            assert!(patterns.contains(&"quotes:AAPL".to_owned()));
            assert!(!patterns
                .iter()
                .any(|p| p.starts_with("quotes:") && p != "quotes:AAPL"));
        }
        assert!(!stale_after_profile_change(&aapl)
            .iter()
            .any(|p| p.starts_with("stocks:history")));
    }
}
