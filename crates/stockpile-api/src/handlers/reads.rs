//! The cached reads (public). Each parses its input into domain values, asks the service and
//! writes the cached body as it is.

use actix_web::{web, HttpRequest, HttpResponse};
use stockpile_application::views::{
    Leaderboard, PriceHistory, QuoteBatch, StockDetail, StockList, TopMovers,
};
use stockpile_application::HistoryRequest;

use crate::conditional::respond;
use crate::openapi::{unknown_ticker, DatabaseUnavailable, TickerPath};
use crate::params::{
    history_params, leaderboard_params, list_query, parse_ticker, quote_tickers, top_params,
};
use crate::problem::{ApiError, Problem};
use crate::ApiState;

/// Lists stocks, filtered, sorted and paged.
#[utoipa::path(
    get,
    path = "/api/stocks",
    tag = "stocks",
    operation_id = "list_stocks",
    params(
        ("q" = Option<String>, Query),
        ("sector" = Option<String>, Query, description = "Exact sector, case-insensitive."),
        ("exchange" = Option<String>, Query, description = "Exact exchange, case-insensitive."),
        ("sort" = Option<String>, Query, description = "Sort column; default `ticker`.", example = "ticker"),
        ("order" = Option<String>, Query, description = "`asc` or `desc`.", example = "asc"),
        ("page" = Option<u32>, Query),
        ("page_size" = Option<u32>, Query),
    ),
    responses(
        (status = 200, description = "One page of stocks.", body = StockList),
        (status = 400, description = "A known parameter has a bad value.", body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn list_stocks(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(req.query_string())?;
    Ok(respond(&req, state.service.list_stocks(query).await?).await)
}

/// The same list as `/api/stocks`, answered at the trailing-slash spelling.
#[utoipa::path(
    get,
    path = "/api/stocks/",
    tag = "stocks",
    operation_id = "list_stocks_trailing_slash",
    params(
        ("q" = Option<String>, Query),
        ("sector" = Option<String>, Query),
        ("exchange" = Option<String>, Query),
        ("sort" = Option<String>, Query),
        ("order" = Option<String>, Query),
        ("page" = Option<u32>, Query),
        ("page_size" = Option<u32>, Query),
    ),
    responses(
        (status = 200, description = "One page of stocks; see `GET /api/stocks`.", body = StockList),
        (status = 400, description = "A known parameter has a bad value.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_stocks_trailing_slash(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    list_stocks(state, req).await
}

/// One stock with its latest quote and trailing statistics.
#[utoipa::path(
    get,
    path = "/api/stocks/{ticker}",
    tag = "stocks",
    operation_id = "get_stock",
    params(TickerPath),
    responses(
        (status = 200, description = "The stock.", body = StockDetail),
        (status = 400, description = "The ticker is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = unknown_ticker(), body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn stock_detail(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ticker = parse_ticker(req.match_info().query("ticker"))?;
    Ok(respond(&req, state.service.stock_detail(ticker).await?).await)
}

/// A stock's daily, weekly or monthly bars in a date range, oldest first.
#[utoipa::path(
    get,
    path = "/api/stocks/{ticker}/history",
    tag = "stocks",
    operation_id = "get_price_history",
    params(
        TickerPath,
        ("from" = Option<chrono::NaiveDate>, Query),
        ("to" = Option<chrono::NaiveDate>, Query),
        ("interval" = Option<String>, Query, description = "`1d`, `1w` or `1mo`; default `1d`.", example = "1d"),
    ),
    responses(
        (status = 200, description = "The bars.", body = PriceHistory),
        (status = 400, description = "Bad ticker, date or interval; `from` after `to`; a span over 20 years.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = unknown_ticker(), body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn price_history(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ticker = parse_ticker(req.match_info().query("ticker"));
    let params = history_params(req.query_string());
    // Report a bad ticker and bad parameters together rather than one per round trip.
    let (ticker, (from, to, interval)) = match (ticker, params) {
        (Ok(ticker), Ok(params)) => (ticker, params),
        (Err(ApiError::Invalid(mut a)), Err(ApiError::Invalid(mut b))) => {
            a.append(&mut b);
            return Err(ApiError::Invalid(a));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let request = HistoryRequest {
        ticker,
        from,
        to,
        interval,
    };
    Ok(respond(&req, state.service.price_history(request).await?).await)
}

/// The top movers of the latest trading day.
#[utoipa::path(
    get,
    path = "/api/stocks/top",
    tag = "rankings",
    operation_id = "get_top_movers",
    params(
        ("metric" = Option<String>, Query, description = "`gainers`, `losers` or `active`; default `gainers`.", example = "gainers"),
        ("limit" = Option<u32>, Query),
    ),
    responses(
        (status = 200, description = "The movers.", body = TopMovers),
        (status = 400, description = "Bad metric or limit.", body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn top_movers(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (metric, limit) = top_params(req.query_string())?;
    let cached = state.service.top_movers(metric, limit).await?;
    Ok(respond(&req, cached).await)
}

/// Total returns over a period, best first.
#[utoipa::path(
    get,
    path = "/api/stocks/leaderboard/top",
    tag = "rankings",
    operation_id = "get_leaderboard",
    params(
        ("period" = Option<String>, Query, description = "`1w`, `1m`, `3m`, `6m`, `1y` or `ytd`; default `1m`.", example = "1m"),
        ("limit" = Option<u32>, Query),
        ("sector" = Option<String>, Query, description = "Exact sector, case-insensitive."),
    ),
    responses(
        (status = 200, description = "The leaderboard.", body = Leaderboard),
        (status = 400, description = "Bad period or limit.", body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn leaderboard(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (period, limit, sector) = leaderboard_params(req.query_string())?;
    let cached = state.service.leaderboard(period, limit, sector).await?;
    Ok(respond(&req, cached).await)
}

/// The latest quotes of a batch of tickers (a watchlist) in one request.
#[utoipa::path(
    get,
    path = "/api/quotes",
    tag = "stocks",
    operation_id = "get_quotes",
    params(
        ("tickers" = String, Query, description = "1–100 distinct tickers separated by commas, case-insensitive; a ticker given twice counts once. Required, and given once.", example = "AAPL,MSFT,ZZZZ"),
    ),
    responses(
        (status = 200, description = "One item per ticker that has a stock, in the order the tickers were first given; the others in `missing`, in the same order. `X-Cache` is HIT when every ticker came from the cache, MISS when any was loaded, STALE when any was served stale; `max-age` is the least any ticker's entry has left; `Age` that of the oldest stale entry.", body = QuoteBatch),
        (status = 400, description = "`tickers` is missing, empty, given twice, names an invalid ticker or more than 100 distinct tickers.", body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn quotes(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tickers = quote_tickers(req.query_string())?;
    Ok(respond(&req, state.service.quotes(tickers).await?).await)
}
