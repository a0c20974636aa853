//! The fleet lease: one load per cold key across every instance sharing the Redis. A lease is
//! a key beside the entries (`<prefix>lease:<key>`) holding the token of the cache that took
//! it, so that only that cache gives it back.

use std::time::Duration;

use bb8_redis::redis;
use stockpile_application::ports::CacheError;

use super::RedisCache;
use crate::cache::LONGEST_TTL;

/// Deletes the lease in `KEYS[1]` only while it still holds this cache's token `ARGV[1]`.
const RELEASE_LEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// A token unique among the caches sharing a Redis (process id, clock and a counter): it
/// names this cache's leases and its invalidation messages.
pub(crate) fn instance_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "{:x}-{nanos:x}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

impl RedisCache {
    /// Where the load lease on `key` lives: under the prefix, apart from the entries.
    fn lease_key(&self, key: &str) -> String {
        format!("{}lease:{key}", self.key_prefix)
    }

    /// Takes the lease on `key` for `ttl` unless another cache holds it.
    pub(super) async fn take_lease(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let millis = ttl.min(LONGEST_TTL).as_millis().max(1);
        let mut set = redis::cmd("SET");
        set.arg(self.lease_key(key))
            .arg(&self.lease_token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(millis).unwrap_or(u64::MAX));
        // `OK` when set, nil when the key was there.
        let set: Option<String> = self.connections.run(&set).await?;
        Ok(set.is_some())
    }

    /// Gives the lease on `key` back, if this cache still holds it.
    pub(super) async fn give_back_lease(&self, key: &str) -> Result<(), CacheError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(RELEASE_LEASE)
            .arg(1)
            .arg(self.lease_key(key))
            .arg(&self.lease_token);
        self.connections.run::<u64>(&eval).await.map(drop)
    }
}
