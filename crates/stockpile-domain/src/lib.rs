//! Stockpile's domain: tickers, stocks, daily price bars and the rules that turn them into
//! quotes, history, movers and leaderboards.
//!
//! Invariants: every value here can only exist in a valid state (a [`Ticker`] is upper case and
//! well formed, a [`PriceBar`] has `low ≤ open, close ≤ high` and positive prices), and nothing
//! in this crate performs I/O or knows about HTTP, SQL or caches.

mod bar;
mod date;
mod decimal;
mod history;
mod interval;
mod market;
mod period;
mod quote;
mod stock;
mod ticker;

pub use bar::{BarError, PriceBar, PriceField, MAX_BARS_PER_UPLOAD};
pub use date::{parse_iso_date, DateError};
pub use decimal::{round_ratio_half_away, Percent, Price, PriceError};
pub use history::{HistoryRange, HistoryRangeError, MAX_HISTORY_SPAN_DAYS};
pub use interval::{aggregate_bars, Interval};
pub use market::{
    ListQuery, MoverMetric, PageRequest, ParseEnumError, SortField, SortOrder, MAX_LIMIT, MAX_PAGE,
    MAX_PAGE_SIZE, MAX_QUERY_LEN,
};
pub use period::Period;
pub use quote::{average_volume, Quote};
pub use stock::{Currency, StockProfile, StockProfileError, TextLimit};
pub use ticker::{Ticker, TickerError};

/// The trailing window of "52 weeks": the dates `d` with `latest − 365 < d ≤ latest`.
pub const FIFTY_TWO_WEEK_DAYS: i64 = 365;

/// How many of a stock's latest bars make up its average volume.
pub const AVERAGE_VOLUME_BARS: u64 = 30;
