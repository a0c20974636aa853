//! The walk of the keyspace: `SCAN` for the keys under the prefix that match a pattern and
//! `UNLINK` them, page by page. On a Redis Cluster this is the one operation that visits every
//! primary, each walked to its end; the keys a page finds are unlinked one command per key,
//! since on a cluster they span slots.

use bb8_redis::redis;
use stockpile_application::ports::CacheError;

use super::connection::OnShard;
use super::topology::Shard;
use super::RedisCache;

/// How keys are fetched per `SCAN` step: large enough that clearing a big cache takes few
/// round trips, small enough that no single step blocks Redis noticeably.
const SCAN_COUNT: u32 = 500;

impl RedisCache {
    /// `SCAN`s for keys under the prefix matching `pattern` and `UNLINK`s them page by page;
    /// returns how many were removed. `UNLINK` frees memory off Redis's main thread, so even
    /// a large clear does not stall other clients.
    pub(super) async fn unlink_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}{pattern}", self.match_prefix);
        let mut removed = 0;
        for shard in self.connections.shards().await? {
            removed += self.unlink_matching_on(&shard, &pattern).await?;
        }
        Ok(removed)
    }

    /// [`Self::unlink_matching`] on one shard, with the escaped prefix already in `pattern`.
    async fn unlink_matching_on(&self, shard: &Shard, pattern: &str) -> Result<u64, CacheError> {
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, mut keys): (u64, Vec<Vec<u8>>) =
                self.connections.run(&OnShard(shard, &scan)).await?;
            // The escaped prefix already confines the match; checking again costs nothing and
            // keeps a mistake in escaping from ever deleting another application's keys.
            keys.retain(|key| key.starts_with(self.key_prefix.as_bytes()));
            if !keys.is_empty() {
                let mut unlinks = redis::pipe();
                for key in &keys {
                    unlinks.cmd("UNLINK").arg(key);
                }
                let unlinked: Vec<u64> = self.connections.run(&unlinks).await?;
                removed += unlinked.into_iter().sum::<u64>();
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}
