//! Redis first, memory while Redis is away: the cache of `CACHE_BACKEND=auto` and `redis`.
//! While Redis serves, memory is also its first tier ([`super::tiered`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheFaults, CacheState, CacheStatus, Coherence,
};
use tokio::sync::Notify;
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
/// - A slow command is not an outage. A read, a store or a lease that fails or misses the
///   command timeout is counted and answered as a cache failure (the request is served from
///   the database, its answer not stored), and wakes the probe at once. Only the probe's
///   verdict switches to memory: a `PING` with ten command timeouts to answer, which a
///   slowed Redis passes and a dead one fails (at once when refused, after the probe's
///   timeout when black-holed). The switch is logged once.
/// - An invalidation (`delete`, `delete_many`, `delete_matching`, `clear`) that fails on
///   Redis switches at once, and is then applied to memory and kept for recovery: Redis may
///   still hold entries it made stale, so Redis must not serve until it is applied there. A
///   failed `PUBLISH` of an invalidation counts the same way.
/// - The probe task owned by the cache pings Redis every second (and at once after a failed
///   command) and, once Redis answers again, switches back; it stops when the cache is
///   dropped. While on Redis it pings too, so that the status notices an outage even when no
///   request does.
/// - [`CacheFaults`] counts the failed commands and the switches, so that an operator can
///   tell a slow Redis (many failed commands, no switch) from a dead one.
/// - Memory entries live at most the memory cache's TTL cap (`CACHE_LOCAL_TTL`): other
///   instances cannot reach this process's memory to invalidate it.
///
/// # Recovery replays what this instance made stale, and nothing else
///
/// While memory serves, invalidations cannot reach Redis, so when Redis returns it may hold
/// entries older than the database: those of the generations this instance's writes revoked
/// meanwhile (and of any key or pattern an operator removed). Every invalidation that did not
/// reach Redis is therefore kept ([`Pending`]: a few keys per write, since a write revokes
/// generations rather than entries), and before serving from Redis again the probe applies
/// them there and announces them to the other instances' first tiers; if that fails, it stays
/// on memory and tries again at the next tick. An instance that took no write while away
/// removes nothing. Past [`MAX_PENDING`] keys and patterns the record collapses into one
/// clear of the prefix, the bounded over-approximation.
///
/// A Redis write that lands late, after the switch, cannot undo this: an entry carries its
/// generation, and a revoked generation never becomes current again.
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

/// The most keys and patterns [`Pending`] keeps one by one before it gives up and asks for a
/// clear of the prefix instead: far more than an outage of minutes produces (a write revokes
/// two or three generations), small enough to replay in one pipeline.
const MAX_PENDING: usize = 10_000;

/// The invalidations made while Redis was away, to be applied there before it serves again.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pending {
    keys: HashSet<String>,
    patterns: HashSet<String>,
    /// Too many to keep, or a clear: recovery clears the prefix.
    everything: bool,
}

impl Pending {
    fn add(&mut self, invalidation: &Invalidation) {
        if self.everything {
            return;
        }
        match invalidation {
            Invalidation::Keys(keys) => self.keys.extend(keys.iter().cloned()),
            Invalidation::Pattern(pattern) => {
                self.patterns.insert(pattern.clone());
            }
            Invalidation::All => self.everything = true,
        }
        if self.everything || self.keys.len() + self.patterns.len() > MAX_PENDING {
            *self = Self {
                everything: true,
                ..Self::default()
            };
        }
    }

    fn is_empty(&self) -> bool {
        !self.everything && self.keys.is_empty() && self.patterns.is_empty()
    }

    /// What recovery applies, in order.
    fn invalidations(self) -> Vec<Invalidation> {
        if self.everything {
            return vec![Invalidation::All];
        }
        let mut invalidations = Vec::with_capacity(1 + self.patterns.len());
        if !self.keys.is_empty() {
            invalidations.push(Invalidation::Keys(self.keys.into_iter().collect()));
        }
        invalidations.extend(self.patterns.into_iter().map(Invalidation::Pattern));
        invalidations
    }
}

#[derive(Debug)]
struct Shared {
    tiers: TwoTier,
    /// Which backend serves. Set to true only under the lock of `pending`, so that an
    /// invalidation recorded there is either replayed by recovery or sees Redis back and
    /// applies itself there.
    on_redis: AtomicBool,
    /// What recovery must apply to Redis before it serves again.
    pending: Mutex<Pending>,
    /// Wakes the probe when a command failed, for its verdict.
    suspicion: Arc<Notify>,
    failed_commands: AtomicU64,
    fallbacks: AtomicU64,
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
            pending: Mutex::default(),
            suspicion: Arc::new(Notify::new()),
            failed_commands: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        });
        let first = match shared.tiers.redis().ping().await {
            Ok(()) => shared.tiers.subscribe_first().await,
            Err(e) => {
                shared.switch_to_memory(&e);
                None
            }
        };
        let probe = tokio::spawn(probe(
            Arc::downgrade(&shared),
            Arc::clone(&shared.suspicion),
        ));
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

/// Pings Redis every [`PROBE_INTERVAL`], and at once when `suspicion` is notified (a command
/// failed), until the cache is dropped, switching as it answers.
async fn probe(shared: Weak<Shared>, suspicion: Arc<Notify>) {
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let suspected = tokio::select! {
            _ = ticks.tick() => false,
            () = suspicion.notified() => true,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let answered = shared.tiers.redis().probe().await;
        match answered {
            Err(e) if shared.on_redis() => shared.switch_to_memory(&e),
            Ok(()) if !shared.on_redis() => shared.recover().await,
            Ok(()) if suspected => tracing::debug!(
                "Redis answered the probe after a failed command: slow, not down; staying on it"
            ),
            _ => {}
        }
    }
}

impl Shared {
    fn memory(&self) -> &MemoryCache {
        self.tiers.memory()
    }

    /// Counts a failed read, store or lease and asks the probe whether Redis is down; the
    /// caller answers as if the cache were unavailable for this one operation.
    fn suspect(&self, why: &CacheError) -> CacheError {
        self.failed_commands.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %why, "a Redis command failed; probing Redis");
        self.suspicion.notify_one();
        why.clone()
    }

    fn switch_to_memory(&self, why: &CacheError) {
        if self
            .on_redis
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %why,
                "Redis is unavailable; caching in memory until it answers again"
            );
            self.tiers.forget_all();
        }
    }

    /// Applies the pending invalidations to Redis and announces them, then serves from it
    /// again; see [`FallbackCache`] for why. On a failure, what was not applied stays pending
    /// and memory keeps serving.
    async fn recover(&self) {
        let mut replayed = 0;
        loop {
            let pending = {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if pending.is_empty() {
                    self.tiers.forget_all();
                    self.on_redis.store(true, Ordering::SeqCst);
                    break;
                }
                std::mem::take(&mut *pending)
            };
            let mut invalidations = pending.invalidations().into_iter();
            while let Some(invalidation) = invalidations.next() {
                let applied = match self.tiers.invalidate(&invalidation).await {
                    Ok(_) => self.tiers.announce(invalidation.clone()).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                    for unapplied in std::iter::once(invalidation).chain(invalidations) {
                        pending.add(&unapplied);
                    }
                    tracing::debug!(
                        error = %e,
                        "Redis answers but the invalidations made while it was away could not \
                         be applied yet"
                    );
                    return;
                }
                replayed += 1;
            }
        }
        self.tiers.forget_all();
        tracing::info!(
            replayed,
            "Redis answers again; applied the invalidations made while it was away and serving \
             from it"
        );
    }

    /// Applies `invalidation` to Redis and memory and announces it to the other instances;
    /// on a Redis failure, `None` after the switch to memory, for memory to apply it.
    async fn invalidate(&self, invalidation: &Invalidation) -> Option<u64> {
        if !self.on_redis() {
            return None;
        }
        match self.tiers.invalidate(invalidation).await {
            Ok(removed) => {
                if let Err(e) = self.tiers.announce(invalidation.clone()).await {
                    // Applied on Redis, but not in the other instances' first tiers.
                    self.switch_to_memory(&e);
                    self.defer(invalidation);
                }
                Some(removed)
            }
            Err(e) => {
                self.switch_to_memory(&e);
                None
            }
        }
    }

    /// Keeps an invalidation for recovery to apply to Redis; false when Redis serves again
    /// by now, and the caller must apply it there itself.
    fn defer(&self, invalidation: &Invalidation) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if self.on_redis() {
            return false;
        }
        pending.add(invalidation);
        true
    }

    /// Applies `invalidation` to Redis (and the other instances' first tiers), or, while
    /// Redis is away, to memory, keeping it for recovery; returns how many entries it removed
    /// from the backend that serves.
    async fn invalidated(&self, invalidation: Invalidation) -> u64 {
        loop {
            if let Some(removed) = self.invalidate(&invalidation).await {
                return removed;
            }
            let memory = self.memory();
            // Infallible: memory always removes.
            let removed = match &invalidation {
                Invalidation::Keys(keys) => memory.delete_many(keys).await,
                Invalidation::Pattern(pattern) => memory.delete_matching(pattern).await,
                Invalidation::All => memory.clear().await,
            }
            .unwrap_or(0);
            if self.defer(&invalidation) {
                return removed;
            }
        }
    }
}

#[async_trait]
impl Cache for FallbackCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            return shared.tiers.get(key).await.map_err(|e| shared.suspect(&e));
        }
        shared.memory().get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            if let Some(values) = shared.tiers.all_in_first_tier(keys).await {
                return Ok(values);
            }
            // Boxed: only a lookup that goes to Redis carries the Redis command's state.
            return Box::pin(shared.tiers.get_many(keys))
                .await
                .map_err(|e| shared.suspect(&e));
        }
        shared.memory().get_many(keys).await
    }

    /// Only while Redis serves with its first tier: memory standing in hears nothing of the
    /// other instances' writes.
    fn coherence(&self) -> Option<Coherence> {
        let shared = &self.shared;
        shared
            .on_redis()
            .then(|| shared.tiers.coherence())
            .flatten()
    }

    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            return shared
                .tiers
                .put(key, value, retain_for)
                .await
                .map_err(|e| shared.suspect(&e));
        }
        shared.memory().put(key, value, retain_for).await
    }

    /// From Redis, where generations are shared by every instance; from memory while it
    /// stands in.
    async fn get_or_put_many(
        &self,
        keys: &[String],
        value: Bytes,
        retain_for: Duration,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            return shared
                .tiers
                .redis()
                .get_or_put_many(keys, value, retain_for)
                .await
                .map_err(|e| shared.suspect(&e));
        }
        shared
            .memory()
            .get_or_put_many(keys, value, retain_for)
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let removed = self
            .shared
            .invalidated(Invalidation::Keys(vec![key.to_owned()]))
            .await;
        Ok(removed > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64, CacheError> {
        Ok(self
            .shared
            .invalidated(Invalidation::Keys(keys.to_vec()))
            .await)
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        Ok(self
            .shared
            .invalidated(Invalidation::Pattern(pattern.to_owned()))
            .await)
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        Ok(self.shared.invalidated(Invalidation::All).await)
    }

    /// On Redis, its lease, shared by every instance; on memory, always granted.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            return shared
                .tiers
                .redis()
                .try_lease(key, ttl)
                .await
                .map_err(|e| shared.suspect(&e));
        }
        shared.memory().try_lease(key, ttl).await
    }

    async fn release_lease(&self, key: &str) -> Result<(), CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            return shared
                .tiers
                .redis()
                .release_lease(key)
                .await
                .map_err(|e| shared.suspect(&e));
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
            faults: CacheFaults {
                failed_commands: self.shared.failed_commands.load(Ordering::Relaxed),
                fallbacks: self.shared.fallbacks.load(Ordering::Relaxed),
                unconfirmed_invalidations: self.shared.tiers.unconfirmed(),
            },
        }
    }
}
