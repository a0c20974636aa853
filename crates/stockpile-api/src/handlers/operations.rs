//! Liveness, readiness and metrics.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use stockpile_application::cache_aside::BreakerState;
use stockpile_application::{DependencyHealth, Readiness, ReadinessVerdict};
use utoipa::ToSchema;

use super::cache_admin::CacheStateView;
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

/// A dependency's state, for `/health/ready`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DependencyHealth)]
pub struct DependencyView {
    /// `up` or `down`.
    #[schema(example = "up")]
    pub status: &'static str,
    /// Round-trip time of the check, in milliseconds.
    pub latency_ms: f64,
    /// What went wrong, when it is down (never a connection string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The database only: `closed` while loads reach it, `open` while they are refused at once
    /// after it failed (one trial a second finds it back).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "closed")]
    pub circuit: Option<&'static str>,
}

impl From<DependencyHealth> for DependencyView {
    fn from(health: DependencyHealth) -> Self {
        Self {
            status: if health.up { "up" } else { "down" },
            latency_ms: health.latency_ms,
            error: health.error,
            circuit: health.breaker.map(|state| match state {
                BreakerState::Closed => "closed",
                BreakerState::Open => "open",
            }),
        }
    }
}

/// The cache part of readiness: its state and how long asking for it took.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CacheReadiness)]
pub struct CacheReadinessView {
    #[serde(flatten)]
    pub status: CacheStateView,
    pub latency_ms: f64,
}

/// The answer of `/health/ready`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Readiness)]
pub struct ReadinessView {
    /// `ready`, `degraded` (cache trouble only) or `unavailable` (the database is down).
    #[schema(example = "ready")]
    pub status: &'static str,
    pub database: DependencyView,
    pub cache: CacheReadinessView,
}

impl From<Readiness> for ReadinessView {
    fn from(readiness: Readiness) -> Self {
        Self {
            status: match readiness.verdict() {
                ReadinessVerdict::Ready => "ready",
                ReadinessVerdict::Degraded => "degraded",
                ReadinessVerdict::Unavailable => "unavailable",
            },
            database: readiness.database.into(),
            cache: CacheReadinessView {
                status: readiness.cache.into(),
                latency_ms: readiness.cache_latency_ms,
            },
        }
    }
}

/// Readiness: 200 when the database answers (cache trouble only degrades), else 503.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "`ready` or `degraded`.", body = ReadinessView),
        (status = 503, description = "`unavailable`: the database does not answer.", body = ReadinessView),
    )
)]
pub async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let readiness = state.service.readiness().await;
    let mut builder = if readiness.verdict() == ReadinessVerdict::Unavailable {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    // Probes must see the current state, never a cached one.
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ReadinessView::from(readiness))
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
    let status = state.service.cache_status().await;
    let faults = status.faults;
    let backend = CacheStateView::from(status).backend;
    let page = http.render(
        &state.service.cache_metrics(),
        (backend, faults),
        state.service.database_breaker(),
        state.service.stream_counters(),
    );
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(page)
}
