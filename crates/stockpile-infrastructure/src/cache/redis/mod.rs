//! The Redis cache: every key under the configured prefix, every command bounded in time.
//!
//! Invariants: nothing outside the prefix is ever read, listed or deleted (patterns are sent
//! as `SCAN MATCH <escaped prefix><pattern>`, and every key found is checked again against the
//! prefix before it is unlinked), and `KEYS`, `FLUSHDB` and `FLUSHALL` are never sent: `KEYS`
//! blocks the server for the whole keyspace, and the flushes would take other applications'
//! keys with ours.

mod batch;
mod connection;
mod generation;
mod lease;
mod pubsub;
mod scan;
mod settings;
mod slots;
mod topology;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::redis;
use bytes::Bytes;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheState, CacheStatus, RedisTopology,
};

use self::connection::Connections;
pub(crate) use self::lease::instance_token;
pub use self::settings::{RedisAddresses, RedisServers, RedisSettings};
pub(crate) use self::topology::Shard;
use super::{glob, LONGEST_TTL};

/// A [`Cache`] in Redis, under a key prefix, through a small pool of multiplexed connections.
///
/// Creating it does not touch the network: connections are opened on first use, so a dead
/// Redis never fails or delays startup.
pub struct RedisCache {
    /// How commands reach Redis.
    connections: Connections,
    key_prefix: String,
    /// The prefix with its glob metacharacters escaped, put in front of every pattern.
    match_prefix: String,
    /// What this cache writes into the leases it takes, so that it releases only its own.
    lease_token: String,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("connections", &self.connections)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// A cache on the Redis at `settings.url`; no connection is opened yet.
    ///
    /// A URL that does not parse is logged as an error here, and every command then fails
    /// with [`CacheError::Unavailable`], so the service starts and serves from memory.
    ///
    /// # Panics
    /// Outside a Tokio runtime: the pool spawns a task that closes idle connections.
    pub fn new(settings: &RedisSettings) -> Self {
        Self {
            connections: Connections::new(settings),
            match_prefix: glob::escape(&settings.key_prefix),
            key_prefix: settings.key_prefix.clone(),
            lease_token: instance_token(),
        }
    }

    /// How Redis is reached.
    pub fn topology(&self) -> RedisTopology {
        self.connections.topology()
    }

    /// The namespace of every key.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Whether Redis answers a `PING` within the command timeout; for readiness probes.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.connections
            .run::<String>(&redis::cmd("PING"))
            .await
            .map(drop)
    }

    /// Ten command timeouts: the longest wait for the evidence that Redis (or an instance
    /// that goes through it) is slow rather than gone.
    pub(crate) fn patience(&self) -> Duration {
        self.connections.patience()
    }

    /// Whether Redis answers a `PING` within [`Self::patience`], on a connection of the
    /// probe's own: the evidence that tells a slow Redis from a dead one.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when it does not.
    pub async fn probe(&self) -> Result<(), CacheError> {
        self.connections.probe().await
    }

    /// The value of `key` and how long it has left (`None`: no expiry), in one round trip.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(Bytes, Option<Duration>)>, CacheError> {
        let full_key = self.full_key(key);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("GET")
            .arg(&full_key)
            .cmd("PTTL")
            .arg(&full_key);
        Ok(with_left(self.connections.run(&pipeline).await?))
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }
}

/// A value and its `PTTL` as one key's answer: `None` when absent, gone between the two
/// commands or expiring now; how long it has left otherwise (`None`: no expiry).
fn with_left((value, pttl): (Option<Vec<u8>>, i64)) -> Option<(Bytes, Option<Duration>)> {
    let value = value?;
    let left = match pttl {
        -1 => None,
        millis if millis <= 0 => return None,
        millis => Some(Duration::from_millis(millis.unsigned_abs())),
    };
    Some((Bytes::from(value), left))
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut get = redis::cmd("GET");
        get.arg(self.full_key(key));
        let value: Option<Vec<u8>> = self.connections.run(&get).await?;
        Ok(value.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.mget(keys).await
    }

    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError> {
        // Redis refuses `PX 0`; a millisecond is as good as gone.
        let millis = retain_for.min(LONGEST_TTL).as_millis().max(1);
        let mut set = redis::cmd("SET");
        set.arg(self.full_key(key))
            .arg(value.as_ref())
            .arg("PX")
            .arg(u64::try_from(millis).unwrap_or(u64::MAX));
        self.connections.run::<()>(&set).await
    }

    async fn get_or_put_many(
        &self,
        keys: &[String],
        value: Bytes,
        retain_for: Duration,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.get_or_put_each(keys, &value, retain_for).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut unlink = redis::cmd("UNLINK");
        unlink.arg(self.full_key(key));
        Ok(self.connections.run::<u64>(&unlink).await? > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64, CacheError> {
        self.unlink_each(keys).await
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        self.unlink_matching(pattern).await
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.unlink_matching("*").await
    }

    /// `SET <prefix>lease:<key> <token> NX PX <ttl>`: granted when no lease was there.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.take_lease(key, ttl).await
    }

    /// Deletes the lease only while it holds this cache's token (one `EVAL`, so atomically).
    async fn release_lease(&self, key: &str) -> Result<(), CacheError> {
        self.give_back_lease(key).await
    }

    /// Pings Redis: available while it answers. Never degraded, since nothing stands in.
    async fn status(&self) -> CacheStatus {
        let state = if self.ping().await.is_ok() {
            CacheState::Serving(CacheBackend::Redis)
        } else {
            CacheState::Unreachable(CacheBackend::Redis)
        };
        CacheStatus {
            state,
            topology: Some(self.topology()),
            key_prefix: self.key_prefix.clone(),
            faults: Default::default(),
        }
    }
}
