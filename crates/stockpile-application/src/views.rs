//! The JSON bodies of the reads, exactly as API.md names their fields.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use stockpile_domain::{average_volume, Price, PriceBar};

use crate::ports::{DetailRecord, StockRecord};

/// A stock and its latest quote; quote fields are `null` while the stock has no bars.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockSummary {
    #[cfg_attr(feature = "openapi", schema(example = "AAPL"))]
    pub ticker: String,
    #[cfg_attr(feature = "openapi", schema(example = "Apple Inc."))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(example = "NASDAQ"))]
    pub exchange: String,
    #[cfg_attr(feature = "openapi", schema(example = "Information Technology"))]
    pub sector: String,
    #[cfg_attr(feature = "openapi", schema(example = "USD"))]
    pub currency: String,
    pub market_cap: Option<i64>,
    /// The close of the latest bar.
    pub price: Option<f64>,
    /// `price − previous_close`, rounded to 4 decimals.
    pub change: Option<f64>,
    /// The change as a percentage of the previous close, rounded to 2 decimals.
    pub change_percent: Option<f64>,
    pub volume: Option<i64>,
    /// The date of the latest bar.
    pub as_of: Option<NaiveDate>,
}

/// A stock's summary with its latest bar and trailing statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockDetail {
    #[serde(flatten)]
    pub summary: StockSummary,
    pub industry: Option<String>,
    pub previous_close: Option<f64>,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    /// Highest high of the 365 calendar days ending at the latest bar.
    pub fifty_two_week_high: Option<f64>,
    /// Lowest low of the 365 calendar days ending at the latest bar.
    pub fifty_two_week_low: Option<f64>,
    /// Mean volume of the last 30 bars, rounded to an integer.
    pub average_volume_30d: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

/// One page of the stock list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockList {
    pub items: Vec<StockSummary>,
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

/// The quotes of a batch of tickers: one item per ticker that has a stock, in the order the
/// tickers were first given; those with none in `missing`, in the same order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteBatch {
    pub items: Vec<StockSummary>,
    #[cfg_attr(feature = "openapi", schema(example = json!(["ZZZZ"])))]
    pub missing: Vec<String>,
}

/// The data of a live-quote stream's `removed` event: no stock has the ticker any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemovedTicker {
    #[cfg_attr(feature = "openapi", schema(example = "AAPL"))]
    pub ticker: String,
}

/// One bar of a price history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryBar {
    pub date: NaiveDate,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: i64,
}

/// A stock's bars in a range, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PriceHistory {
    pub ticker: String,
    #[cfg_attr(feature = "openapi", schema(example = "1d"))]
    pub interval: String,
    pub bars: Vec<HistoryBar>,
}

/// The day's top movers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopMovers {
    #[cfg_attr(feature = "openapi", schema(example = "gainers"))]
    pub metric: String,
    pub as_of: Option<NaiveDate>,
    pub items: Vec<StockSummary>,
}

/// One place of a performance leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaderboardEntry {
    pub rank: u32,
    pub ticker: String,
    pub name: String,
    pub sector: String,
    pub start_price: f64,
    pub end_price: f64,
    /// `(end / start − 1) × 100`, rounded to 2 decimals.
    pub return_percent: f64,
}

/// Total returns over a period, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Leaderboard {
    #[cfg_attr(feature = "openapi", schema(example = "1m"))]
    pub period: String,
    pub as_of: Option<NaiveDate>,
    pub items: Vec<LeaderboardEntry>,
}

impl From<&StockRecord> for StockSummary {
    fn from(stock: &StockRecord) -> Self {
        let quote = stock.quote.as_ref();
        Self {
            ticker: stock.ticker.to_string(),
            name: stock.name.clone(),
            exchange: stock.exchange.clone(),
            sector: stock.sector.clone(),
            currency: stock.currency.clone(),
            market_cap: stock.market_cap,
            price: quote.map(|q| q.price.to_f64()),
            change: quote.and_then(|q| q.change()),
            change_percent: quote.and_then(|q| q.change_percent).map(|p| p.to_f64()),
            volume: quote.map(|q| q.volume),
            as_of: quote.map(|q| q.as_of),
        }
    }
}

impl From<&DetailRecord> for StockDetail {
    fn from(detail: &DetailRecord) -> Self {
        let stock = &detail.stock;
        let quote = stock.quote.as_ref();
        let (volume_sum, bar_count) = detail.recent_volume;
        Self {
            summary: StockSummary::from(stock),
            industry: stock.industry.clone(),
            previous_close: quote.and_then(|q| q.previous_close).map(Price::to_f64),
            open: quote.map(|q| q.open.to_f64()),
            high: quote.map(|q| q.high.to_f64()),
            low: quote.map(|q| q.low.to_f64()),
            fifty_two_week_high: detail.fifty_two_week_high.map(Price::to_f64),
            fifty_two_week_low: detail.fifty_two_week_low.map(Price::to_f64),
            average_volume_30d: average_volume(volume_sum, bar_count),
            updated_at: stock.updated_at,
        }
    }
}

impl From<&PriceBar> for HistoryBar {
    fn from(bar: &PriceBar) -> Self {
        Self {
            date: bar.date(),
            open: bar.open().to_f64(),
            high: bar.high().to_f64(),
            low: bar.low().to_f64(),
            close: bar.close().to_f64(),
            volume: bar.volume(),
        }
    }
}

/// The JSON body of an answer, serialised once: it is what the cache keeps.
pub(crate) fn json_body<T: Serialize>(view: &T) -> Result<bytes::Bytes, crate::AppError> {
    Ok(bytes::Bytes::from(serde_json::to_vec(view)?))
}
