//! Small builders for stocks, bars and queries.

use chrono::NaiveDate;
use stockpile_application::ports::StockRepository;
use stockpile_domain::{
    ListQuery, PageRequest, Price, PriceBar, SortField, SortOrder, StockProfile, Ticker,
};

pub fn ticker(text: &str) -> Ticker {
    Ticker::parse(text).unwrap()
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn price(units: i64) -> Price {
    Price::from_units(units).unwrap()
}

pub fn profile(name: &str, sector: &str, exchange: &str, market_cap: Option<i64>) -> StockProfile {
    StockProfile::new(
        name.into(),
        exchange.into(),
        sector.into(),
        None,
        None,
        market_cap,
    )
    .unwrap()
}

/// A bar whose open, high, low and close are all `close` (in ten-thousandths).
pub fn flat_bar(day: NaiveDate, close: i64, volume: i64) -> PriceBar {
    ohlc(day, close, close, close, close, volume)
}

pub use stockpile_test_support::bar_of_units as ohlc;

/// Creates a stock in sector `Tech` on `NASDAQ`.
pub async fn add_stock(repo: &dyn StockRepository, symbol: &str, name: &str, cap: Option<i64>) {
    add_stock_in(repo, symbol, name, "Tech", "NASDAQ", cap).await;
}

pub async fn add_stock_in(
    repo: &dyn StockRepository,
    symbol: &str,
    name: &str,
    sector: &str,
    exchange: &str,
    cap: Option<i64>,
) {
    repo.upsert_stock(&ticker(symbol), &profile(name, sector, exchange, cap))
        .await
        .unwrap();
}

/// Uploads flat bars `(date, close, volume)`.
pub async fn add_closes(repo: &dyn StockRepository, symbol: &str, bars: &[(NaiveDate, i64, i64)]) {
    let bars: Vec<PriceBar> = bars
        .iter()
        .map(|&(day, close, volume)| flat_bar(day, close, volume))
        .collect();
    repo.upsert_bars(&ticker(symbol), &bars).await.unwrap();
}

pub fn list_query(sort: SortField, order: SortOrder) -> ListQuery {
    ListQuery {
        sort,
        order,
        page: PageRequest {
            page: 1,
            page_size: 200,
        },
        ..ListQuery::default()
    }
}

pub fn tickers<'a>(items: impl IntoIterator<Item = &'a Ticker>) -> Vec<String> {
    items.into_iter().map(Ticker::to_string).collect()
}

/// The period returns as (ticker, start, end) in price units, sorted.
pub async fn sorted_returns(
    repo: &dyn StockRepository,
    as_of: NaiveDate,
    start: NaiveDate,
    sector: Option<&str>,
) -> Vec<(String, i64, i64)> {
    let mut got: Vec<_> = repo
        .period_returns(as_of, start, sector.map(str::to_owned))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.ticker.to_string(),
                r.start_price.units(),
                r.end_price.units(),
            )
        })
        .collect();
    got.sort();
    got
}
