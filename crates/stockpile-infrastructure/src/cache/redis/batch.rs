//! Batch reads: many keys in one round trip.
//!
//! `MGET` on one server. (On a Redis Cluster the keys of a batch span slots, and the client
//! has to split the batch per slot; whichever of this and the cluster topology lands second
//! does that split.)

use std::time::Duration;

use bb8_redis::redis::{self, Value};
use bytes::Bytes;
use stockpile_application::ports::CacheError;

use super::RedisCache;

impl RedisCache {
    /// The values of `keys`, in their order, with one `MGET`.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(self.full_key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.run(&mget).await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// The values of `keys` and how long each has left (`None`: no expiry), in one round
    /// trip: `MGET` and a `PTTL` per key, pipelined. A key gone between the two, or expiring
    /// now, is absent.
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
        let full_keys: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        pipeline.cmd("MGET").arg(&full_keys);
        for key in &full_keys {
            pipeline.cmd("PTTL").arg(key);
        }
        let replies: Vec<Value> = self.run(&pipeline).await?;
        let malformed = || self.unavailable("malformed answer to MGET and PTTL");
        let mut replies = replies.into_iter();
        let values: Vec<Option<Vec<u8>>> = replies
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .ok_or_else(malformed)?;
        let ttls: Vec<i64> = replies
            .map(|v| redis::from_redis_value(v).map_err(|_| malformed()))
            .collect::<Result<_, _>>()?;
        if values.len() != keys.len() || ttls.len() != keys.len() {
            return Err(malformed());
        }
        Ok(values
            .into_iter()
            .zip(ttls)
            .map(|(value, pttl)| {
                let left = match pttl {
                    -1 => None,
                    millis if millis <= 0 => return None,
                    millis => Some(Duration::from_millis(millis.unsigned_abs())),
                };
                Some((Bytes::from(value?), left))
            })
            .collect())
    }
}
