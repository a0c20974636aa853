//! Batch reads through both tiers: what memory has, and one Redis round trip for the rest.

use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheError};

use super::Shared;

impl Shared {
    /// The values of `keys`, in their order, as [`Cache::get`] would answer each: from
    /// memory when it serves as the first tier, with the keys it lacks asked of Redis in one
    /// round trip (and filled in memory); from Redis alone when there is no first tier; from
    /// memory alone while Redis is away. A Redis error switches to memory, as for `get`.
    pub(super) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if self.on_redis() {
            if !self.first_tier() {
                match self.redis.mget(keys).await {
                    Ok(values) => return Ok(values),
                    Err(e) => self.switch_to_memory(&e),
                }
            } else {
                let mut values = self.memory.get_many(keys).await?;
                let lacking: Vec<usize> =
                    (0..keys.len()).filter(|i| values[*i].is_none()).collect();
                if lacking.is_empty() {
                    return Ok(values);
                }
                let lacking_keys: Vec<String> = lacking.iter().map(|i| keys[*i].clone()).collect();
                let epoch = self.epoch();
                match self.redis.mget_with_ttl(&lacking_keys).await {
                    Ok(found) => {
                        for (index, found) in lacking.into_iter().zip(found) {
                            if let Some((value, left)) = found {
                                let left = left.unwrap_or(super::super::LONGEST_TTL);
                                self.fill(&keys[index], value.clone(), left, epoch).await;
                                values[index] = Some(value);
                            }
                        }
                        return Ok(values);
                    }
                    Err(e) => self.switch_to_memory(&e),
                }
            }
        }
        self.memory.get_many(keys).await
    }
}
