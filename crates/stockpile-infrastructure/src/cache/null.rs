//! The cache of `CACHE_BACKEND=none`: nothing is stored, every read bypasses it.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheError, CacheState, CacheStatus};

/// A cache that is switched off: every operation returns [`CacheError::Disabled`].
#[derive(Debug, Clone)]
pub struct NullCache {
    /// Only reported in the status, so that it reads the same whatever the backend.
    key_prefix: String,
}

impl NullCache {
    pub fn new(key_prefix: impl Into<String>) -> Self {
        Self {
            key_prefix: key_prefix.into(),
        }
    }
}

#[async_trait]
impl Cache for NullCache {
    async fn get(&self, _key: &str) -> Result<Option<Bytes>, CacheError> {
        Err(CacheError::Disabled)
    }

    async fn put(
        &self,
        _key: &str,
        _value: Bytes,
        _retain_for: Duration,
    ) -> Result<(), CacheError> {
        Err(CacheError::Disabled)
    }

    async fn delete(&self, _key: &str) -> Result<bool, CacheError> {
        Err(CacheError::Disabled)
    }

    async fn delete_matching(&self, _pattern: &str) -> Result<u64, CacheError> {
        Err(CacheError::Disabled)
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        Err(CacheError::Disabled)
    }

    /// Disabled like every operation: nothing is stored, so there is no load to share.
    async fn try_lease(&self, _key: &str, _ttl: Duration) -> Result<bool, CacheError> {
        Err(CacheError::Disabled)
    }

    async fn release_lease(&self, _key: &str) -> Result<(), CacheError> {
        Err(CacheError::Disabled)
    }

    /// Nothing serves, so the cache is neither enabled nor available; it is not degraded
    /// either, since switching it off was the configuration's choice.
    async fn status(&self) -> CacheStatus {
        CacheStatus {
            state: CacheState::Off,
            topology: None,
            key_prefix: self.key_prefix.clone(),
            faults: Default::default(),
        }
    }
}
