use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use stockpile_domain::{Interval, ListQuery, MoverMetric, Period, PriceBar, StockProfile, Ticker};

use crate::cache_aside::{CacheAside, CachePolicy, CachedResponse};
use crate::metrics::CacheMetrics;
use crate::ports::{Cache, CacheStatus, StockRepository};
use crate::use_cases;
use crate::views::StockDetail;
use crate::AppError;

/// What the service needs to know beyond its ports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceSettings {
    pub cache_policy: CachePolicy,
}

/// A dependency's state, for `/health/ready`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct DependencyHealth {
    /// `up` or `down`.
    pub status: String,
    /// Round-trip time of the check, in milliseconds.
    pub latency_ms: f64,
    /// What went wrong, when it is down (never a connection string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `/health/ready`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (cache trouble only) or `unavailable` (the database is down).
    pub status: String,
    pub database: DependencyHealth,
    pub cache: CacheReadiness,
}

/// The cache part of readiness: its status and how long asking for it took.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CacheReadiness {
    #[serde(flatten)]
    pub status: CacheStatus,
    pub latency_ms: f64,
}

/// A request for one stock's price history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub ticker: Ticker,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub interval: Interval,
}

/// Everything Stockpile does, one method per use case; the HTTP layer depends only on this.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StockService: Send + Sync {
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
    /// Creates or replaces a stock's profile; true when it was created.
    async fn upsert_stock(
        &self,
        ticker: Ticker,
        profile: StockProfile,
    ) -> Result<(bool, StockDetail), AppError>;
    /// Stores bars all or nothing; returns how many.
    async fn upload_prices(&self, ticker: Ticker, bars: Vec<PriceBar>) -> Result<u64, AppError>;
    async fn delete_stock(&self, ticker: Ticker) -> Result<(), AppError>;
    async fn cache_status(&self) -> CacheStatus;
    async fn invalidate_cache(&self, pattern: String) -> Result<u64, AppError>;
    /// True when a key was removed.
    async fn delete_cache_key(&self, key: String) -> Result<bool, AppError>;
    async fn clear_cache(&self) -> Result<u64, AppError>;
    async fn readiness(&self) -> Readiness;
    fn cache_metrics(&self) -> Arc<CacheMetrics>;
}

/// The one implementation of [`StockService`], over a repository and a cache.
pub struct Stockpile {
    pub(crate) repository: Arc<dyn StockRepository>,
    pub(crate) reads: CacheAside,
}

/// How long a readiness check waits for a dependency before calling it down.
const READINESS_TIMEOUT: Duration = Duration::from_millis(900);

impl Stockpile {
    pub fn new(
        repository: Arc<dyn StockRepository>,
        cache: Arc<dyn Cache>,
        metrics: Arc<CacheMetrics>,
        settings: ServiceSettings,
    ) -> Self {
        Self {
            repository,
            reads: CacheAside::new(cache, metrics, settings.cache_policy),
        }
    }
}

fn millis_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

#[async_trait]
impl StockService for Stockpile {
    async fn list_stocks(&self, query: ListQuery) -> Result<CachedResponse, AppError> {
        use_cases::list_stocks::execute(self, query).await
    }

    async fn stock_detail(&self, ticker: Ticker) -> Result<CachedResponse, AppError> {
        use_cases::stock_detail::execute(self, ticker).await
    }

    async fn price_history(&self, request: HistoryRequest) -> Result<CachedResponse, AppError> {
        use_cases::price_history::execute(self, request).await
    }

    async fn top_movers(
        &self,
        metric: MoverMetric,
        limit: u32,
    ) -> Result<CachedResponse, AppError> {
        use_cases::top_movers::execute(self, metric, limit).await
    }

    async fn leaderboard(
        &self,
        period: Period,
        limit: u32,
        sector: Option<String>,
    ) -> Result<CachedResponse, AppError> {
        use_cases::leaderboard::execute(self, period, limit, sector).await
    }

    async fn upsert_stock(
        &self,
        ticker: Ticker,
        profile: StockProfile,
    ) -> Result<(bool, StockDetail), AppError> {
        use_cases::upsert_stock::execute(self, ticker, profile).await
    }

    async fn upload_prices(&self, ticker: Ticker, bars: Vec<PriceBar>) -> Result<u64, AppError> {
        use_cases::upload_prices::execute(self, ticker, bars).await
    }

    async fn delete_stock(&self, ticker: Ticker) -> Result<(), AppError> {
        use_cases::delete_stock::execute(self, ticker).await
    }

    async fn cache_status(&self) -> CacheStatus {
        self.reads.cache().status().await
    }

    async fn invalidate_cache(&self, pattern: String) -> Result<u64, AppError> {
        use_cases::cache_admin::invalidate(self, pattern).await
    }

    async fn delete_cache_key(&self, key: String) -> Result<bool, AppError> {
        use_cases::cache_admin::delete_key(self, key).await
    }

    async fn clear_cache(&self) -> Result<u64, AppError> {
        use_cases::cache_admin::clear(self).await
    }

    async fn readiness(&self) -> Readiness {
        let started = Instant::now();
        let ping = tokio::time::timeout(READINESS_TIMEOUT, self.repository.ping()).await;
        let database = match ping {
            Ok(Ok(())) => DependencyHealth {
                status: "up".into(),
                latency_ms: millis_since(started),
                error: None,
            },
            Ok(Err(e)) => DependencyHealth {
                status: "down".into(),
                latency_ms: millis_since(started),
                error: Some(e.to_string()),
            },
            Err(_) => DependencyHealth {
                status: "down".into(),
                latency_ms: millis_since(started),
                error: Some("the database did not answer within 900 ms".into()),
            },
        };
        let started = Instant::now();
        let cache_status = self.reads.cache().status().await;
        let cache = CacheReadiness {
            status: cache_status,
            latency_ms: millis_since(started),
        };
        let status = if database.status != "up" {
            "unavailable"
        } else if cache.status.degraded || (cache.status.enabled && !cache.status.available) {
            "degraded"
        } else {
            "ready"
        };
        Readiness {
            status: status.into(),
            database,
            cache,
        }
    }

    fn cache_metrics(&self) -> Arc<CacheMetrics> {
        Arc::clone(self.reads.metrics())
    }
}
