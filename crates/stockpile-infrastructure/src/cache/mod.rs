//! The cache adapters and the choice between them.
//!
//! - [`RedisCache`]: shared by every instance; the cache of record when it answers.
//! - [`MemoryCache`]: this process's memory, bounded by bytes; `CACHE_BACKEND=memory`, and
//!   the stand-in for Redis while it is away.
//! - [`FallbackCache`]: Redis with memory in front of it as a first tier, kept coherent across
//!   instances by invalidations published through Redis, and standing in for it during
//!   outages (`auto`, `redis`).
//! - [`NullCache`]: caching switched off (`none`).
//!
//! Beside them, [`RedisQuoteEvents`] carries the live-quote streams' changes between the
//! instances sharing the Redis.
//!
//! Every adapter confines itself to its key prefix; patterns are matched by [`glob`] exactly
//! as Redis matches them, so memory and Redis remove the same keys.

mod acknowledgements;
mod failover;
pub mod glob;
mod invalidation;
mod memory;
mod null;
mod quote_events;
mod redis;
mod tiered;

use std::sync::Arc;
use std::time::Duration;

use stockpile_application::ports::Cache;

pub use self::failover::FallbackCache;
pub use self::memory::MemoryCache;
pub use self::null::NullCache;
pub use self::quote_events::RedisQuoteEvents;
pub use self::redis::{RedisAddresses, RedisCache, RedisServers, RedisSettings};
pub use crate::redaction::redact_url;

/// The longest lifetime any adapter stores: longer ones would overflow `Instant` arithmetic
/// or Redis's expiry, and a century is "for ever" to a cache.
const LONGEST_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Which cache serves (`CACHE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackendKind {
    /// Redis when it answers, memory while it does not.
    #[default]
    Auto,
    /// Redis, expected to be there; at run time the same as `Auto`, falling back to memory
    /// (and reporting `degraded`) while Redis is away, since failing reads would help no one.
    Redis,
    /// This process's memory only; Redis is never contacted.
    Memory,
    /// No caching; Redis is never contacted.
    None,
}

/// The cache's section of the settings. `Debug` redacts the Redis password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub backend: CacheBackendKind,
    /// Also the home of the key prefix, which every backend reports.
    pub redis: RedisSettings,
    /// The longest an entry lives in memory, whether it stands in for Redis or serves as the
    /// first tier in front of it (`CACHE_LOCAL_TTL`).
    pub local_ttl: Duration,
    /// The bound on the bytes of keys and values held in memory.
    pub memory_max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackendKind::Auto,
            redis: RedisSettings::default(),
            local_ttl: Duration::from_secs(5),
            memory_max_bytes: MemoryCache::DEFAULT_MAX_BYTES,
        }
    }
}

/// The cache the settings ask for. `memory` and `none` never contact Redis; `auto` and
/// `redis` start whether or not Redis answers (even when its URL does not parse, which is
/// logged as an error), within about a command timeout.
///
/// # Panics
/// Outside a Tokio runtime.
pub async fn build_cache(settings: &CacheSettings) -> Arc<dyn Cache> {
    let prefix = settings.redis.key_prefix.as_str();
    match settings.backend {
        CacheBackendKind::None => Arc::new(NullCache::new(prefix)),
        CacheBackendKind::Memory => Arc::new(MemoryCache::new(prefix, settings.memory_max_bytes)),
        CacheBackendKind::Auto | CacheBackendKind::Redis => {
            let redis = RedisCache::new(&settings.redis);
            let memory = MemoryCache::new(prefix, settings.memory_max_bytes)
                .with_max_ttl(settings.local_ttl);
            Arc::new(FallbackCache::start(redis, memory).await)
        }
    }
}
