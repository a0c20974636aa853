//! Liveness, readiness and metrics.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use stockpile_application::Readiness;
use utoipa::ToSchema;

use crate::http_metrics::HttpMetrics;
use crate::ApiState;

/// The answer of `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: 200 while the process serves.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "The process serves.", body = Liveness))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// Readiness: 200 when the database answers (cache trouble only degrades), else 503.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "`ready` or `degraded`.", body = Readiness),
        (status = 503, description = "`unavailable`: the database does not answer.", body = Readiness),
    )
)]
pub async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let readiness = state.service.readiness().await;
    let mut builder = if readiness.status == "unavailable" {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    // Probes must see the current state, never a cached one.
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(readiness)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(state: web::Data<ApiState>, http: web::Data<HttpMetrics>) -> HttpResponse {
    let backend = state.service.cache_status().await.backend;
    let page = http.render(&state.service.cache_metrics(), &backend);
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(page)
}
