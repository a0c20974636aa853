//! Redis first, memory while Redis is away: the cache of `CACHE_BACKEND=auto` and `redis`.
//! While Redis serves, memory is also its first tier (L1), kept coherent across instances by
//! invalidations published on a Redis channel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::redis::aio::PubSub;
use bytes::Bytes;
use futures::StreamExt;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheState, CacheStatus, RedisTopology,
};
use tokio::task::JoinHandle;

use super::memory::MemoryCache;
use super::redis::RedisCache;

mod batch;

/// How often the probe pings Redis.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The first wait before subscribing again after the subscription dropped; doubled per
/// failed attempt up to [`RESUBSCRIBE_MAX_BACKOFF`].
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Serves from Redis, and from a [`MemoryCache`] while Redis does not answer.
///
/// - Any Redis error or timeout switches to memory at once, for every later operation; the
///   switch is logged once. An invalidation (`delete`, `delete_matching`, `clear`) that fails
///   on Redis switches too, and is then applied to memory, so that entries it should have
///   removed from Redis are never served.
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
///
/// # The first tier
///
/// While Redis serves, the same memory is a first tier in front of it, so that a hot key costs
/// no round trip: `get` reads memory first and, on a miss there, Redis (`GET` and `PTTL` in one
/// round trip), filling memory for what the Redis entry has left, at most the memory cache's
/// TTL cap; `put` stores in both. Invalidations (`delete`, `delete_matching`, `clear`) go to
/// both, and are then published on the channel `<prefix>__invalidate` (as `<origin> key <key>`,
/// `<origin> match <pattern>` or `<origin> clear`, relative to the prefix), to which every
/// instance subscribes on a dedicated pub/sub connection, in a task owned by the cache and
/// stopped when it is dropped; each applies the others' invalidations to its own memory.
///
/// - The first tier is used only while the subscription stands: when it drops, memory is
///   cleared and reads go to Redis; the task subscribes again by itself (backing off from
///   50 ms to 2 s) and clears memory once more when it has, since the invalidations published
///   meanwhile are lost. At start, the first subscription is made before `start` returns
///   when Redis answers, so the first tier serves from the first request.
/// - A fill that raced an invalidation is undone: every invalidation applied to memory moves
///   an epoch first, and a fill that saw the epoch move between its read of Redis and its
///   insert removes what it inserted.
/// - What remains is the delay of pub/sub delivery (the other instance's memory forgets the
///   entry about when the writer's `PUBLISH` returns, normally well under a millisecond on a
///   LAN), and, for a subscription that is silently cut without the connection closing,
///   entries living at most the TTL cap.
/// - A failed `PUBLISH` counts as a Redis failure: the cache switches to memory.
#[derive(Debug)]
pub struct FallbackCache {
    shared: Arc<Shared>,
    probe: JoinHandle<()>,
    subscriber: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    redis: RedisCache,
    memory: MemoryCache,
    /// Which backend serves. An atomic rather than a lock: operations only read it, and the
    /// only invariant between it and the stores is the one the recovery clear provides.
    on_redis: AtomicBool,
    /// True while the invalidation subscription stands, and so while memory may serve as
    /// the first tier.
    subscribed: AtomicBool,
    /// Moved by every invalidation applied to memory, before it is applied; see
    /// [`Shared::fill`].
    epoch: AtomicU64,
    /// Tells this instance's messages from the others'.
    origin: String,
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
            redis,
            memory,
            on_redis: AtomicBool::new(true),
            subscribed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            origin: super::redis::instance_token(),
        });
        let first = match shared.redis.ping().await {
            Ok(()) => shared.redis.subscribe_invalidations().await.ok(),
            Err(e) => {
                shared.switch_to_memory(&e);
                None
            }
        };
        if first.is_some() {
            // Memory holds nothing yet, so there is nothing to clear before it serves.
            shared.subscribed.store(true, Ordering::SeqCst);
        }
        let probe = tokio::spawn(probe(Arc::downgrade(&shared)));
        let subscriber = tokio::spawn(subscriber(Arc::downgrade(&shared), first));
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

/// Applies the other instances' invalidations to memory until the cache is dropped,
/// subscribing again, with a backoff, whenever the subscription drops.
async fn subscriber(shared: Weak<Shared>, mut first: Option<PubSub>) {
    let mut backoff = RESUBSCRIBE_BACKOFF;
    loop {
        let pubsub = if let Some(pubsub) = first.take() {
            pubsub
        } else {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            let subscribed = strong.redis.subscribe_invalidations().await;
            match subscribed {
                Ok(pubsub) => {
                    strong.on_subscribed();
                    backoff = RESUBSCRIBE_BACKOFF;
                    pubsub
                }
                Err(e) => {
                    drop(strong);
                    tracing::debug!(error = %e, "could not subscribe to cache invalidations yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RESUBSCRIBE_MAX_BACKOFF);
                    continue;
                }
            }
        };
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            match std::str::from_utf8(message.get_payload_bytes()) {
                Ok(payload) => strong.apply_remote(payload).await,
                Err(_) => tracing::warn!("ignored a cache invalidation that is not UTF-8"),
            }
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.on_unsubscribed();
        drop(strong);
        tokio::time::sleep(backoff).await;
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
        let answered = shared.redis.ping().await;
        match answered {
            Err(e) if shared.on_redis.load(Ordering::SeqCst) => shared.switch_to_memory(&e),
            Ok(()) if !shared.on_redis.load(Ordering::SeqCst) => shared.recover().await,
            _ => {}
        }
    }
}

impl Shared {
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
            self.bump();
            self.memory.clear_now();
        }
    }

    /// Clears the prefix in Redis, then serves from it again; see [`FallbackCache`] for why.
    async fn recover(&self) {
        match self.redis.clear().await {
            Ok(removed) => {
                self.bump();
                self.memory.clear_now();
                self.on_redis.store(true, Ordering::SeqCst);
                self.bump();
                self.memory.clear_now();
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

    fn on_redis(&self) -> bool {
        self.on_redis.load(Ordering::SeqCst)
    }

    /// Whether memory may serve as the first tier now. Never with `CACHE_LOCAL_TTL=0`: an
    /// entry would expire as it is filled, so looking in memory and filling it would only
    /// add a lookup, an insert and a `PTTL` to every Redis hit.
    fn first_tier(&self) -> bool {
        !self.memory.keeps_nothing() && self.subscribed.load(Ordering::SeqCst)
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Moves the epoch; called before every invalidation of memory.
    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Stores a value read from, or written to, Redis in memory, unless an invalidation was
    /// applied since `epoch` was read (before Redis was): it may have removed this very entry
    /// from memory before this insert, so the insert is undone. An invalidation that comes
    /// after the check removes the entry itself.
    async fn fill(&self, key: &str, value: Bytes, retain_for: Duration, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        // Infallible: memory always stores.
        let _ = self.memory.put(key, value, retain_for).await;
        if self.epoch() != epoch {
            self.memory.forget(key).await;
        }
    }

    fn on_subscribed(&self) {
        // Invalidations published while unsubscribed are lost: start over.
        self.bump();
        if self.on_redis() {
            self.memory.clear_now();
        }
        self.subscribed.store(true, Ordering::SeqCst);
        tracing::info!("subscribed to cache invalidations again; the first tier serves");
    }

    fn on_unsubscribed(&self) {
        self.subscribed.store(false, Ordering::SeqCst);
        self.bump();
        if self.on_redis() {
            self.memory.clear_now();
        }
        tracing::warn!(
            "the cache invalidation subscription dropped; reading Redis directly until it is back"
        );
    }

    /// Publishes an invalidation already applied to Redis and memory. A failure switches to
    /// memory, as any Redis failure does.
    async fn publish(&self, what: &str) {
        let message = format!("{} {what}", self.origin);
        if let Err(e) = self.redis.publish_invalidation(&message).await {
            self.switch_to_memory(&e);
        }
    }

    /// Applies another instance's invalidation to memory.
    async fn apply_remote(&self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        let (origin, kind, argument) = (parts.next(), parts.next(), parts.next());
        if origin == Some(self.origin.as_str()) {
            // Applied when it was made.
            return;
        }
        match (kind, argument) {
            (Some("key"), Some(key)) => {
                self.bump();
                self.memory.forget(key).await;
            }
            (Some("match"), Some(pattern)) => {
                self.bump();
                let _ = self.memory.delete_matching(pattern).await;
            }
            (Some("clear"), _) => {
                self.bump();
                self.memory.clear_now();
            }
            _ => {
                // Unknown: forgetting everything is always safe.
                tracing::warn!(
                    payload,
                    "unknown cache invalidation; clearing the first tier"
                );
                self.bump();
                self.memory.clear_now();
            }
        }
    }
}

#[async_trait]
impl Cache for FallbackCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            if !shared.first_tier() {
                match shared.redis.get(key).await {
                    Ok(value) => return Ok(value),
                    Err(e) => shared.switch_to_memory(&e),
                }
            } else if let Some(value) = shared.memory.get(key).await? {
                return Ok(Some(value));
            } else {
                let epoch = shared.epoch();
                match shared.redis.get_with_ttl(key).await {
                    Ok(Some((value, left))) => {
                        let left = left.unwrap_or(super::LONGEST_TTL);
                        shared.fill(key, value.clone(), left, epoch).await;
                        return Ok(Some(value));
                    }
                    Ok(None) => return Ok(None),
                    Err(e) => shared.switch_to_memory(&e),
                }
            }
        }
        shared.memory.get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.shared.get_many(keys).await
    }

    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            let epoch = shared.epoch();
            match shared.redis.put(key, value.clone(), retain_for).await {
                Ok(()) => {
                    if shared.first_tier() {
                        shared.fill(key, value, retain_for, epoch).await;
                    }
                    return Ok(());
                }
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory.put(key, value, retain_for).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.redis.delete(key).await {
                Ok(removed) => {
                    shared.bump();
                    shared.memory.forget(key).await;
                    shared.publish(&format!("key {key}")).await;
                    return Ok(removed);
                }
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory.delete(key).await
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.redis.delete_matching(pattern).await {
                Ok(removed) => {
                    shared.bump();
                    shared.memory.delete_matching(pattern).await?;
                    shared.publish(&format!("match {pattern}")).await;
                    return Ok(removed);
                }
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory.delete_matching(pattern).await
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.redis.clear().await {
                Ok(removed) => {
                    shared.bump();
                    shared.memory.clear_now();
                    shared.publish("clear").await;
                    return Ok(removed);
                }
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory.clear().await
    }

    /// On Redis, its lease, shared by every instance; on memory (or when Redis fails, which
    /// switches to memory as any failure does), always granted.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.redis.try_lease(key, ttl).await {
                Ok(granted) => return Ok(granted),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory.try_lease(key, ttl).await
    }

    async fn release_lease(&self, key: &str) -> Result<(), CacheError> {
        let shared = &self.shared;
        if shared.on_redis() {
            match shared.redis.release_lease(key).await {
                Ok(()) => return Ok(()),
                Err(e) => shared.switch_to_memory(&e),
            }
        }
        shared.memory.release_lease(key).await
    }

    /// The backend serving now; degraded while memory stands in for Redis.
    async fn status(&self) -> CacheStatus {
        let on_redis = self.shared.on_redis();
        CacheStatus {
            state: if on_redis {
                CacheState::Serving(CacheBackend::Redis)
            } else {
                CacheState::FallenBack
            },
            topology: Some(RedisTopology::Standalone),
            key_prefix: self.shared.redis.key_prefix().to_owned(),
        }
    }
}
