//! The writes (admin). Argument order matters: [`Admin`] is extracted first and never reads
//! the body, and the body is only read inside the handler, after the ticker was checked.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use stockpile_application::views::StockDetail;
use stockpile_domain::Ticker;
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::body::{read_json, PriceUploadBody, StockProfileBody};
use crate::openapi::{
    unknown_ticker, AdminRefusals, BodyRefusals, DatabaseUnavailable, TickerPath,
};
use crate::params::parse_ticker;
use crate::problem::{ApiError, Problem};
use crate::ApiState;

/// The answer of a price upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertedBars {
    /// How many bars were stored (new or replaced).
    pub upserted: u64,
}

/// A ticker that may be written: well formed and not a route word such as `top`.
fn writable_ticker(req: &HttpRequest) -> Result<Ticker, ApiError> {
    let ticker = parse_ticker(req.match_info().query("ticker"))?;
    if ticker.is_reserved() {
        return Err(route_word(&ticker));
    }
    Ok(ticker)
}

fn route_word(word: &dyn std::fmt::Display) -> ApiError {
    ApiError::invalid(
        "ticker",
        format!("'{word}' is a route word under /api/stocks/, not a ticker"),
    )
}

/// `PUT` and `DELETE` on `/api/stocks/top`, a route of its own: authenticated as every write
/// is, then refused as the other spellings of the route word are under `{ticker}`.
pub async fn refuse_top(_admin: Admin) -> Result<HttpResponse, ApiError> {
    Err(route_word(&"TOP"))
}

/// Creates or replaces a stock's profile.
#[utoipa::path(
    put,
    path = "/api/stocks/{ticker}",
    tag = "admin",
    operation_id = "put_stock",
    security(("admin_token" = [])),
    params(TickerPath),
    request_body(content = StockProfileBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The stock was created.", body = StockDetail),
        (status = 200, description = "The stock was updated.", body = StockDetail),
        (status = 400, description = "Bad ticker (or a route word such as `top`), malformed JSON, unknown or invalid field.", body = Problem, content_type = "application/problem+json"),
        AdminRefusals,
        BodyRefusals,
        DatabaseUnavailable,
    )
)]
pub async fn put_stock(
    _admin: Admin,
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ticker = writable_ticker(&req)?;
    let profile = read_json::<StockProfileBody>(&req, payload, state.limits.body_timeout)
        .await?
        .try_into_domain()?;
    let location = format!("/api/stocks/{ticker}");
    let (created, detail) = state.service.upsert_stock(ticker, profile).await?;
    Ok(if created {
        HttpResponse::Created()
            .insert_header((header::LOCATION, location))
            .json(detail)
    } else {
        HttpResponse::Ok().json(detail)
    })
}

/// Stores daily bars for a stock, all or nothing; a bar for an existing date replaces it.
#[utoipa::path(
    post,
    path = "/api/stocks/{ticker}/prices",
    tag = "admin",
    operation_id = "upload_prices",
    security(("admin_token" = [])),
    params(TickerPath),
    request_body(content = PriceUploadBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The bars were stored.", body = UpsertedBars),
        (status = 400, description = "Bad ticker, malformed JSON, unknown field, invalid bar (named `bars[i].field`), duplicate or future date, volume not an integer.", body = Problem, content_type = "application/problem+json"),
        AdminRefusals,
        (status = 404, description = unknown_ticker(), body = Problem, content_type = "application/problem+json"),
        BodyRefusals,
        DatabaseUnavailable,
    )
)]
pub async fn upload_prices(
    _admin: Admin,
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ticker = writable_ticker(&req)?;
    let bars = read_json::<PriceUploadBody>(&req, payload, state.limits.body_timeout)
        .await?
        .try_into_domain()?;
    let upserted = state.service.upload_prices(ticker, bars).await?;
    Ok(HttpResponse::Ok().json(UpsertedBars { upserted }))
}

/// Removes a stock and its bars.
#[utoipa::path(
    delete,
    path = "/api/stocks/{ticker}",
    tag = "admin",
    operation_id = "delete_stock",
    security(("admin_token" = [])),
    params(TickerPath),
    responses(
        (status = 204, description = "The stock was removed."),
        (status = 400, description = "Bad ticker.", body = Problem, content_type = "application/problem+json"),
        AdminRefusals,
        (status = 404, description = unknown_ticker(), body = Problem, content_type = "application/problem+json"),
        DatabaseUnavailable,
    )
)]
pub async fn delete_stock(
    _admin: Admin,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ticker = writable_ticker(&req)?;
    state.service.delete_stock(ticker).await?;
    Ok(HttpResponse::NoContent().finish())
}
