//! Cache administration: a public status and three admin operations. Keys and patterns are
//! relative to the configured prefix; the cache adapter keeps every operation inside it.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use stockpile_application::metrics::CacheEvent;
use stockpile_application::ports::{CacheBackend, CacheState, CacheStatus, RedisTopology};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::body::{read_json, InvalidateBody};
use crate::openapi::{AdminRefusals, BodyRefusals};
use crate::problem::{ApiError, Problem};
use crate::ApiState;

/// Where the cache stands, as `/api/cache/status` and `/health/ready` show it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CacheStatus)]
pub struct CacheStateView {
    /// False when caching is switched off (`CACHE_BACKEND=none`).
    pub enabled: bool,
    /// True while the backend serving now answers.
    pub available: bool,
    /// The backend serving now: `redis`, `memory` or `none`.
    #[schema(example = "redis")]
    pub backend: &'static str,
    /// How Redis is reached: `standalone`, `sentinel` or `cluster`; `null` without Redis.
    #[schema(example = "standalone")]
    pub topology: Option<&'static str>,
    /// True while the configured backend is unreachable and a fallback serves.
    pub degraded: bool,
    /// The namespace every key lives under.
    #[schema(example = "stockpile:")]
    pub key_prefix: String,
}

impl From<CacheStatus> for CacheStateView {
    fn from(status: CacheStatus) -> Self {
        let backend_name = |backend| match backend {
            CacheBackend::Redis => "redis",
            CacheBackend::Memory => "memory",
        };
        let (available, backend) = match status.state {
            CacheState::Off => (false, "none"),
            CacheState::Serving(backend) => (true, backend_name(backend)),
            CacheState::Unreachable(backend) => (false, backend_name(backend)),
            CacheState::FallenBack => (true, backend_name(CacheBackend::Memory)),
        };
        Self {
            enabled: status.state != CacheState::Off,
            available,
            backend,
            topology: status.topology.map(|topology| match topology {
                RedisTopology::Standalone => "standalone",
                RedisTopology::Sentinel => "sentinel",
                RedisTopology::Cluster => "cluster",
            }),
            degraded: status.state == CacheState::FallenBack,
            key_prefix: status.key_prefix,
        }
    }
}

/// The cache's state and this process's counters since it started.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatusView {
    #[serde(flatten)]
    pub status: CacheStateView,
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads the cache could not answer.
    pub misses: u64,
    /// Cache operations that failed.
    pub errors: u64,
    /// Redis commands that failed or missed their timeout, each answered from the database
    /// instead: many with no `fallbacks` is a slow Redis, not a dead one.
    pub failed_commands: u64,
    /// Times in-process memory took over because Redis was found unreachable.
    pub fallbacks: u64,
    /// Invalidations made here that some other instance did not confirm within ten command
    /// timeouts: it may have served the older entry from its memory for up to
    /// `CACHE_LOCAL_TTL`.
    pub unconfirmed_invalidations: u64,
}

/// How many keys an operation removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: u64,
}

/// Where the cache stands and how it has served.
#[utoipa::path(
    get,
    path = "/api/cache/status",
    tag = "cache",
    operation_id = "get_cache_status",
    responses((status = 200, description = "The cache status.", body = CacheStatusView))
)]
pub async fn cache_status(state: web::Data<ApiState>) -> HttpResponse {
    let metrics = state.service.cache_metrics();
    let status = state.service.cache_status().await;
    let faults = status.faults;
    let view = CacheStatusView {
        status: status.into(),
        hits: metrics.total(CacheEvent::Hit),
        misses: metrics.total(CacheEvent::Miss),
        errors: metrics.total(CacheEvent::Error),
        failed_commands: faults.failed_commands,
        fallbacks: faults.fallbacks,
        unconfirmed_invalidations: faults.unconfirmed_invalidations,
    };
    HttpResponse::Ok().json(view)
}

/// Removes every key matching a pattern.
#[utoipa::path(
    post,
    path = "/api/cache/invalidate",
    tag = "cache",
    operation_id = "invalidate_cache",
    security(("admin_token" = [])),
    request_body(content = InvalidateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The matching keys were removed.", body = Deleted),
        (status = 400, description = "Malformed JSON, unknown field, or a pattern not 1–256 characters.", body = Problem, content_type = "application/problem+json"),
        AdminRefusals,
        BodyRefusals,
        (status = 503, description = "The cache is unavailable.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn invalidate(
    _admin: Admin,
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json::<InvalidateBody>(&req, payload, state.limits.body_timeout).await?;
    let deleted = state.service.invalidate_cache(body.pattern).await?;
    Ok(HttpResponse::Ok().json(Deleted { deleted }))
}

/// Removes one key.
#[utoipa::path(
    delete,
    path = "/api/cache/key/{key}",
    tag = "cache",
    operation_id = "delete_cache_key",
    security(("admin_token" = [])),
    params(("key" = String, Path, description = "The key, relative to the prefix.", example = "stocks:detail:AAPL")),
    responses(
        (status = 204, description = "The key was removed."),
        (status = 400, description = "A key not 1–256 characters.", body = Problem, content_type = "application/problem+json"),
        AdminRefusals,
        (status = 404, description = "There was no such key.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cache is unavailable.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_key(
    _admin: Admin,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key = req.match_info().query("key").to_owned();
    if state.service.delete_cache_key(key.clone()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("there is no cache key '{key}'")))
    }
}

/// Removes every key under the prefix (never anything else).
#[utoipa::path(
    delete,
    path = "/api/cache",
    tag = "cache",
    operation_id = "clear_cache",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every key under the prefix was removed.", body = Deleted),
        AdminRefusals,
        (status = 503, description = "The cache is unavailable.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear(_admin: Admin, state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let deleted = state.service.clear_cache().await?;
    Ok(HttpResponse::Ok().json(Deleted { deleted }))
}
