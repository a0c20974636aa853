//! Batch reads: many keys in one round trip.
//!
//! A pipeline of single-key commands rather than one `MGET`: on a Redis Cluster the keys of a
//! batch span slots, and `MGET` across slots fails (`CROSSSLOT`), while each command of a
//! pipeline names one key only. The cluster client refuses a pipeline spanning slots, so on a
//! Cluster the link sends its commands one by one ([`super::topology`]).

use std::time::Duration;

use bb8_redis::redis::{self, Value};
use bytes::Bytes;
use stockpile_application::ports::CacheError;

use super::{with_left, RedisCache};

impl RedisCache {
    /// The values of `keys`, in their order, with one pipelined `GET` per key.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for key in keys {
            pipeline.cmd("GET").arg(self.full_key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.connections.run(&pipeline).await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// The values of `keys` and how long each has left (`None`: no expiry), in one round
    /// trip: `GET` and `PTTL` per key, pipelined; read as [`RedisCache::get_with_ttl`] reads
    /// one key's.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time or answers otherwise.
    pub(crate) async fn mget_with_ttl(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<(Bytes, Option<Duration>)>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for key in keys {
            let full_key = self.full_key(key);
            pipeline
                .cmd("GET")
                .arg(&full_key)
                .cmd("PTTL")
                .arg(&full_key);
        }
        let replies: Vec<Value> = self.connections.run(&pipeline).await?;
        let malformed = || {
            self.connections
                .unavailable("malformed answer to GET and PTTL")
        };
        if replies.len() != 2 * keys.len() {
            return Err(malformed());
        }
        let mut replies = replies.into_iter();
        let mut found = Vec::with_capacity(keys.len());
        while let (Some(value), Some(pttl)) = (replies.next(), replies.next()) {
            let value: Option<Vec<u8>> = redis::from_redis_value(value).map_err(|_| malformed())?;
            let pttl: i64 = redis::from_redis_value(pttl).map_err(|_| malformed())?;
            found.push(with_left((value, pttl)));
        }
        Ok(found)
    }
}
