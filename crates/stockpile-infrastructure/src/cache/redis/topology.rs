//! How we reach Redis: the one seam between the commands and the servers.
//!
//! Everything above this module (the connection pool and the per-worker connections, the
//! commands, pub/sub) speaks to a [`Topology`] and the [`Link`]s it opens, never to a server
//! address. Today the only topology is one standalone server; Sentinel (a primary found
//! through the sentinels, followed on failover) and Cluster (slots spread over primaries,
//! MOVED/ASK followed by the client) are each one more variant of [`Topology`] and of [`Link`],
//! built on the `redis` crate's own support (`redis::sentinel::SentinelClient`,
//! `redis::cluster_async::ClusterConnection`), with no edit to the commands: every command the
//! cache sends names its one key (or, for `UNLINK`, keys the cluster client splits by slot),
//! so it is routed by the client. The one exception is the walk of the keyspace (`SCAN`, in
//! `unlink_matching`), which on a cluster must visit every primary: it is to be routed per
//! node here, beside the variant.

use bb8_redis::redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use bb8_redis::redis::{
    self, AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value,
};
use stockpile_application::ports::RedisTopology;

use super::settings::RedisSettings;

/// The Redis servers the cache talks to, and how to reach them.
#[derive(Clone)]
pub(super) enum Topology {
    /// One server at `REDIS_URL`.
    Standalone(redis::Client),
}

impl Topology {
    /// The topology the settings describe; nothing is contacted yet.
    ///
    /// # Errors
    /// The client's, when the settings do not describe a reachable Redis (a URL that does
    /// not parse, say).
    pub(super) fn from_settings(settings: &RedisSettings) -> RedisResult<Self> {
        redis::Client::open(settings.url.as_str()).map(Self::Standalone)
    }

    /// What `GET /api/cache/status` reports as `topology`.
    pub(super) fn kind(&self) -> RedisTopology {
        match self {
            Self::Standalone(_) => RedisTopology::Standalone,
        }
    }

    /// A new multiplexed connection, opened within `config`'s timeouts.
    pub(super) async fn connect(&self, config: &AsyncConnectionConfig) -> RedisResult<Link> {
        match self {
            Self::Standalone(client) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Link::Standalone),
        }
    }

    /// A new dedicated pub/sub connection.
    pub(super) async fn pubsub(&self) -> RedisResult<PubSub> {
        match self {
            Self::Standalone(client) => client.get_async_pubsub().await,
        }
    }
}

/// A connection of any topology; cheap to clone, and every clone pipelines over the same
/// socket(s).
#[derive(Clone)]
pub(super) enum Link {
    Standalone(MultiplexedConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
        }
    }
}
