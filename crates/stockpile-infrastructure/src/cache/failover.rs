//! Redis first, memory while Redis is away: the cache of `CACHE_BACKEND=auto` and `redis`.
//! While Redis serves, memory is also its first tier ([`super::tiered`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheError, CacheState, CacheStatus};
use tokio::task::JoinHandle;

use super::invalidation::Invalidation;
use super::memory::MemoryCache;
use super::redis::RedisCache;
use super::tiered::{self, TierOwner, TwoTier};

/// How often the probe pings Redis.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Serves from Redis (through its first tier), and from a [`MemoryCache`] while Redis does
/// not answer.
///
/// - Any Redis error or timeout switches to memory at once, for every later operation; the
///   switch is logged once. An invalidation (`delete`, `delete_matching`, `clear`) that fails
///   on Redis switches too, and is then applied to memory, so that entries it should have
///   removed from Redis are never served. A failed `PUBLISH` of an invalidation counts as a
///   Redis failure too.
/// - A probe task owned by the cache pings Redis every second and, once Redis answers again,
///   switches back; it stops when the cache is dropped. While on Redis it pings too, so that
///   the status notices an outage even when no request does.
/// - Memory entries live at most the memory cache's TTL cap (`CACHE_LOCAL_TTL`): other
///   instances cannot reach this process's memory to invalidate it.
///
/// # Recovery clears the prefix in Redis
///
/// While memory serves, writes cannot remove the entries they make stale from Redis, so when
/// Redis returns it may hold answers older than the database. Before serving from Redis
/// again, the probe therefore removes every key under the prefix there (`SCAN` + `UNLINK`;
/// if that fails, it stays on memory and tries again at the next tick). The alternatives are
/// worse: remembering every invalidation made during the outage is unbounded and still misses
/// those of other instances, and waiting for the entries to expire would serve stale answers
/// for up to a TTL. The cost is a cold cache after an outage. No Redis write can land after
/// that clear from before the outage: operations on Redis end within the command timeout,
/// while recovery starts at least one probe interval after the switch.
///
/// Memory is cleared at both switches: after recovery it holds nothing Redis has not, and
/// before it stands in again it may still hold entries from an earlier outage that
/// invalidations made on Redis in between never reached.
#[derive(Debug)]
pub struct FallbackCache {
    shared: Arc<Shared>,
    probe: JoinHandle<()>,
    subscriber: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    tiers: TwoTier,
    /// Which backend serves. An atomic rather than a lock: operations only read it, and the
    /// only invariant between it and the stores is the one the recovery clear provides.
    on_redis: AtomicBool,
}

impl TierOwner for Shared {
    fn tiers(&self) -> &TwoTier {
        &self.tiers
    }

    fn on_redis(&self) -> bool {
        self.on_redis.load(Ordering::SeqCst)
    }
}

impl FallbackCache {
    /// Starts on Redis when it answers a ping now, and then subscribes to the invalidations
    /// (within the connect and command timeouts; on failure the background task keeps
    /// trying, and memory does not serve as the first tier until it succeeds); else starts on
    /// memory. A dead Redis costs one command timeout, so it never fails or delays startup.
    ///
    /// `memory` should cap its entries' lifetime (`MemoryCache::with_max_ttl`).
    pub async fn start(redis: RedisCache, memory: MemoryCache) -> Self {
        let shared = Arc::new(Shared {
            tiers: TwoTier::new(redis, memory),
            on_redis: AtomicBool::new(true),
        });
        let first = match shared.tiers.redis().ping().await {
            Ok(()) => shared.tiers.subscribe_first().await,
            Err(e) => {
                shared.switch_to_memory(&e);
                None
            }
        };
        let probe = tokio::spawn(probe(Arc::downgrade(&shared)));
        let subscriber = tokio::spawn(tiered::subscriber(Arc::downgrade(&shared), first));
        Self {
            shared,
            probe,
            subscriber,
        }
    }
}

impl Drop for FallbackCache {
    fn drop(&mut self) {
        self.probe.abort();
        self.subscriber.abort();
    }
}

/// Pings Redis every [`PROBE_INTERVAL`] until the cache is dropped, switching as it answers.
async fn probe(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let answered = shared.tiers.redis().ping().await;
        match answered {
            Err(e) if shared.on_redis() => shared.switch_to_memory(&e),
            Ok(()) if !shared.on_redis() => shared.recover().await,
            _ => {}
        }
    }
}

impl Shared {
    fn memory(&self) -> &MemoryCache {
        self.tiers.memory()
    }

    fn switch_to_memory(&self, why: &CacheError) {
        if self
            .on_redis
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::warn!(
                error = %why,
                "Redis is unavailable; caching in memory until it answers again"
            );
            self.tiers.forget_all();
        }
    }

    /// Clears the prefix in Redis, then serves from it again; see [`FallbackCache`] for why.
    async fn recover(&self) {
        match self.tiers.redis().clear().await {
            Ok(removed) => {
                self.tiers.forget_all();
                self.on_redis.store(true, Ordering::SeqCst);
                self.tiers.forget_all();
                tracing::info!(
                    removed,
                    "Redis answers again; cleared its possibly stale entries and serving from it"
                );
            }
            Err(e) => {
                tracing::debug!(error = %e, "Redis answers but could not be cleared yet");
            }
        }
    }

    /// Applies `invalidation` to Redis and memory and announces it to the other instances;
    /// on a Redis failure, `None` after the switch to memory, for memory to apply it.
    async fn invalidate(&self, invalidation: Invalidation) -> Option<u64> {
        if !self.on_redis() {
            return None;
        }
        match self.tiers.invalidate(&invalidation).await {
            Ok(removed) => {
                if let Err(e) = self.tiers.announce(invalidation).await {
                    self.switch_to_memory(&e);
                }
                Some(removed)
            }
            Err(e) => {
                self.switch_to_memory(&e);
                None
            }
        }
    }
}

#[async_trait]
impl Cache for FallbackCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.tiers.get(key).await {
                Ok(value) => return Ok(value),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory().get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.tiers.get_many(keys).await {
                Ok(values) => return Ok(values),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory().get_many(keys).await
    }

    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.tiers.put(key, value.clone(), retain_for).await {
                Ok(()) => return Ok(()),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory().put(key, value, retain_for).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        match self
            .shared
            .invalidate(Invalidation::Key(key.to_owned()))
            .await
        {
            Some(removed) => Ok(removed > 0),
            None => self.shared.memory().delete(key).await,
        }
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let invalidation = Invalidation::Pattern(pattern.to_owned());
        match self.shared.invalidate(invalidation).await {
            Some(removed) => Ok(removed),
            None => self.shared.memory().delete_matching(pattern).await,
        }
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        match self.shared.invalidate(Invalidation::All).await {
            Some(removed) => Ok(removed),
            None => self.shared.memory().clear().await,
        }
    }

    /// On Redis, its lease, shared by every instance; on memory (or when Redis fails, which
    /// switches to memory as any failure does), always granted.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.tiers.redis().try_lease(key, ttl).await {
                Ok(granted) => return Ok(granted),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory().try_lease(key, ttl).await
    }

    async fn release_lease(&self, key: &str) -> Result<(), CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.tiers.redis().release_lease(key).await {
                Ok(()) => return Ok(()),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory().release_lease(key).await
    }

    /// The backend serving now; degraded while memory stands in for Redis.
    async fn status(&self) -> CacheStatus {
        let redis = self.shared.tiers.redis();
        CacheStatus {
            state: if self.shared.on_redis() {
                CacheState::Serving(CacheBackend::Redis)
            } else {
                CacheState::FallenBack
            },
            topology: Some(redis.topology()),
            key_prefix: redis.key_prefix().to_owned(),
        }
    }
}
