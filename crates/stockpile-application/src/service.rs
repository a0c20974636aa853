//! [`Stockpile`], the one implementation of every use case: the ports it reaches and the
//! cache-aside layer every read and write goes through. The use cases themselves live in
//! [`crate::use_cases`], one role a module.

use std::sync::Arc;

use crate::cache_aside::{CacheAside, CachePolicy};
use crate::metrics::CacheMetrics;
use crate::ports::{Cache, StockRepository};

/// What the service needs to know beyond its ports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceSettings {
    pub cache_policy: CachePolicy,
}

/// Stockpile over a repository and a cache.
pub struct Stockpile {
    pub(crate) repository: Arc<dyn StockRepository>,
    /// Every read and every write of the repository goes through it.
    pub(crate) cache_aside: CacheAside,
}

impl Stockpile {
    pub fn new(
        repository: Arc<dyn StockRepository>,
        cache: Arc<dyn Cache>,
        metrics: Arc<CacheMetrics>,
        settings: ServiceSettings,
    ) -> Self {
        Self {
            repository,
            cache_aside: CacheAside::new(cache, metrics, settings.cache_policy),
        }
    }
}
