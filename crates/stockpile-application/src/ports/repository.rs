use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use stockpile_domain::{ListQuery, MoverMetric, Price, PriceBar, Quote, StockProfile, Ticker};

/// A stock with its profile and, once it has bars, its latest quote.
#[derive(Debug, Clone, PartialEq)]
pub struct StockRecord {
    pub ticker: Ticker,
    pub name: String,
    pub exchange: String,
    pub sector: String,
    pub industry: Option<String>,
    pub currency: String,
    pub market_cap: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub quote: Option<Quote>,
}

/// A stock with the statistics of its detail page.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailRecord {
    pub stock: StockRecord,
    /// Highest high of the bars in the 365 days ending at the latest bar.
    pub fifty_two_week_high: Option<Price>,
    /// Lowest low of the bars in the 365 days ending at the latest bar.
    pub fifty_two_week_low: Option<Price>,
    /// Sum of the volumes of the last 30 bars and how many bars that was.
    pub recent_volume: (i64, i64),
}

/// One page of the stock list and how many stocks match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct StockPage {
    pub items: Vec<StockRecord>,
    pub total: u64,
}

/// A stock's close at a period's start and on the latest trading day.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodReturnRecord {
    pub ticker: Ticker,
    pub name: String,
    pub sector: String,
    pub start_price: Price,
    pub end_price: Price,
}

/// Whether an upsert made a new stock or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Created,
    Updated,
}

/// Why the repository could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("{text} {0}", text = crate::NO_STOCK_HAS_THE_TICKER)]
    NotFound(Ticker),
    /// The database did not answer (down, unreachable, pool exhausted, timed out).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

/// A store of stocks and their daily bars.
///
/// Text filters arrive normalised to lower case and match case-insensitively.
///
/// # Errors
/// - MUST return [`RepositoryError::NotFound`] when a write names a ticker no stock has.
/// - MUST return [`RepositoryError::Unavailable`] when the database cannot be reached, so that
///   callers can answer 503 and serve stale entries.
/// - Every write is atomic: on any error nothing of it is stored.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StockRepository: Send + Sync {
    /// One page of stocks matching the query, ordered by its sort with `null`s last and ties by
    /// ticker ascending, and the total number of matches.
    async fn list(&self, query: &ListQuery) -> Result<StockPage, RepositoryError>;

    /// A stock with its quote and detail statistics; `None` when no stock has the ticker.
    async fn detail(&self, ticker: &Ticker) -> Result<Option<DetailRecord>, RepositoryError>;

    /// The stocks among `tickers`, with their quotes, in one query; tickers no stock has are
    /// left out. In no particular order.
    async fn summaries(&self, tickers: &[Ticker]) -> Result<Vec<StockRecord>, RepositoryError>;

    /// The date of the stock's newest bar; `NotFound` when no stock has the ticker.
    async fn latest_bar_date(&self, ticker: &Ticker) -> Result<Option<NaiveDate>, RepositoryError>;

    /// The stock's daily bars with `from ≤ date ≤ to`, oldest first; `NotFound` for no stock.
    async fn bars(
        &self,
        ticker: &Ticker,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<PriceBar>, RepositoryError>;

    /// The newest bar date of any stock; `None` when there are no bars at all.
    async fn latest_trading_day(&self) -> Result<Option<NaiveDate>, RepositoryError>;

    /// Stocks whose latest bar is on `as_of`, ranked by the metric (gainers: positive
    /// `change_percent` largest first; losers: negative smallest first; active: `volume`
    /// descending), ties by ticker ascending, at most `limit`.
    async fn movers(
        &self,
        metric: MoverMetric,
        as_of: NaiveDate,
        limit: u32,
    ) -> Result<Vec<StockRecord>, RepositoryError>;

    /// For every stock with a bar on `as_of` (and in `sector`, when given), its close on
    /// `as_of` and its last close on or before `start`; stocks without the latter are left out.
    async fn period_returns(
        &self,
        as_of: NaiveDate,
        start: NaiveDate,
        sector: Option<String>,
    ) -> Result<Vec<PeriodReturnRecord>, RepositoryError>;

    /// Creates the stock or replaces its profile.
    async fn upsert_stock(
        &self,
        ticker: &Ticker,
        profile: &StockProfile,
    ) -> Result<UpsertOutcome, RepositoryError>;

    /// Stores the bars, replacing any of the same date, all or nothing; returns how many.
    async fn upsert_bars(&self, ticker: &Ticker, bars: &[PriceBar])
        -> Result<u64, RepositoryError>;

    /// Removes the stock and all its bars.
    async fn delete_stock(&self, ticker: &Ticker) -> Result<(), RepositoryError>;

    /// How many stocks there are (to decide whether an empty database needs seeding).
    async fn count_stocks(&self) -> Result<u64, RepositoryError>;

    /// A cheap round trip to check that the database answers.
    async fn ping(&self) -> Result<(), RepositoryError>;
}
