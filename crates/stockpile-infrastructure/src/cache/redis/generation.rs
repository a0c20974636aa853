//! Generations and revocations in one round trip each: the keys every load reads before the
//! database and every write deletes after its commit (see `stockpile_application::cache_keys`).
//! Pipelines of one-key commands, so that on a Redis Cluster each goes to its own slot and
//! none fails with `CROSSSLOT`.

use std::time::Duration;

use bb8_redis::redis;
use bytes::Bytes;
use stockpile_application::ports::CacheError;

use super::RedisCache;
use crate::cache::LONGEST_TTL;

/// What `KEYS[1]` holds after storing `ARGV[1]` there for `ARGV[2]` ms if it held nothing; a
/// key that was there is kept for `ARGV[2]` ms from now. One script, so atomic: two instances
/// starting a generation at once agree on its token.
const GET_OR_PUT: &str = "local held = redis.call('GET', KEYS[1]) \
     if held then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return held end \
     redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1]";

impl RedisCache {
    /// What `keys` hold, `value` stored for `retain_for` under each that held nothing: one
    /// pipelined script per key.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(super) async fn get_or_put_each(
        &self,
        keys: &[String],
        value: &Bytes,
        retain_for: Duration,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let millis =
            u64::try_from(retain_for.min(LONGEST_TTL).as_millis().max(1)).unwrap_or(u64::MAX);
        let mut pipeline = redis::pipe();
        for key in keys {
            pipeline
                .cmd("EVAL")
                .arg(GET_OR_PUT)
                .arg(1)
                .arg(self.full_key(key))
                .arg(value.as_ref())
                .arg(millis);
        }
        let held: Vec<Option<Vec<u8>>> = self.connections.run(&pipeline).await?;
        Ok(held.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// `UNLINK`s `keys`, one pipelined command per key; returns how many there were.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn unlink_each(&self, keys: &[String]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipeline = redis::pipe();
        for key in keys {
            pipeline.cmd("UNLINK").arg(self.full_key(key));
        }
        let removed: Vec<u64> = self.connections.run(&pipeline).await?;
        Ok(removed.into_iter().sum())
    }
}
