//! Operations: readiness, and the cache counters the metrics page renders.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cache_aside::BreakerState;
use crate::metrics::CacheMetrics;
use crate::ports::{CacheState, CacheStatus};
use crate::service::Stockpile;

/// How long a readiness check waits for a dependency before calling it down.
const READINESS_TIMEOUT: Duration = Duration::from_millis(900);

/// A dependency's state, for readiness.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyHealth {
    pub up: bool,
    /// For the database: whether loads reach it or are refused at once after failures.
    pub breaker: Option<BreakerState>,
    /// Round-trip time of the check, in milliseconds.
    pub latency_ms: f64,
    /// What went wrong, when it is down (never a connection string).
    pub error: Option<String>,
}

/// Whether this instance can serve, and how well.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub database: DependencyHealth,
    pub cache: CacheStatus,
    /// How long asking the cache for its status took, in milliseconds.
    pub cache_latency_ms: f64,
}

/// Readiness in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadinessVerdict {
    /// The database answers and the configured cache serves.
    Ready,
    /// The database answers; the cache is unreachable or a fallback stands in for it.
    Degraded,
    /// The database does not answer.
    Unavailable,
}

impl Readiness {
    pub fn verdict(&self) -> ReadinessVerdict {
        if !self.database.up {
            ReadinessVerdict::Unavailable
        } else if matches!(
            self.cache.state,
            CacheState::FallenBack | CacheState::Unreachable(_)
        ) {
            ReadinessVerdict::Degraded
        } else {
            ReadinessVerdict::Ready
        }
    }
}

#[async_trait]
pub trait Operations: Send + Sync {
    async fn readiness(&self) -> Readiness;
    fn cache_metrics(&self) -> Arc<CacheMetrics>;
    /// Whether loads reach the database now, and how many times the breaker opened.
    fn database_breaker(&self) -> (BreakerState, u64);
}

#[async_trait]
impl Operations for Stockpile {
    async fn readiness(&self) -> Readiness {
        let started = Instant::now();
        let ping = tokio::time::timeout(READINESS_TIMEOUT, self.repository.ping()).await;
        let latency_ms = millis_since(started);
        if matches!(ping, Ok(Ok(()))) {
            self.cache_aside.database_answered();
        }
        let breaker = Some(self.cache_aside.database_breaker().0);
        let database = match ping {
            Ok(Ok(())) => DependencyHealth {
                up: true,
                breaker,
                latency_ms,
                error: None,
            },
            Ok(Err(e)) => DependencyHealth {
                up: false,
                breaker,
                latency_ms,
                error: Some(e.to_string()),
            },
            Err(_) => DependencyHealth {
                up: false,
                breaker,
                latency_ms,
                error: Some(format!(
                    "the database did not answer within {} ms",
                    READINESS_TIMEOUT.as_millis()
                )),
            },
        };
        let started = Instant::now();
        let cache = self.cache_aside.cache().status().await;
        Readiness {
            database,
            cache,
            cache_latency_ms: millis_since(started),
        }
    }

    fn cache_metrics(&self) -> Arc<CacheMetrics> {
        Arc::clone(self.cache_aside.metrics())
    }

    fn database_breaker(&self) -> (BreakerState, u64) {
        self.cache_aside.database_breaker()
    }
}

fn millis_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}
