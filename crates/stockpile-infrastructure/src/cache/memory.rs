//! The in-process cache: the backend of `CACHE_BACKEND=memory`, and the stand-in for Redis
//! while it is unreachable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use quick_cache::sync::{Cache as Store, DefaultLifecycle};
use quick_cache::Weighter;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheState, CacheStatus, Coherence,
};

use super::glob::Glob;
use super::LONGEST_TTL;

/// A stored value and the moment it expires.
#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    /// The store evicts by weight only: an entry past this moment is not served, and goes
    /// when it is evicted or replaced.
    expires_at: Instant,
}

impl Entry {
    fn live_at(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// An entry weighs its key's and its value's bytes.
#[derive(Debug, Clone, Copy)]
struct Bytesize;

impl Weighter<String, Entry> for Bytesize {
    fn weight(&self, key: &String, entry: &Entry) -> u64 {
        u64::try_from(key.len() + entry.value.len()).unwrap_or(u64::MAX)
    }
}

type Entries =
    Store<String, Entry, Bytesize, foldhash::fast::RandomState, DefaultLifecycle<String, Entry>>;

/// What an entry weighs on average, for sizing the store's tables: a detail is half a
/// kilobyte, a history tens of kilobytes.
const TYPICAL_ENTRY_BYTES: u64 = 2 * 1024;

/// A cache in this process's memory, bounded by bytes, with a lifetime per entry.
///
/// Keys are stored as given, without the prefix: the store is private to the process, so no
/// other application's keys can be in it. The prefix is only reported in the status.
#[derive(Clone)]
pub struct MemoryCache {
    entries: Arc<Entries>,
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
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl MemoryCache {
    /// The default bound on the bytes of keys and values held: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

    /// A cache holding at most `max_bytes` of keys and values; the least valuable entries are
    /// evicted beyond that.
    pub fn new(key_prefix: impl Into<String>, max_bytes: u64) -> Self {
        // quick_cache rather than moka: a read there is a hash, a shard's read lock and a
        // probe, where moka's also logged the read for its housekeeping, which was a third of
        // a first-tier hit's lookup in the profile. foldhash rather than std's SipHash:
        // hashing the key was a fifth of a lookup's cost. Its seed is random per process, so
        // clients cannot choose keys that collide.
        let estimated_entries = usize::try_from(max_bytes / TYPICAL_ENTRY_BYTES)
            .unwrap_or(usize::MAX)
            .max(1);
        let entries = Arc::new(Entries::with(
            estimated_entries,
            max_bytes,
            Bytesize,
            foldhash::fast::RandomState::default(),
            DefaultLifecycle::default(),
        ));
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
        self.entries.clear();
    }

    /// Drops one entry without counting it; for the first tier, whose invalidations only
    /// need the entry gone.
    pub(crate) fn forget(&self, key: &str) {
        self.removing();
        self.entries.remove(key);
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
        self.entries
            .remove(key)
            .is_some_and(|(_, entry)| entry.live_at(Instant::now()))
    }

    /// The value under `key` while it lives at `now`.
    fn live(&self, key: &str, now: Instant) -> Option<Bytes> {
        self.entries
            .get(key)
            .filter(|entry| entry.live_at(now))
            .map(|entry| entry.value)
    }

    /// Every key held, live or not; collected first, since removing while iterating would
    /// skip or revisit entries.
    fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|(key, _)| key)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.live(key, Instant::now()))
    }

    /// Each key straight from the map: every first-tier hit asks for two keys (the entry and
    /// its generation), and going through [`Cache::get`] boxed a future per key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let now = Instant::now();
        Ok(keys.iter().map(|key| self.live(key, now)).collect())
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
        let keys = self.keys().filter(|key| glob.matches(key)).collect();
        Ok(self.remove_all(keys))
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.removing();
        let keys = self.keys().collect();
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
