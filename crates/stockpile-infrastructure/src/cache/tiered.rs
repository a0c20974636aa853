//! The two-tier cache: this process's memory as a first tier (L1) in front of Redis, kept
//! coherent across instances by [`Invalidation`]s published on a Redis channel.
//!
//! While Redis serves, a hot key costs no round trip: `get` reads memory first and, on a miss
//! there, Redis (`GET` and `PTTL` in one round trip), filling memory for what the Redis entry has
//! left, at most the memory cache's TTL cap; `put` stores in both. Invalidations (`delete`,
//! `delete_matching`, `clear`) go to both, and are then published on the channel
//! `<prefix>__invalidate` (see [`super::invalidation`] for the messages), to which every
//! instance subscribes on a dedicated pub/sub connection, in a task owned by the cache and
//! stopped when it is dropped; each applies the others' invalidations to its own memory.
//!
//! - The first tier is used only while the subscription stands: when it drops, memory is
//!   cleared and reads go to Redis; the task subscribes again by itself (backing off from
//!   50 ms to 2 s) and clears memory once more when it has, since the invalidations published
//!   meanwhile are lost. At start, the first subscription is made before the cache is handed
//!   out when Redis answers, so the first tier serves from the first request.
//! - A fill that raced an invalidation is undone: every invalidation applied to memory moves
//!   an epoch first, and a fill that saw the epoch move between its read of Redis and its
//!   insert removes what it inserted.
//! - An invalidation is announced only once it is applied everywhere: every receiver
//!   confirms each payload after applying it, and [`TwoTier::announce`] returns when all of
//!   them did ([`super::acknowledgements`]), so that a read on another instance right after a
//!   write's answer cannot find the older entry in that instance's memory. The wait is bounded
//!   (ten command timeouts); one that runs out is logged and counted
//!   (`unconfirmed_invalidations`), and the instances that did not confirm may serve the older
//!   entry for at most the TTL cap, as may one whose subscription is silently cut without its
//!   connection closing.
//! - A message that is not an invalidation clears the first tier: forgetting everything is
//!   always safe.
//!
//! What happens when Redis fails is not decided here: every Redis error is returned, and
//! [`super::failover`] decides.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bb8_redis::redis::aio::PubSub;
use bytes::Bytes;
use futures::StreamExt;
use stockpile_application::ports::{Cache, CacheError, Coherence};

use super::acknowledgements::Acknowledgements;
use super::invalidation::{Invalidation, Message};
use super::memory::MemoryCache;
use super::redis::{RedisCache, Shard};

/// The first wait before subscribing again after the subscription dropped; doubled per
/// failed attempt up to [`RESUBSCRIBE_MAX_BACKOFF`].
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Redis, and memory as its first tier.
#[derive(Debug)]
pub(super) struct TwoTier {
    redis: RedisCache,
    memory: MemoryCache,
    /// True while the invalidation subscription stands, and so while memory may serve as
    /// the first tier.
    subscribed: AtomicBool,
    /// Moved by every invalidation applied to memory, before it is applied; see
    /// [`TwoTier::fill`].
    epoch: AtomicU64,
    /// Tells this instance's messages from the others'.
    origin: String,
    /// `<prefix>__invalidate`, told apart from this instance's confirmations on its messages.
    invalidation_channel: String,
    /// Where the invalidation subscription listens, and so where invalidations are
    /// published: there `PUBLISH` counts the receivers whose confirmations to await.
    listening_on: Mutex<Shard>,
    acknowledgements: Acknowledgements,
    /// Announcements not confirmed by every receiver in time.
    unconfirmed: AtomicU64,
}

/// What the subscriber task needs from the cache that owns the tiers.
pub(super) trait TierOwner: Send + Sync + 'static {
    fn tiers(&self) -> &TwoTier;
    /// Whether Redis serves now, so that memory is its first tier rather than standing in
    /// for it (and must then be kept).
    fn on_redis(&self) -> bool;
}

impl TwoTier {
    pub(super) fn new(redis: RedisCache, memory: MemoryCache) -> Self {
        Self {
            invalidation_channel: redis.invalidation_channel(),
            redis,
            memory,
            subscribed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            origin: super::redis::instance_token(),
            listening_on: Mutex::new(Shard::Whole),
            acknowledgements: Acknowledgements::default(),
            unconfirmed: AtomicU64::new(0),
        }
    }

    /// Announcements whose receivers did not all confirm them in time.
    pub(super) fn unconfirmed(&self) -> u64 {
        self.unconfirmed.load(Ordering::Relaxed)
    }

    pub(super) fn redis(&self) -> &RedisCache {
        &self.redis
    }

    pub(super) fn memory(&self) -> &MemoryCache {
        &self.memory
    }

    /// Subscribes to the invalidations now, within the connect and command timeouts; on
    /// success memory serves as the first tier at once (it holds nothing yet, so there is
    /// nothing to clear). Hand what it returns to [`subscriber`].
    pub(super) async fn subscribe_first(&self) -> Option<PubSub> {
        let pubsub = self.subscribe().await.ok()?;
        self.subscribed.store(true, Ordering::SeqCst);
        Some(pubsub)
    }

    /// A new subscription to the invalidations and this instance's confirmations, noting
    /// where it listens.
    async fn subscribe(&self) -> Result<PubSub, CacheError> {
        let (pubsub, shard) = self.redis.subscribe_invalidations(&self.origin).await?;
        *self
            .listening_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = shard;
        Ok(pubsub)
    }

    /// Reads memory first while it serves as the first tier, then Redis.
    ///
    /// # Errors
    /// Redis's.
    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        if !self.first_tier() {
            return self.redis.get(key).await;
        }
        if let Some(value) = self.memory.get(key).await? {
            return Ok(Some(value));
        }
        let epoch = self.epoch();
        Ok(match self.redis.get_with_ttl(key).await? {
            Some((value, left)) => {
                let left = left.unwrap_or(super::LONGEST_TTL);
                self.fill(key, value.clone(), left, epoch).await;
                Some(value)
            }
            None => None,
        })
    }

    /// The values of `keys` when the first tier serves and holds every one of them: a hit
    /// that needs no Redis round trip. Kept apart from [`TwoTier::get_many`] so that a hit's
    /// future holds no Redis command (moving one, kilobytes, showed in the hit path's profile).
    pub(super) async fn all_in_first_tier(&self, keys: &[String]) -> Option<Vec<Option<Bytes>>> {
        if !self.first_tier() {
            return None;
        }
        let values = self.memory.get_many(keys).await.ok()?;
        values.iter().all(Option::is_some).then_some(values)
    }

    /// The values of `keys`, in their order, as [`TwoTier::get`] would answer each: from
    /// memory while it serves as the first tier, with the keys it lacks asked of Redis in one
    /// round trip (and filled in memory); from Redis alone otherwise.
    ///
    /// # Errors
    /// Redis's.
    pub(super) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if !self.first_tier() {
            return self.redis.mget(keys).await;
        }
        let mut values = self.memory.get_many(keys).await?;
        let lacking: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
        if lacking.is_empty() {
            return Ok(values);
        }
        let lacking_keys: Vec<String> = lacking.iter().map(|i| keys[*i].clone()).collect();
        let epoch = self.epoch();
        let found = self.redis.mget_with_ttl(&lacking_keys).await?;
        for (index, found) in lacking.into_iter().zip(found) {
            if let Some((value, left)) = found {
                let left = left.unwrap_or(super::LONGEST_TTL);
                self.fill(&keys[index], value.clone(), left, epoch).await;
                values[index] = Some(value);
            }
        }
        Ok(values)
    }

    /// Stores in Redis, then in the first tier.
    ///
    /// # Errors
    /// Redis's.
    pub(super) async fn put(
        &self,
        key: &str,
        value: Bytes,
        retain_for: Duration,
    ) -> Result<(), CacheError> {
        let epoch = self.epoch();
        self.redis.put(key, value.clone(), retain_for).await?;
        if self.first_tier() {
            self.fill(key, value, retain_for, epoch).await;
        }
        Ok(())
    }

    /// Applies `invalidation` to Redis, then to memory; returns how many entries Redis held.
    /// The other instances learn of it from [`TwoTier::announce`].
    ///
    /// # Errors
    /// Redis's; memory is then left as it was.
    pub(super) async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, CacheError> {
        let removed = match invalidation {
            Invalidation::Keys(keys) => self.redis.unlink_each(keys).await?,
            Invalidation::Pattern(pattern) => self.redis.delete_matching(pattern).await?,
            Invalidation::All => self.redis.clear().await?,
        };
        self.apply(invalidation).await;
        Ok(removed)
    }

    /// Publishes an invalidation already applied here to the other instances, and waits
    /// (boundedly) until every one that received it confirms that it applied it too.
    ///
    /// # Errors
    /// Redis's, when the publishing fails; confirmations that do not come are counted.
    pub(super) async fn announce(&self, invalidation: Invalidation) -> Result<(), CacheError> {
        let awaited = self.acknowledgements.expect(invalidation.payloads());
        let message = Message {
            origin: self.origin.clone(),
            id: awaited.first_id(),
            invalidation,
        };
        let shard = self
            .listening_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let receivers = self
            .redis
            .publish_invalidations(&message.encode(), &shard)
            .await?;
        if receivers == 0 {
            return Ok(());
        }
        let patience = self.redis.patience();
        // Without its subscription this instance cannot hear the confirmations.
        let confirmed =
            self.subscribed.load(Ordering::SeqCst) && awaited.all(receivers, patience).await;
        if !confirmed {
            self.unconfirmed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                receivers,
                patience_ms = patience.as_millis(),
                "not every instance confirmed a cache invalidation in time; those that did not \
                 may serve the older entry from memory for up to CACHE_LOCAL_TTL (is one of \
                 them overloaded, or cut off from Redis?)"
            );
        }
        Ok(())
    }

    /// Empties memory, after moving the epoch so that no fill under way keeps its entry.
    pub(super) fn forget_all(&self) {
        self.bump();
        self.memory.clear_now();
    }

    /// Applies an invalidation to memory.
    async fn apply(&self, invalidation: &Invalidation) {
        self.bump();
        match invalidation {
            Invalidation::Keys(keys) => {
                for key in keys {
                    self.memory.forget(key);
                }
            }
            Invalidation::Pattern(pattern) => {
                // Infallible: memory always removes.
                let _ = self.memory.delete_matching(pattern).await;
            }
            Invalidation::All => self.memory.clear_now(),
        }
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

    /// While the first tier serves, the epoch vouches for Redis too: every invalidation of
    /// Redis, this instance's or another's, is applied to memory here, moving the epoch,
    /// before the write that made it is answered. Without the first tier nothing here hears
    /// of other instances' writes.
    pub(super) fn coherence(&self) -> Option<Coherence> {
        self.first_tier().then(|| Coherence {
            mark: self.epoch(),
            for_at_most: self.memory.longest_life(),
        })
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
            self.memory.forget(key);
        }
    }

    /// `on_redis`: whether memory is the first tier now, and so to be cleared.
    fn on_subscribed(&self, on_redis: bool) {
        // Invalidations published while unsubscribed are lost: start over.
        self.bump();
        if on_redis {
            self.memory.clear_now();
        }
        self.subscribed.store(true, Ordering::SeqCst);
        tracing::info!("subscribed to cache invalidations again; the first tier serves");
    }

    fn on_unsubscribed(&self, on_redis: bool) {
        self.subscribed.store(false, Ordering::SeqCst);
        // Its node may be gone; until the next subscription, publish wherever the client routes.
        *self
            .listening_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Shard::Whole;
        self.bump();
        if on_redis {
            self.memory.clear_now();
        }
        tracing::warn!(
            "the cache invalidation subscription dropped; reading Redis directly until it is back"
        );
    }

    /// Takes in one message of the subscription: a confirmation of this instance's own
    /// invalidations is counted; another instance's invalidation is applied to memory and its
    /// confirmation returned, for the caller to send; a payload that is none clears memory.
    async fn receive(&self, channel: &str, payload: &[u8]) -> Option<(String, u64)> {
        if channel != self.invalidation_channel {
            match std::str::from_utf8(payload)
                .ok()
                .and_then(|id| id.parse().ok())
            {
                Some(id) => self.acknowledgements.confirm(id),
                None => tracing::warn!(
                    channel,
                    payload = %String::from_utf8_lossy(payload),
                    "not a confirmation of a cache invalidation; ignored"
                ),
            }
            return None;
        }
        match Message::parse(payload) {
            // Applied when it was made; its own subscription is one of the receivers.
            Ok(message) if message.origin == self.origin => {
                self.acknowledgements.confirm(message.id);
                None
            }
            Ok(message) => {
                self.apply(&message.invalidation).await;
                Some((message.origin, message.id))
            }
            Err(garbage) => {
                tracing::warn!(
                    payload = %garbage.0,
                    "unknown cache invalidation; clearing the first tier"
                );
                self.forget_all();
                None
            }
        }
    }
}

/// Tells the instance named `origin` that its invalidation payload `id` was applied here.
async fn confirm<O: TierOwner>(owner: Arc<O>, origin: String, id: u64) {
    if let Err(e) = owner.tiers().redis.confirm_invalidation(&origin, id).await {
        tracing::debug!(
            error = %e,
            "could not confirm a cache invalidation; its sender will count it unconfirmed"
        );
    }
}

/// Applies the other instances' invalidations to memory until the owner is dropped,
/// subscribing again, with a backoff, whenever the subscription drops.
pub(super) async fn subscriber<O: TierOwner>(owner: Weak<O>, mut first: Option<PubSub>) {
    let mut backoff = RESUBSCRIBE_BACKOFF;
    loop {
        let pubsub = if let Some(pubsub) = first.take() {
            pubsub
        } else {
            let Some(strong) = owner.upgrade() else {
                return;
            };
            let subscribed = strong.tiers().subscribe().await;
            match subscribed {
                Ok(pubsub) => {
                    strong.tiers().on_subscribed(strong.on_redis());
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
            let Some(strong) = owner.upgrade() else {
                return;
            };
            let received = strong
                .tiers()
                .receive(message.get_channel_name(), message.get_payload_bytes())
                .await;
            if let Some((origin, id)) = received {
                // Sent apart, so that the next invalidation is not held up by this round trip.
                tokio::spawn(confirm(strong, origin, id));
            }
        }
        let Some(strong) = owner.upgrade() else {
            return;
        };
        strong.tiers().on_unsubscribed(strong.on_redis());
        drop(strong);
        tokio::time::sleep(backoff).await;
    }
}
