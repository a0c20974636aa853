//! An in-memory [`Cache`] for tests above the adapters: it keeps entries until deleted
//! (freshness lives inside the entry), can be off or down, and counts what it was asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheState, CacheStatus, RedisTopology,
};

/// How the fake cache behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Stores and serves entries.
    Working,
    /// Switched off: every operation says `Disabled`, so reads bypass it.
    Off,
    /// Unreachable: every operation fails.
    Down,
}

#[derive(Debug)]
pub struct FakeCache {
    mode: CacheMode,
    /// What [`Cache::status`] reports: `"redis"`, `"none"`, else memory.
    backend: &'static str,
    entries: Mutex<HashMap<String, Bytes>>,
    operations: AtomicUsize,
}

impl FakeCache {
    pub fn new(mode: CacheMode, backend: &'static str) -> Self {
        Self {
            mode,
            backend,
            entries: Mutex::default(),
            operations: AtomicUsize::new(0),
        }
    }

    /// How many operations it was asked for, failed ones included.
    pub fn operations(&self) -> usize {
        self.operations.load(Ordering::SeqCst)
    }

    /// Stores a placeholder entry under `key`, as if something had cached it.
    pub fn insert(&self, key: &str) {
        self.entries()
            .insert(key.to_owned(), Bytes::from_static(b"x"));
    }

    fn entry(&self, key: &str) -> Option<Bytes> {
        self.entries().get(key).cloned()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Bytes>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self) -> Result<(), CacheError> {
        self.operations.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            CacheMode::Working => Ok(()),
            CacheMode::Off => Err(CacheError::Disabled),
            CacheMode::Down => Err(CacheError::Unavailable("10.0.0.7:6379 refused".into())),
        }
    }
}

/// Matches the only glob shapes the tests use: an exact key, or a prefix then `*`.
fn glob_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == pattern,
    }
}

#[async_trait]
impl Cache for FakeCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.check()?;
        Ok(self.entry(key))
    }

    /// One operation for the whole batch, as a real backend's one round trip.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.check()?;
        Ok(keys.iter().map(|key| self.entry(key)).collect())
    }

    async fn put(&self, key: &str, value: Bytes, _retain_for: Duration) -> Result<(), CacheError> {
        self.check()?;
        self.entries().insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.check()?;
        Ok(self.entries().remove(key).is_some())
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        self.check()?;
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|key, _| !glob_matches(pattern, key));
        Ok((before - entries.len()) as u64)
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.check()?;
        let mut entries = self.entries();
        let count = entries.len() as u64;
        entries.clear();
        Ok(count)
    }

    async fn try_lease(&self, _key: &str, _ttl: Duration) -> Result<bool, CacheError> {
        self.check()?;
        Ok(true)
    }

    async fn release_lease(&self, _key: &str) -> Result<(), CacheError> {
        self.check()
    }

    async fn status(&self) -> CacheStatus {
        cache_status(self.backend)
    }
}

/// The status of a cache serving from `backend` (`"redis"`, `"none"`, else memory).
pub fn cache_status(backend: &str) -> CacheStatus {
    let (state, topology) = match backend {
        "none" => (CacheState::Off, None),
        "redis" => (
            CacheState::Serving(CacheBackend::Redis),
            Some(RedisTopology::Standalone),
        ),
        _ => (CacheState::Serving(CacheBackend::Memory), None),
    };
    CacheStatus {
        state,
        topology,
        key_prefix: "stockpile:".to_owned(),
        faults: Default::default(),
    }
}
