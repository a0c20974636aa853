//! The in-process cache: the backend of `CACHE_BACKEND=memory`, and the stand-in for Redis
//! while it is unreachable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::sync::Cache as Moka;
use moka::Expiry;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheState, CacheStatus, Coherence,
};

use super::glob::Glob;
use super::LONGEST_TTL;

/// A stored value and the moment it expires.
#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    /// Kept beside the value because moka hands back an expired entry on `remove` until its
    /// housekeeping has run; `delete` must not count such an entry as removed.
    expires_at: Instant,
}

/// Gives each entry its own lifetime, fixed when it is stored.
struct UntilExpiry;

impl Expiry<String, Entry> for UntilExpiry {
    fn expire_after_create(&self, _key: &String, entry: &Entry, now: Instant) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }
}

/// A cache in this process's memory, bounded by bytes, with a lifetime per entry.
///
/// Keys are stored as given, without the prefix: the store is private to the process, so no
/// other application's keys can be in it. The prefix is only reported in the status.
#[derive(Clone)]
pub struct MemoryCache {
    entries: Moka<String, Entry, foldhash::fast::RandomState>,
    key_prefix: String,
    /// The longest any entry lives, whatever the caller asks. Set when memory stands in for
    /// Redis: other instances cannot reach this memory to invalidate it, so its entries must
    /// go stale quickly (`CACHE_LOCAL_TTL`).
    max_ttl: Option<Duration>,
    /// Moved before every removal, found or not: the mark of [`Cache::coherence`].
    removals: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("key_prefix", &self.key_prefix)
            .field("max_ttl", &self.max_ttl)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryCache {
    /// The default bound on the bytes of keys and values held: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

    /// A cache holding at most `max_bytes` of keys and values; the least valuable entries are
    /// evicted beyond that.
    pub fn new(key_prefix: impl Into<String>, max_bytes: u64) -> Self {
        let entries = Moka::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(UntilExpiry)
            // foldhash rather than std's SipHash: hashing the key was a fifth of a lookup's
            // cost in the hit path's profile. Its seed is random per process, so clients
            // cannot choose keys that collide.
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            entries,
            key_prefix: key_prefix.into(),
            max_ttl: None,
            removals: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Caps the lifetime of every entry at `max_ttl`.
    #[must_use]
    pub fn with_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = Some(max_ttl);
        self
    }

    /// Whether every entry would expire as it is stored (a lifetime cap of zero).
    pub(crate) fn keeps_nothing(&self) -> bool {
        self.max_ttl.is_some_and(|cap| cap.is_zero())
    }

    /// The longest an entry lives here.
    pub(crate) fn longest_life(&self) -> Duration {
        self.max_ttl.map_or(LONGEST_TTL, |cap| cap.min(LONGEST_TTL))
    }

    /// Drops every entry without counting them; for switching between backends, where the
    /// count does not matter and waiting for one would hold up the switch.
    pub(crate) fn clear_now(&self) {
        self.removing();
        self.entries.invalidate_all();
    }

    /// Drops one entry without counting it; for the first tier, whose invalidations only
    /// need the entry gone.
    pub(crate) fn forget(&self, key: &str) {
        self.removing();
        self.entries.invalidate(key);
    }

    /// Moves the mark before a removal, so that a reader who read the mark before the removal
    /// sees it moved once the removal is done.
    fn removing(&self) {
        self.removals.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes the keys, counting those that held a live entry.
    fn remove_all(&self, keys: Vec<String>) -> u64 {
        let mut removed = 0;
        for key in keys {
            if self.remove_live(&key) {
                removed += 1;
            }
        }
        removed
    }

    fn remove_live(&self, key: &str) -> bool {
        // `remove` also hands back an entry that `invalidate_all` (`clear_now`) dropped but
        // moka's housekeeping has not yet removed; `contains_key` knows it is gone.
        let live = self.entries.contains_key(key);
        self.entries
            .remove(key)
            .is_some_and(|entry| live && entry.expires_at > Instant::now())
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.entries.get(key).map(|entry| entry.value))
    }

    /// Each key straight from the map: every first-tier hit asks for two keys (the entry and
    /// its generation), and going through [`Cache::get`] boxed a future per key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.entries.get(key).map(|entry| entry.value));
        }
        Ok(values)
    }

    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError> {
        let retain_for = self
            .max_ttl
            .map_or(retain_for, |cap| retain_for.min(cap))
            .min(LONGEST_TTL);
        let expires_at = Instant::now() + retain_for;
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.removing();
        Ok(self.remove_live(key))
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        self.removing();
        let glob = Glob::new(pattern);
        // Collected first: removing while iterating would skip or revisit entries.
        let keys = self
            .entries
            .iter()
            .filter(|(key, _)| glob.matches(key))
            .map(|(key, _)| key.as_ref().clone())
            .collect();
        Ok(self.remove_all(keys))
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.removing();
        let keys = self
            .entries
            .iter()
            .map(|(key, _)| key.as_ref().clone())
            .collect();
        Ok(self.remove_all(keys))
    }

    /// Only removals change what a fresh entry answers here: an entry is stored anew only
    /// after it expired or was removed (a write removes its generations first).
    fn coherence(&self) -> Option<Coherence> {
        (!self.keeps_nothing()).then(|| Coherence {
            mark: self.removals.load(Ordering::SeqCst),
            for_at_most: self.longest_life(),
        })
    }

    async fn status(&self) -> CacheStatus {
        CacheStatus {
            state: CacheState::Serving(CacheBackend::Memory),
            topology: None,
            key_prefix: self.key_prefix.clone(),
            faults: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_byte_bound_evicts() {
        let max_bytes = 64 * 1024;
        let cache = MemoryCache::new("stockpile:", max_bytes);
        let value = Bytes::from(vec![b'x'; 1024]);
        let keys: Vec<String> = (0..256).map(|i| format!("stocks:detail:T{i:03}")).collect();
        for key in &keys {
            cache
                .put(key, value.clone(), Duration::from_secs(60))
                .await
                .expect("accepted");
        }
        // moka evicts in batches (every 64 writes or reads): until its housekeeping has run, the
        // last writes are held beyond the bound.
        cache.entries.run_pending_tasks();
        let mut held = 0;
        for key in &keys {
            if cache.get(key).await.expect("answers").is_some() {
                held += 1;
            }
        }
        let entry_bytes = u64::try_from(keys[0].len() + value.len()).expect("small");
        assert!(held > 0, "some entries stay");
        assert!(
            held * entry_bytes <= max_bytes,
            "{held} entries of {entry_bytes} bytes exceed {max_bytes} bytes"
        );
    }
}
