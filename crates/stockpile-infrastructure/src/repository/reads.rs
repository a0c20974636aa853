//! The read queries. Filtering, sorting, paging and aggregation all happen in the database;
//! nothing here loads more rows than it returns.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sea_orm::sea_query::{
    Alias, Asterisk, Cond, Expr, Func, LikeExpr, NullOrdering, Order, Query, SelectStatement,
    SimpleExpr,
};
use sea_orm::{
    ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, StatementBuilder,
};
use stockpile_application::ports::{
    DetailRecord, PeriodReturnRecord, RepositoryError, StockPage, StockRecord,
};
use stockpile_domain::{
    ListQuery, MoverMetric, Percent, Price, PriceBar, Quote, SortField, SortOrder, Ticker,
    AVERAGE_VOLUME_BARS, FIFTY_TWO_WEEK_DAYS,
};

use super::entities::{price_bar, stock, stock_quote};
use super::errors::db_error;

/// A stock joined with its quote; the quote's columns are `NULL` while it has no bars.
#[derive(Debug, FromQueryResult)]
struct StockRow {
    id: i64,
    ticker: String,
    name: String,
    exchange: String,
    sector: String,
    industry: Option<String>,
    currency: String,
    market_cap: Option<i64>,
    updated_at: DateTime<Utc>,
    quote_date: Option<NaiveDate>,
    price: Option<i64>,
    open: Option<i64>,
    high: Option<i64>,
    low: Option<i64>,
    volume: Option<i64>,
    previous_close: Option<i64>,
    change_units: Option<i64>,
    change_percent_hundredths: Option<i64>,
}

/// `SELECT stocks.*, quote columns FROM stocks LEFT JOIN stock_quotes`.
fn stocks_with_quotes() -> SelectStatement {
    Query::select()
        .columns(
            [
                stock::Column::Id,
                stock::Column::Ticker,
                stock::Column::Name,
                stock::Column::Exchange,
                stock::Column::Sector,
                stock::Column::Industry,
                stock::Column::Currency,
                stock::Column::MarketCap,
                stock::Column::UpdatedAt,
            ]
            .map(|c| (stock::Entity, c)),
        )
        .expr_as(
            Expr::col((stock_quote::Entity, stock_quote::Column::Date)),
            Alias::new("quote_date"),
        )
        .columns(stock_quote::QUOTE_VALUES.map(|c| (stock_quote::Entity, c)))
        .from(stock::Entity)
        .left_join(
            stock_quote::Entity,
            Expr::col((stock_quote::Entity, stock_quote::Column::StockId))
                .equals((stock::Entity, stock::Column::Id)),
        )
        .to_owned()
}

async fn fetch_stocks<C: ConnectionTrait>(
    db: &C,
    select: &SelectStatement,
) -> Result<Vec<StockRow>, RepositoryError> {
    StockRow::find_by_statement(StatementBuilder::build(select, &db.get_database_backend()))
        .all(db)
        .await
        .map_err(db_error)
}

fn corrupt(what: &str) -> RepositoryError {
    RepositoryError::Internal(format!("the database holds an invalid {what}"))
}

fn price(units: i64) -> Result<Price, RepositoryError> {
    Price::from_units(units).map_err(|_| corrupt("price"))
}

pub(super) fn bar_from_model(model: &price_bar::Model) -> Result<PriceBar, RepositoryError> {
    PriceBar::new(
        model.date,
        price(model.open)?,
        price(model.high)?,
        price(model.low)?,
        price(model.close)?,
        model.volume,
    )
    .map_err(|_| corrupt("bar"))
}

impl StockRow {
    fn into_record(self) -> Result<StockRecord, RepositoryError> {
        let quote = match (
            self.quote_date,
            self.price,
            self.open,
            self.high,
            self.low,
            self.volume,
        ) {
            (Some(as_of), Some(close), Some(open), Some(high), Some(low), Some(volume)) => {
                Some(Quote {
                    as_of,
                    price: price(close)?,
                    open: price(open)?,
                    high: price(high)?,
                    low: price(low)?,
                    volume,
                    previous_close: self.previous_close.map(price).transpose()?,
                    change_units: self.change_units,
                    change_percent: self.change_percent_hundredths.map(Percent::from_hundredths),
                })
            }
            _ => None,
        };
        Ok(StockRecord {
            ticker: Ticker::parse(&self.ticker).map_err(|_| corrupt("ticker"))?,
            name: self.name,
            exchange: self.exchange,
            sector: self.sector,
            industry: self.industry,
            currency: self.currency,
            market_cap: self.market_cap,
            updated_at: self.updated_at,
            quote,
        })
    }
}

/// `LOWER(column)`, the case-insensitive form of a text column.
fn lower(column: impl Into<SimpleExpr>) -> SimpleExpr {
    Func::lower(column).into()
}

/// Escapes LIKE's wildcards so that the search text matches literally (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// The list's filters; the query's texts arrive lower case.
fn list_filter(query: &ListQuery) -> Cond {
    let mut filter = Cond::all();
    if let Some(search) = &query.search {
        let pattern = like_literal(search);
        filter = filter.add(
            Cond::any()
                .add(
                    Expr::expr(lower(Expr::col((stock::Entity, stock::Column::Ticker))))
                        .like(LikeExpr::new(pattern.clone()).escape('\\')),
                )
                .add(
                    Expr::expr(lower(Expr::col((stock::Entity, stock::Column::Name))))
                        .like(LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    if let Some(sector) = &query.sector {
        filter = filter.add(
            Expr::expr(lower(Expr::col((stock::Entity, stock::Column::Sector))))
                .eq(sector.as_str()),
        );
    }
    if let Some(exchange) = &query.exchange {
        filter = filter.add(
            Expr::expr(lower(Expr::col((stock::Entity, stock::Column::Exchange))))
                .eq(exchange.as_str()),
        );
    }
    filter
}

pub(super) async fn list<C: ConnectionTrait>(
    db: &C,
    query: &ListQuery,
) -> Result<StockPage, RepositoryError> {
    let key: SimpleExpr = match query.sort {
        SortField::Ticker => Expr::col((stock::Entity, stock::Column::Ticker)).into(),
        SortField::Name => lower(Expr::col((stock::Entity, stock::Column::Name))),
        SortField::MarketCap => Expr::col((stock::Entity, stock::Column::MarketCap)).into(),
        SortField::Price => Expr::col((stock_quote::Entity, stock_quote::Column::Price)).into(),
        SortField::ChangePercent => Expr::col((
            stock_quote::Entity,
            stock_quote::Column::ChangePercentHundredths,
        ))
        .into(),
        SortField::Volume => Expr::col((stock_quote::Entity, stock_quote::Column::Volume)).into(),
    };
    let order = match query.order {
        SortOrder::Asc => Order::Asc,
        SortOrder::Desc => Order::Desc,
    };
    let mut select = stocks_with_quotes();
    select
        .cond_where(list_filter(query))
        .order_by_expr_with_nulls(key, order, NullOrdering::Last)
        .order_by((stock::Entity, stock::Column::Ticker), Order::Asc)
        .limit(u64::from(query.page.page_size))
        .offset(query.page.offset());
    let items = fetch_stocks(db, &select)
        .await?
        .into_iter()
        .map(StockRow::into_record)
        .collect::<Result<_, _>>()?;
    // The filters touch only `stocks`, so the count needs no join.
    let total = stock::Entity::find()
        .filter(list_filter(query))
        .count(db)
        .await
        .map_err(db_error)?;
    Ok(StockPage { items, total })
}

#[derive(Debug, FromQueryResult)]
struct WindowRow {
    high: Option<i64>,
    low: Option<i64>,
}

#[derive(Debug, FromQueryResult)]
struct VolumeRow {
    volume_sum: i64,
    bar_count: i64,
}

/// The stocks among `tickers` with their quotes, in one query.
pub(super) async fn summaries<C: ConnectionTrait>(
    db: &C,
    tickers: &[Ticker],
) -> Result<Vec<StockRecord>, RepositoryError> {
    if tickers.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = stocks_with_quotes();
    select.and_where(
        Expr::col((stock::Entity, stock::Column::Ticker)).is_in(tickers.iter().map(Ticker::as_str)),
    );
    fetch_stocks(db, &select)
        .await?
        .into_iter()
        .map(StockRow::into_record)
        .collect()
}

pub(super) async fn detail<C: ConnectionTrait>(
    db: &C,
    ticker: &Ticker,
) -> Result<Option<DetailRecord>, RepositoryError> {
    let mut select = stocks_with_quotes();
    select.and_where(Expr::col((stock::Entity, stock::Column::Ticker)).eq(ticker.as_str()));
    let Some(row) = fetch_stocks(db, &select).await?.into_iter().next() else {
        return Ok(None);
    };
    let stock_id = row.id;
    let stock = row.into_record()?;
    let Some(latest) = stock.quote.map(|q| q.as_of) else {
        return Ok(Some(DetailRecord {
            stock,
            fifty_two_week_high: None,
            fifty_two_week_low: None,
            recent_volume: (0, 0),
        }));
    };
    let backend = db.get_database_backend();

    // The 365 calendar days ending at the latest bar: latest − 365 < date ≤ latest. The bound
    // is computed here rather than in SQL, where date arithmetic differs between backends.
    let window_start = latest
        .checked_sub_days(Days::new(FIFTY_TWO_WEEK_DAYS.unsigned_abs()))
        .unwrap_or(NaiveDate::MIN);
    let window = Query::select()
        .expr_as(Expr::col(price_bar::Column::High).max(), Alias::new("high"))
        .expr_as(Expr::col(price_bar::Column::Low).min(), Alias::new("low"))
        .from(price_bar::Entity)
        .and_where(Expr::col(price_bar::Column::StockId).eq(stock_id))
        .and_where(Expr::col(price_bar::Column::Date).gt(window_start))
        .and_where(Expr::col(price_bar::Column::Date).lte(latest))
        .to_owned();
    let window = WindowRow::find_by_statement(backend.build(&window))
        .one(db)
        .await
        .map_err(db_error)?;

    let last_bars = Query::select()
        .column(price_bar::Column::Volume)
        .from(price_bar::Entity)
        .and_where(Expr::col(price_bar::Column::StockId).eq(stock_id))
        .order_by(price_bar::Column::Date, Order::Desc)
        .limit(AVERAGE_VOLUME_BARS)
        .to_owned();
    let volumes = Query::select()
        // PostgreSQL sums BIGINTs into NUMERIC: cast back so both backends answer an integer.
        .expr_as(
            Func::cast_as(
                Func::coalesce([
                    Expr::col(price_bar::Column::Volume).sum(),
                    Expr::val(0_i64).into(),
                ]),
                Alias::new("BIGINT"),
            ),
            Alias::new("volume_sum"),
        )
        .expr_as(Expr::col(Asterisk).count(), Alias::new("bar_count"))
        .from_subquery(last_bars, Alias::new("last_bars"))
        .to_owned();
    let volumes = VolumeRow::find_by_statement(backend.build(&volumes))
        .one(db)
        .await
        .map_err(db_error)?;

    Ok(Some(DetailRecord {
        stock,
        fifty_two_week_high: window
            .as_ref()
            .and_then(|w| w.high)
            .map(price)
            .transpose()?,
        fifty_two_week_low: window.as_ref().and_then(|w| w.low).map(price).transpose()?,
        recent_volume: volumes.map_or((0, 0), |v| (v.volume_sum, v.bar_count)),
    }))
}

#[derive(Debug, FromQueryResult)]
struct LatestDayRow {
    latest: Option<NaiveDate>,
}

pub(super) async fn latest_trading_day<C: ConnectionTrait>(
    db: &C,
) -> Result<Option<NaiveDate>, RepositoryError> {
    // Every stock's quote carries its newest bar date, so the newest quote is the newest bar.
    let select = Query::select()
        .expr_as(
            Expr::col(stock_quote::Column::Date).max(),
            Alias::new("latest"),
        )
        .from(stock_quote::Entity)
        .to_owned();
    Ok(
        LatestDayRow::find_by_statement(db.get_database_backend().build(&select))
            .one(db)
            .await
            .map_err(db_error)?
            .and_then(|row| row.latest),
    )
}

pub(super) async fn movers<C: ConnectionTrait>(
    db: &C,
    metric: MoverMetric,
    as_of: NaiveDate,
    limit: u32,
) -> Result<Vec<StockRecord>, RepositoryError> {
    let change = Expr::col((
        stock_quote::Entity,
        stock_quote::Column::ChangePercentHundredths,
    ));
    let mut select = stocks_with_quotes();
    select.and_where(Expr::col((stock_quote::Entity, stock_quote::Column::Date)).eq(as_of));
    // The cut uses the stored, rounded hundredths: exactly the value a client sees.
    match metric {
        MoverMetric::Gainers => select
            .and_where(change.clone().gt(0))
            .order_by_expr(change.into(), Order::Desc),
        MoverMetric::Losers => select
            .and_where(change.clone().lt(0))
            .order_by_expr(change.into(), Order::Asc),
        MoverMetric::Active => select.order_by(
            (stock_quote::Entity, stock_quote::Column::Volume),
            Order::Desc,
        ),
    };
    select
        .order_by((stock::Entity, stock::Column::Ticker), Order::Asc)
        .limit(u64::from(limit));
    fetch_stocks(db, &select)
        .await?
        .into_iter()
        .map(StockRow::into_record)
        .collect()
}

#[derive(Debug, FromQueryResult)]
struct PeriodRow {
    ticker: String,
    name: String,
    sector: String,
    start_units: Option<i64>,
    end_units: i64,
}

pub(super) async fn period_returns<C: ConnectionTrait>(
    db: &C,
    as_of: NaiveDate,
    start: NaiveDate,
    sector: Option<&str>,
) -> Result<Vec<PeriodReturnRecord>, RepositoryError> {
    let bars = Alias::new("start_bar");
    // The last close on or before `start`: one descending probe of the (stock_id, date) key.
    let start_close = Query::select()
        .column((bars.clone(), price_bar::Column::Close))
        .from_as(price_bar::Entity, bars.clone())
        .and_where(
            Expr::col((bars.clone(), price_bar::Column::StockId))
                .equals((stock::Entity, stock::Column::Id)),
        )
        .and_where(Expr::col((bars.clone(), price_bar::Column::Date)).lte(start))
        .order_by((bars, price_bar::Column::Date), Order::Desc)
        .limit(1)
        .to_owned();
    let mut select = Query::select()
        .columns(
            [
                stock::Column::Ticker,
                stock::Column::Name,
                stock::Column::Sector,
            ]
            .map(|c| (stock::Entity, c)),
        )
        .expr_as(
            SimpleExpr::SubQuery(None, Box::new(start_close.into_sub_query_statement())),
            Alias::new("start_units"),
        )
        .expr_as(
            Expr::col((stock_quote::Entity, stock_quote::Column::Price)),
            Alias::new("end_units"),
        )
        .from(stock::Entity)
        .inner_join(
            stock_quote::Entity,
            Expr::col((stock_quote::Entity, stock_quote::Column::StockId))
                .equals((stock::Entity, stock::Column::Id)),
        )
        // A quote dated `as_of` is a bar on `as_of`, and its price is that bar's close.
        .and_where(Expr::col((stock_quote::Entity, stock_quote::Column::Date)).eq(as_of))
        .order_by((stock::Entity, stock::Column::Ticker), Order::Asc)
        .to_owned();
    if let Some(sector) = sector {
        select.and_where(
            Expr::expr(lower(Expr::col((stock::Entity, stock::Column::Sector))))
                .eq(sector.to_lowercase()),
        );
    }
    let rows = PeriodRow::find_by_statement(db.get_database_backend().build(&select))
        .all(db)
        .await
        .map_err(db_error)?;
    rows.into_iter()
        // A stock with no bar that old has no start price and takes no part.
        .filter_map(|row| row.start_units.map(|start_units| (row, start_units)))
        .map(|(row, start_units)| {
            Ok(PeriodReturnRecord {
                ticker: Ticker::parse(&row.ticker).map_err(|_| corrupt("ticker"))?,
                name: row.name,
                sector: row.sector,
                start_price: price(start_units)?,
                end_price: price(row.end_units)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_match_literally() {
        assert_eq!(like_literal("ab"), "%ab%");
        assert_eq!(like_literal("5%_x\\"), "%5\\%\\_x\\\\%");
    }
}
