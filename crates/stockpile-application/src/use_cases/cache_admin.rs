//! Cache administration: the cache's status and three ways to remove entries. They change no
//! data, so a load under way may store its entry again afterwards; that entry is as fresh as
//! the database. Removing generation keys (`gen:*`) makes their entries misses.

use async_trait::async_trait;

use crate::ports::{CacheError, CacheStatus};
use crate::service::Stockpile;
use crate::AppError;

#[async_trait]
pub trait CacheAdministration: Send + Sync {
    async fn cache_status(&self) -> CacheStatus;
    /// Removes every key matching a glob pattern; returns how many.
    async fn invalidate_cache(&self, pattern: String) -> Result<u64, AppError>;
    /// True when a key was removed.
    async fn delete_cache_key(&self, key: String) -> Result<bool, AppError>;
    /// Removes every key under the prefix; returns how many.
    async fn clear_cache(&self) -> Result<u64, AppError>;
}

#[async_trait]
impl CacheAdministration for Stockpile {
    async fn cache_status(&self) -> CacheStatus {
        self.cache_aside.cache().status().await
    }

    async fn invalidate_cache(&self, pattern: String) -> Result<u64, AppError> {
        check_length("pattern", &pattern)?;
        let cache = self.cache_aside.cache();
        nothing_when_disabled(cache.delete_matching(&pattern).await)
    }

    async fn delete_cache_key(&self, key: String) -> Result<bool, AppError> {
        check_length("key", &key)?;
        let cache = self.cache_aside.cache();
        nothing_when_disabled(cache.delete(&key).await)
    }

    async fn clear_cache(&self) -> Result<u64, AppError> {
        let cache = self.cache_aside.cache();
        nothing_when_disabled(cache.clear().await)
    }
}

/// The longest pattern or key accepted.
const MAX_PATTERN_LEN: usize = 256;

fn check_length(field: &str, text: &str) -> Result<(), AppError> {
    let length = text.chars().count();
    if (1..=MAX_PATTERN_LEN).contains(&length) {
        Ok(())
    } else {
        Err(AppError::invalid(
            field,
            format!("must be 1 to {MAX_PATTERN_LEN} characters, not {length}"),
        ))
    }
}

fn cache_failure(error: CacheError) -> AppError {
    AppError::CacheUnavailable(error.to_string())
}

/// Runs a cache operation; with caching switched off there is nothing to remove.
fn nothing_when_disabled<T: Default>(result: Result<T, CacheError>) -> Result<T, AppError> {
    match result {
        Err(CacheError::Disabled) => Ok(T::default()),
        other => other.map_err(cache_failure),
    }
}
