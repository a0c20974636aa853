use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// What a cache reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    pub state: CacheState,
    /// How Redis is reached; `None` when no Redis is configured.
    pub topology: Option<RedisTopology>,
    /// The namespace every key lives under.
    pub key_prefix: String,
    /// What went wrong with Redis since the process started; zero without Redis.
    pub faults: CacheFaults,
}

/// Counters that tell a slow Redis from a dead one: many failed commands and no fallbacks is
/// a slow Redis; fallbacks are outages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheFaults {
    /// Redis commands that failed or missed their timeout; each was answered from the
    /// database instead.
    pub failed_commands: u64,
    /// Times memory took over because Redis was found unreachable.
    pub fallbacks: u64,
    /// Invalidations that some instance receiving them did not confirm in time: that
    /// instance may have served the older entry from its memory for up to `CACHE_LOCAL_TTL`.
    pub unconfirmed_invalidations: u64,
}

/// Where a cache stands: each state names the backend it concerns, so none can contradict
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Caching is switched off (`CACHE_BACKEND=none`): every read bypasses the cache.
    Off,
    /// The configured backend serves and answers.
    Serving(CacheBackend),
    /// The configured backend does not answer and nothing stands in for it: reads bypass.
    Unreachable(CacheBackend),
    /// The configured Redis does not answer; in-process memory serves until it returns.
    FallenBack,
}

impl CacheState {
    /// The backend answering reads now, if any.
    pub fn serving(self) -> Option<CacheBackend> {
        match self {
            Self::Serving(backend) => Some(backend),
            Self::FallenBack => Some(CacheBackend::Memory),
            Self::Off | Self::Unreachable(_) => None,
        }
    }
}

/// A kind of cache backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    Redis,
    Memory,
}

/// How the Redis backend is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (or a proxy in front of several).
    Standalone,
    /// A primary found through Redis Sentinel.
    Sentinel,
    /// Redis Cluster.
    Cluster,
}

/// A cache's word that what it answers has not changed since it gave this mark, but by
/// expiry, for at most `for_at_most` after the mark was read: every invalidation the process
/// applies, its own writes' and (through the first tier's invalidation channel) every other
/// instance's, moves the mark first. Lets a caller reuse an answer it assembled from several
/// entries without looking each one up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coherence {
    pub mark: u64,
    /// How long an answer read under the mark may be reused while the mark stands: as long
    /// as the cache itself would keep serving an entry from this process's memory.
    pub for_at_most: Duration,
}

/// Why a cache operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Caching is switched off: nothing is stored, every read bypasses the cache.
    #[error("caching is switched off")]
    Disabled,
    /// The backend did not answer in time or refused the command.
    #[error("the cache backend is unavailable: {0}")]
    Unavailable(String),
}

/// A key-value store of serialised answers with expiry, confined to one key prefix.
///
/// Keys and patterns are relative to the prefix: the adapter adds it, and no operation may
/// read, list or delete anything outside it. Patterns are Redis glob patterns.
///
/// # Errors
/// - MUST return [`CacheError::Disabled`] from every operation when caching is switched off.
/// - MUST return [`CacheError::Unavailable`] instead of waiting longer than its command timeout.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// The stored value, or `None` when there is none (or it expired).
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;

    /// The stored values of `keys`, in their order, in one round trip to the backend (Redis:
    /// one pipeline of `GET`s): a batch read must not cost a round trip per key. An error
    /// concerns the whole batch.
    ///
    /// The default asks [`Cache::get`] key by key, which is right for a cache in this process.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    /// Stores the value for `retain_for`.
    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError>;

    /// What `keys` hold, in their order, after `value` was stored for `retain_for` under each
    /// that held nothing, in one round trip to the backend (Redis: one pipeline of one-key
    /// scripts, each atomic, so two instances asking at once get the same answer). `None`
    /// for a key that was removed between the two steps of a backend that cannot do both at
    /// once. Redis also keeps a key that was there for `retain_for` from now.
    ///
    /// This is how a load learns the generation its entry will carry (see
    /// [`crate::cache_keys`]); the default, for a cache in this process, reads and stores key by
    /// key: two loads racing there at worst start two generations one after the other, which
    /// costs a miss, never a stale answer.
    async fn get_or_put_many(
        &self,
        keys: &[String],
        value: Bytes,
        retain_for: Duration,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let held = match self.get(key).await? {
                Some(held) => held,
                None => {
                    self.put(key, value.clone(), retain_for).await?;
                    value.clone()
                }
            };
            values.push(Some(held));
        }
        Ok(values)
    }

    /// Removes the key; true when there was one.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Removes `keys` in one round trip to the backend (Redis: one pipeline of one-key
    /// `UNLINK`s, so a Cluster never answers `CROSSSLOT`); returns how many there were. What
    /// [`Cache::delete`] promises for one key holds for each: other instances' first tiers
    /// forget them too. The default, for a cache in this process, deletes key by key.
    async fn delete_many(&self, keys: &[String]) -> Result<u64, CacheError> {
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.delete(key).await?);
        }
        Ok(removed)
    }

    /// Removes every key matching the pattern; returns how many.
    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError>;

    /// Removes every key under the prefix (never anything else); returns how many.
    async fn clear(&self) -> Result<u64, CacheError>;

    /// Claims, for at most `ttl`, the right to load the entry under `key` across every
    /// instance sharing this cache: `Ok(true)` when this instance now holds the lease,
    /// `Ok(false)` while another holds it (it will store the entry, or release the lease, or
    /// let it expire). The lease is kept apart from the entry itself (Redis: `SET
    /// <prefix>lease:<key> <token> NX PX <ttl>`, with a token of this cache's own).
    ///
    /// A cache private to one process (memory) always grants it, as this default does:
    /// in-process single flight already makes one load per key there. Callers treat an error
    /// as a granted lease (load), never as a reason to wait.
    async fn try_lease(&self, _key: &str, _ttl: Duration) -> Result<bool, CacheError> {
        Ok(true)
    }

    /// Gives up the lease on `key` if this cache still holds it; never one that expired and
    /// was taken by another instance since. Best effort: a lease not released expires. The
    /// default, for a cache private to one process, has nothing to give up.
    async fn release_lease(&self, _key: &str) -> Result<(), CacheError> {
        Ok(())
    }

    /// The mark under which answers read now may be reused, when this cache can vouch for
    /// one; `None` (the default) when it cannot, as a Redis shared with other instances cannot
    /// without a first tier that hears their invalidations. Costs no more than an atomic read.
    fn coherence(&self) -> Option<Coherence> {
        None
    }

    /// Where the cache stands now.
    async fn status(&self) -> CacheStatus;
}
