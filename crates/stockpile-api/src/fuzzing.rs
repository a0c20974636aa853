//! The request parsers, exactly as the handlers call them, for the fuzz targets in `fuzz/`.
//!
//! Compiled only with the `fuzzing` feature, which the service never enables: there the
//! parsers stay private to this crate.

use chrono::NaiveDate;
use stockpile_domain::{Interval, ListQuery, MoverMetric, Period, PriceBar, StockProfile};

pub use crate::problem::ApiError;

use crate::body::{parse_json, InvalidateBody, PriceUploadBody, StockProfileBody};
use crate::params;

/// The query string of `GET /api/stocks`.
pub fn list_query(query_string: &str) -> Result<ListQuery, ApiError> {
    params::list_query(query_string)
}

/// The query string of `GET /api/stocks/{ticker}/history`.
pub fn history_params(
    query_string: &str,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>, Interval), ApiError> {
    params::history_params(query_string)
}

/// The query string of `GET /api/stocks/top`.
pub fn top_params(query_string: &str) -> Result<(MoverMetric, u32), ApiError> {
    params::top_params(query_string)
}

/// The query string of `GET /api/stocks/leaderboard/top`.
pub fn leaderboard_params(query_string: &str) -> Result<(Period, u32, Option<String>), ApiError> {
    params::leaderboard_params(query_string)
}

/// The body of `PUT /api/stocks/{ticker}`, read, as the domain value the use case receives.
pub fn stock_profile_body(body: &[u8]) -> Result<StockProfile, ApiError> {
    parse_json::<StockProfileBody>(body)?.try_into_domain()
}

/// The body of `POST /api/stocks/{ticker}/prices`, read, as the bars the use case receives.
pub fn price_upload_body(body: &[u8]) -> Result<Vec<PriceBar>, ApiError> {
    parse_json::<PriceUploadBody>(body)?.try_into_domain()
}

/// The body of `POST /api/cache/invalidate`, read, as the pattern the use case receives.
pub fn invalidate_body(body: &[u8]) -> Result<String, ApiError> {
    parse_json::<InvalidateBody>(body).map(|body| body.pattern)
}
