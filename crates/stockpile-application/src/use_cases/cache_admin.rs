use crate::ports::CacheError;
use crate::{AppError, Stockpile};

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

pub(crate) async fn invalidate(service: &Stockpile, pattern: String) -> Result<u64, AppError> {
    check_length("pattern", &pattern)?;
    service.reads.begin_write();
    nothing_when_disabled(service.reads.cache().delete_matching(&pattern).await)
}

pub(crate) async fn delete_key(service: &Stockpile, key: String) -> Result<bool, AppError> {
    check_length("key", &key)?;
    service.reads.begin_write();
    nothing_when_disabled(service.reads.cache().delete(&key).await)
}

pub(crate) async fn clear(service: &Stockpile) -> Result<u64, AppError> {
    service.reads.begin_write();
    nothing_when_disabled(service.reads.cache().clear().await)
}
