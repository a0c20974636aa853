//! The cached reads of API.md: every one goes through the cache-aside layer, which computes
//! its body on a miss with the load given here.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::NaiveDate;
use futures::future::BoxFuture;
use futures::FutureExt;
use stockpile_domain::{
    aggregate_bars, HistoryRange, HistoryRangeError, Interval, ListQuery, MoverMetric, Percent,
    Period, Ticker,
};

use crate::cache_aside::CachedResponse;
use crate::cache_keys::{
    detail_key, history_key, leaderboard_key, list_key, quote_key, top_key, EntryKey, KeyFamily,
};
use crate::ports::{PeriodReturnRecord, StockRecord};
use crate::service::Stockpile;
use crate::views::{
    json_body, HistoryBar, Leaderboard, LeaderboardEntry, PriceHistory, StockDetail, StockList,
    StockSummary, TopMovers,
};
use crate::AppError;

/// A request for one stock's price history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub ticker: Ticker,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub interval: Interval,
}

/// The most tickers one batch of quotes may name.
pub const MAX_QUOTE_TICKERS: usize = 100;

/// The body of a ticker's quote entry when no stock has the ticker: absent stocks are cached
/// too, so asking again costs no database work.
const NO_STOCK: &[u8] = b"null";

/// The reads: each answer is a serialised JSON body, cached.
#[async_trait]
pub trait StockReads: Send + Sync {
    async fn list_stocks(&self, query: ListQuery) -> Result<CachedResponse, AppError>;
    async fn stock_detail(&self, ticker: Ticker) -> Result<CachedResponse, AppError>;
    async fn price_history(&self, request: HistoryRequest) -> Result<CachedResponse, AppError>;
    async fn top_movers(&self, metric: MoverMetric, limit: u32)
        -> Result<CachedResponse, AppError>;
    async fn leaderboard(
        &self,
        period: Period,
        limit: u32,
        sector: Option<String>,
    ) -> Result<CachedResponse, AppError>;
    /// The quotes of 1 to [`MAX_QUOTE_TICKERS`] distinct tickers, in their order, assembled
    /// from one cache entry per ticker.
    async fn quotes(&self, tickers: Vec<Ticker>) -> Result<CachedResponse, AppError>;
}

#[async_trait]
impl StockReads for Stockpile {
    async fn list_stocks(&self, query: ListQuery) -> Result<CachedResponse, AppError> {
        let repository = Arc::clone(&self.repository);
        let key = list_key(&query);
        self.cache_aside
            .read(KeyFamily::List, key, move || {
                async move {
                    let page = repository.list(&query).await?;
                    json_body(&StockList {
                        items: page.items.iter().map(StockSummary::from).collect(),
                        page: query.page.page,
                        page_size: query.page.page_size,
                        total: page.total,
                    })
                }
                .boxed()
            })
            .await
    }

    async fn stock_detail(&self, ticker: Ticker) -> Result<CachedResponse, AppError> {
        let repository = Arc::clone(&self.repository);
        self.cache_aside
            .read(KeyFamily::Detail, detail_key(&ticker), move || {
                async move {
                    let detail = repository
                        .detail(&ticker)
                        .await?
                        .ok_or_else(|| AppError::unknown_ticker(&ticker))?;
                    json_body(&StockDetail::from(&detail))
                }
                .boxed()
            })
            .await
    }

    async fn price_history(&self, request: HistoryRequest) -> Result<CachedResponse, AppError> {
        // Reject impossible ranges before any lookup, cached or not.
        HistoryRange::check_requested(request.from, request.to).map_err(range_error)?;
        let repository = Arc::clone(&self.repository);
        let key = history_key(&request.ticker, request.from, request.to, request.interval);
        self.cache_aside
            .read(KeyFamily::History, key, move || {
                async move {
                    let HistoryRequest {
                        ticker,
                        from,
                        to,
                        interval,
                    } = request;
                    let latest = repository.latest_bar_date(&ticker).await?;
                    let range = HistoryRange::resolve(from, to, latest).map_err(range_error)?;
                    let bars = match range {
                        Some(range) => repository.bars(&ticker, range.from, range.to).await?,
                        None => Vec::new(),
                    };
                    json_body(&PriceHistory {
                        ticker: ticker.to_string(),
                        interval: interval.as_str().to_owned(),
                        bars: aggregate_bars(&bars, interval)
                            .iter()
                            .map(HistoryBar::from)
                            .collect(),
                    })
                }
                .boxed()
            })
            .await
    }

    async fn top_movers(
        &self,
        metric: MoverMetric,
        limit: u32,
    ) -> Result<CachedResponse, AppError> {
        let repository = Arc::clone(&self.repository);
        self.cache_aside
            .read(KeyFamily::Top, top_key(metric, limit), move || {
                async move {
                    let as_of = repository.latest_trading_day().await?;
                    let items = match as_of {
                        Some(day) => repository.movers(metric, day, limit).await?,
                        None => Vec::new(),
                    };
                    json_body(&TopMovers {
                        metric: metric.as_str().to_owned(),
                        as_of,
                        items: items.iter().map(StockSummary::from).collect(),
                    })
                }
                .boxed()
            })
            .await
    }

    async fn leaderboard(
        &self,
        period: Period,
        limit: u32,
        sector: Option<String>,
    ) -> Result<CachedResponse, AppError> {
        let repository = Arc::clone(&self.repository);
        let key = leaderboard_key(period, limit, sector.as_deref());
        self.cache_aside
            .read(KeyFamily::Leaderboard, key, move || {
                async move {
                    let as_of = repository.latest_trading_day().await?;
                    let items = match as_of {
                        Some(day) => rank(
                            repository
                                .period_returns(day, period.start(day), sector)
                                .await?,
                            limit,
                        ),
                        None => Vec::new(),
                    };
                    json_body(&Leaderboard {
                        period: period.as_str().to_owned(),
                        as_of,
                        items,
                    })
                }
                .boxed()
            })
            .await
    }

    async fn quotes(&self, tickers: Vec<Ticker>) -> Result<CachedResponse, AppError> {
        check_quote_tickers(&tickers)?;
        // The tickers in their order name the answer: the same tickers, the same body.
        let mut answer_key = String::with_capacity(tickers.len() * 6);
        for ticker in &tickers {
            if !answer_key.is_empty() {
                answer_key.push(',');
            }
            answer_key.push_str(ticker.as_str());
        }
        self.cache_aside
            .read_assembled(
                KeyFamily::Quote,
                answer_key,
                || quote_requests(&tickers),
                self.quote_loader(),
                |bodies| assemble_quotes(&tickers, bodies),
            )
            .await
    }
}

/// Refuses a batch of quotes of no ticker or more than [`MAX_QUOTE_TICKERS`].
pub(crate) fn check_quote_tickers(tickers: &[Ticker]) -> Result<(), AppError> {
    if tickers.is_empty() || tickers.len() > MAX_QUOTE_TICKERS {
        return Err(AppError::invalid(
            "tickers",
            format!(
                "name 1 to {MAX_QUOTE_TICKERS} tickers, not {}",
                tickers.len()
            ),
        ));
    }
    Ok(())
}

impl Stockpile {
    /// The load of the quote entries of the tickers that missed, in one database query.
    fn quote_loader(
        &self,
    ) -> impl FnOnce(Vec<Ticker>) -> BoxFuture<'static, Result<Vec<Bytes>, AppError>> + Send {
        let repository = Arc::clone(&self.repository);
        move |tickers| {
            async move {
                let found = repository.summaries(&tickers).await?;
                quote_bodies(&tickers, found)
            }
            .boxed()
        }
    }

    /// Each ticker's `StockSummary` body as its quote entry holds it, in order; `None` for a
    /// ticker no stock has.
    pub(crate) async fn quote_summaries(
        &self,
        tickers: Vec<Ticker>,
    ) -> Result<Vec<Option<Bytes>>, AppError> {
        let mut summaries = Vec::new();
        self.cache_aside
            .read_many(
                KeyFamily::Quote,
                quote_requests(&tickers),
                self.quote_loader(),
                |bodies| {
                    summaries = bodies
                        .iter()
                        .map(|body| (body.as_ref() != NO_STOCK).then(|| body.clone()))
                        .collect();
                    // The joined body is not wanted: each entry is.
                    Ok(Bytes::new())
                },
            )
            .await?;
        Ok(summaries)
    }
}

/// Each ticker's quote entry key, with the ticker its load needs.
fn quote_requests(tickers: &[Ticker]) -> Vec<(EntryKey, Ticker)> {
    tickers.iter().map(|t| (quote_key(t), t.clone())).collect()
}

/// One entry body per ticker, in order: its summary, or [`NO_STOCK`].
fn quote_bodies(tickers: &[Ticker], found: Vec<StockRecord>) -> Result<Vec<Bytes>, AppError> {
    let mut by_ticker: HashMap<Ticker, StockRecord> =
        found.into_iter().map(|s| (s.ticker.clone(), s)).collect();
    tickers
        .iter()
        .map(|ticker| match by_ticker.remove(ticker) {
            Some(stock) => json_body(&StockSummary::from(&stock)),
            None => Ok(Bytes::from_static(NO_STOCK)),
        })
        .collect()
}

/// The [`crate::views::QuoteBatch`] body from the tickers' entry bodies, joined as they are
/// (a hit serialises nothing again).
fn assemble_quotes(tickers: &[Ticker], bodies: &[Bytes]) -> Result<Bytes, AppError> {
    let mut missing = Vec::new();
    let mut out = BytesMut::with_capacity(bodies.iter().map(Bytes::len).sum::<usize>() + 32);
    out.put_slice(b"{\"items\":[");
    let mut first = true;
    for (ticker, body) in tickers.iter().zip(bodies) {
        if body.as_ref() == NO_STOCK {
            missing.push(ticker.as_str());
            continue;
        }
        if !first {
            out.put_u8(b',');
        }
        first = false;
        out.put_slice(body);
    }
    out.put_slice(b"],\"missing\":");
    out.put_slice(&serde_json::to_vec(&missing)?);
    out.put_u8(b'}');
    Ok(out.freeze())
}

fn range_error(error: HistoryRangeError) -> AppError {
    let field = match error {
        HistoryRangeError::FromAfterTo => "from",
        HistoryRangeError::TooLong => "to",
    };
    AppError::invalid(field, error.to_string())
}

/// Best return first (by the rounded value the client sees), ties by ticker ascending.
fn rank(records: Vec<PeriodReturnRecord>, limit: u32) -> Vec<LeaderboardEntry> {
    let mut scored: Vec<(Percent, PeriodReturnRecord)> = records
        .into_iter()
        .map(|r| (Percent::change_between(r.start_price, r.end_price), r))
        .collect();
    scored.sort_by(|(a, ra), (b, rb)| b.cmp(a).then_with(|| ra.ticker.cmp(&rb.ticker)));
    scored
        .into_iter()
        .take(limit as usize)
        .zip(1..)
        .map(|((ret, r), rank)| LeaderboardEntry {
            rank,
            ticker: r.ticker.to_string(),
            name: r.name,
            sector: r.sector,
            start_price: r.start_price.to_f64(),
            end_price: r.end_price.to_f64(),
            return_percent: ret.to_f64(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockpile_domain::{Price, Ticker};

    fn record(ticker: &str, start: i64, end: i64) -> PeriodReturnRecord {
        PeriodReturnRecord {
            ticker: Ticker::parse(ticker).unwrap(),
            name: ticker.into(),
            sector: "Tech".into(),
            start_price: Price::from_units(start).unwrap(),
            end_price: Price::from_units(end).unwrap(),
        }
    }

    #[test]
    fn assembled_quotes_are_the_serialised_batch() {
        let summary = |ticker: &str| StockSummary {
            ticker: ticker.into(),
            name: format!("{ticker} Inc."),
            exchange: "NASDAQ".into(),
            sector: "Tech".into(),
            currency: "USD".into(),
            market_cap: None,
            price: Some(1.5),
            change: None,
            change_percent: None,
            volume: Some(3),
            as_of: None,
        };
        let tickers = ["AAPL", "ZZZZ", "MSFT", "QQQQ"].map(|t| Ticker::parse(t).unwrap());
        let bodies = [
            json_body(&summary("AAPL")).unwrap(),
            Bytes::from_static(NO_STOCK),
            json_body(&summary("MSFT")).unwrap(),
            Bytes::from_static(NO_STOCK),
        ];
        let expected = serde_json::to_vec(&crate::views::QuoteBatch {
            items: vec![summary("AAPL"), summary("MSFT")],
            missing: vec!["ZZZZ".into(), "QQQQ".into()],
        })
        .unwrap();
        assert_eq!(assemble_quotes(&tickers, &bodies).unwrap(), expected);
        let none = assemble_quotes(&tickers[1..2], &bodies[1..2]).unwrap();
        assert_eq!(none.as_ref(), br#"{"items":[],"missing":["ZZZZ"]}"#);
    }

    #[test]
    fn ranks_by_rounded_return_then_ticker() {
        let ranked = rank(
            vec![
                record("ZZZ", 10_000, 11_000),
                record("BBB", 10_000, 9_000),
                // 10.004 % rounds to 10.00 %, tying ZZZ: the ticker decides.
                record("AAA", 1_000_000, 1_100_040),
            ],
            10,
        );
        let order: Vec<_> = ranked
            .iter()
            .map(|e| (e.rank, e.ticker.as_str(), e.return_percent))
            .collect();
        assert_eq!(
            order,
            vec![(1, "AAA", 10.0), (2, "ZZZ", 10.0), (3, "BBB", -10.0)]
        );
        assert_eq!(rank(vec![record("A", 1, 2), record("B", 1, 3)], 1).len(), 1);
    }
}
