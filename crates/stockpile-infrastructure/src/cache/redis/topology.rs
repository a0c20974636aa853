//! How we reach Redis: the one seam between the commands and the servers.
//!
//! Everything above this module (the connection pool and the per-worker connections, the
//! commands, pub/sub) speaks to a [`Topology`] and the [`Link`]s it opens, never to a server
//! address. Each topology is built on the `redis` crate's own support:
//! - standalone: one `redis::Client`;
//! - Sentinel: `redis::sentinel::SentinelClient` names the master each time a connection is
//!   opened, so a connection broken by a failover (or answering `READONLY`, see
//!   `Connections::run`) is replaced by one to the new master;
//! - Cluster: `redis::cluster_async::ClusterConnection` routes each command by its key's slot
//!   and follows MOVED/ASK. It refuses a pipeline whose keys span slots, so [`Link`] sends a
//!   pipeline as one pipeline per node ([`super::slots`]): every command the cache sends names
//!   its one key, or none.
//!
//! The walk of the keyspace (`SCAN`) must visit every primary of a cluster, and the
//! invalidations are published on the node their subscribers listen on: [`Shard`] names where
//! a command that names no key goes.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};
use stockpile_application::ports::RedisTopology;

use super::settings::{RedisAddresses, RedisServers, RedisSettings};
use super::slots::{self, NodeLinks, SlotMap};

/// The Redis servers the cache talks to, and how to reach them.
#[derive(Clone)]
pub(super) enum Topology {
    /// One server at `REDIS_URL`.
    Standalone(Box<Client>),
    /// The master the Sentinels name.
    Sentinel(Arc<Sentinels>),
    /// A Redis Cluster.
    Cluster(Arc<Cluster>),
}

pub(super) struct Sentinels {
    /// Asks the Sentinels for the master; it keeps connections to them, hence the lock.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The longest a lookup of the master may take: a Sentinel that does not answer must not
    /// hold a pool slot longer than a dead server would.
    lookup_timeout: Duration,
}

pub(super) struct Cluster {
    client: ClusterClient,
    /// How any node is reached (scheme, credentials, CA), for the pub/sub connections and
    /// each connection's own links to the nodes.
    nodes: Arc<NodeAccess>,
    /// A client per seed node, for a pub/sub connection when the cluster cannot name its
    /// nodes just now.
    seeds: Vec<Client>,
    /// Which node serves which slot, for the pipelines of every connection.
    slots: Arc<SlotMap>,
}

/// Where a command that names no key is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shard {
    /// The one server (standalone or the Sentinels' master); on a cluster, wherever the
    /// client routes the command.
    Whole,
    /// One node of a cluster: a primary, for a walk of the keyspace.
    Node { host: String, port: u16 },
}

/// What `GET /api/cache/status` reports as `topology` for these servers.
pub(super) fn kind_of(servers: &RedisServers) -> RedisTopology {
    match servers {
        RedisServers::Standalone => RedisTopology::Standalone,
        RedisServers::Sentinel { .. } => RedisTopology::Sentinel,
        RedisServers::Cluster { .. } => RedisTopology::Cluster,
    }
}

impl Topology {
    /// The topology the settings describe; nothing is contacted yet.
    ///
    /// # Errors
    /// The client's, when the settings cannot describe a reachable Redis (a URL that does not
    /// parse, an unreadable CA file, say).
    pub(super) fn from_settings(settings: &RedisSettings) -> RedisResult<Self> {
        let certificates = settings
            .tls_ca_file
            .as_ref()
            .map(|file| {
                std::fs::read(file)
                    .map(|pem| TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    })
                    .map_err(|e| {
                        RedisError::from(std::io::Error::new(
                            e.kind(),
                            format!("cannot read REDIS_TLS_CA_FILE {}: {e}", file.display()),
                        ))
                    })
            })
            .transpose()?;
        match &settings.servers {
            RedisServers::Standalone => client(settings.url.as_str(), certificates)
                .map(|client| Self::Standalone(Box::new(client))),
            RedisServers::Sentinel { sentinels, master } => {
                sentinel_client(settings, sentinels, master, certificates).map(|client| {
                    Self::Sentinel(Arc::new(Sentinels {
                        client: tokio::sync::Mutex::new(client),
                        lookup_timeout: settings.connect_timeout + settings.command_timeout,
                    }))
                })
            }
            RedisServers::Cluster { seeds } => cluster(settings, seeds, certificates)
                .map(|cluster| Self::Cluster(Arc::new(cluster))),
        }
    }

    /// Whether the keyspace is spread over several primaries, each to be walked apart.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A new multiplexed connection, opened within `config`'s timeouts.
    pub(super) async fn connect(&self, config: &AsyncConnectionConfig) -> RedisResult<Link> {
        match self {
            Self::Standalone(client) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Link::Server),
            Self::Sentinel(sentinels) => sentinels
                .master()
                .await?
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Link::Server),
            Self::Cluster(cluster) => cluster.client.get_async_connection().await.map(|conn| {
                let direct = NodeLinks::new(Arc::clone(&cluster.nodes), config.clone());
                Link::Cluster(conn, Arc::clone(&cluster.slots), Arc::new(direct))
            }),
        }
    }

    /// A new dedicated pub/sub connection, and the shard it is open to: the server, or the
    /// current master; on a cluster, `node` when it is given and answers (the caller names the
    /// same node on every instance, so that a `PUBLISH` sent there counts all of them), else
    /// the first seed that answers, as [`Shard::Whole`] since the cluster may know that seed
    /// by another name.
    pub(super) async fn pubsub(&self, node: Option<&Shard>) -> RedisResult<(PubSub, Shard)> {
        match self {
            Self::Standalone(client) => Ok((client.get_async_pubsub().await?, Shard::Whole)),
            Self::Sentinel(sentinels) => Ok((
                sentinels.master().await?.get_async_pubsub().await?,
                Shard::Whole,
            )),
            Self::Cluster(cluster) => {
                if let Some(named @ Shard::Node { host, port }) = node {
                    let opened =
                        async { cluster.nodes.client(host, *port)?.get_async_pubsub().await };
                    match opened.await {
                        Ok(pubsub) => return Ok((pubsub, named.clone())),
                        Err(e) => tracing::debug!(
                            error = %e,
                            host,
                            port,
                            "the cluster's pub/sub node refused; trying the seeds"
                        ),
                    }
                }
                let mut refused = None;
                for seed in &cluster.seeds {
                    match seed.get_async_pubsub().await {
                        Ok(pubsub) => return Ok((pubsub, Shard::Whole)),
                        Err(e) => refused = Some(e),
                    }
                }
                Err(refused.unwrap_or_else(no_seed_error))
            }
        }
    }
}

impl Sentinels {
    /// A client of the master the Sentinels name now (they check that it says it is master).
    async fn master(&self) -> RedisResult<Client> {
        let lookup = async { self.client.lock().await.async_get_client().await };
        tokio::time::timeout(self.lookup_timeout, lookup)
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the Sentinels did not name a master in time",
                )))
            })
    }
}

/// A client of `url` (`rediss://` for TLS), trusting `certificates` when given.
fn client(
    url: impl IntoConnectionInfo,
    certificates: Option<TlsCertificates>,
) -> RedisResult<Client> {
    match certificates {
        Some(certificates) => Client::build_with_tls(url, certificates),
        None => Client::open(url),
    }
}

fn sentinel_client(
    settings: &RedisSettings,
    sentinels: &RedisAddresses,
    master: &str,
    certificates: Option<TlsCertificates>,
) -> RedisResult<SentinelClient> {
    let addresses = sentinels.iter().map(|(host, port)| {
        if settings.tls {
            ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        }
    });
    let mut builder = SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)?;
    if settings.tls {
        builder = builder
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_redis_tls_mode(TlsMode::Secure);
    }
    if let Some(certificates) = certificates {
        builder = builder
            .set_client_to_sentinel_certificates(certificates.clone())
            .set_client_to_redis_certificates(certificates);
    }
    if let Some(username) = &settings.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.set_client_to_redis_password(password);
    }
    builder.build()
}

/// How a cluster's nodes are reached: every node with the same scheme, credentials and CA.
pub(super) struct NodeAccess {
    scheme: &'static str,
    username: Option<String>,
    password: Option<String>,
    certificates: Option<TlsCertificates>,
}

impl NodeAccess {
    fn info(&self, host: &str, port: u16) -> RedisResult<ConnectionInfo> {
        let info = format!("{}://{host}:{port}", self.scheme).into_connection_info()?;
        let mut redis = info.redis_settings().clone();
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        Ok(info.set_redis_settings(redis))
    }

    pub(super) fn client(&self, host: &str, port: u16) -> RedisResult<Client> {
        client(self.info(host, port)?, self.certificates.clone())
    }
}

fn cluster(
    settings: &RedisSettings,
    seeds: &RedisAddresses,
    certificates: Option<TlsCertificates>,
) -> RedisResult<Cluster> {
    let nodes = NodeAccess {
        scheme: if settings.tls { "rediss" } else { "redis" },
        username: settings.username.clone(),
        password: settings.password.clone(),
        certificates: certificates.clone(),
    };
    let mut seed_clients = Vec::new();
    let mut seed_infos = Vec::new();
    for (host, port) in seeds.iter() {
        let info = nodes.info(host, port)?;
        seed_clients.push(client(info.clone(), nodes.certificates.clone())?);
        seed_infos.push(info);
    }
    // The client's own waits between retries start at 1.28 s, past any command timeout: a
    // command redirected while slots move would count as a dead Redis. Retries within the
    // command timeout let it follow the cluster instead.
    let longest_retry_wait = u64::try_from(settings.command_timeout.as_millis() / 4)
        .unwrap_or(u64::MAX)
        .max(2);
    let mut builder = ClusterClientBuilder::new(seed_infos)
        .connection_timeout(settings.connect_timeout)
        .response_timeout(settings.command_timeout)
        .min_retry_wait(1)
        .max_retry_wait(longest_retry_wait);
    if settings.tls {
        builder = builder.tls(TlsMode::Secure);
    }
    if let Some(certificates) = certificates {
        builder = builder.certs(certificates);
    }
    if let Some(username) = &settings.username {
        builder = builder.username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.password(password);
    }
    Ok(Cluster {
        client: builder.build()?,
        nodes: Arc::new(nodes),
        seeds: seed_clients,
        slots: Arc::default(),
    })
}

fn no_seed_error() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no cluster seed node is configured",
    ))
}

/// The primaries in a `CLUSTER SLOTS` answer, each once.
pub(super) fn primaries_in(slots: Value) -> RedisResult<Vec<Shard>> {
    Ok(slots::primaries_in(slots)?
        .into_iter()
        .map(|(host, port)| Shard::Node { host, port })
        .collect())
}

/// A connection of any topology; cheap to clone, and every clone pipelines over the same
/// socket(s).
#[derive(Clone)]
pub(super) enum Link {
    /// To the one server: standalone, or the master the Sentinels named.
    Server(MultiplexedConnection),
    /// The cluster client, the slot map its pipelines are grouped by, and this connection's
    /// own links to the nodes.
    Cluster(ClusterConnection, Arc<SlotMap>, Arc<NodeLinks>),
}

impl Link {
    /// Sends `cmd`, which names no key, to `shard`.
    pub(super) async fn on(&mut self, shard: &Shard, cmd: &Cmd) -> RedisResult<Value> {
        match (self, shard) {
            (Self::Cluster(conn, ..), Shard::Node { host, port }) => {
                let node = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                conn.route_command(cmd.clone(), RoutingInfo::SingleNode(node))
                    .await
            }
            (link, _) => link.req_packed_command(cmd).await,
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn, ..) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn, slots, direct) => {
                if pipeline.is_transaction() {
                    return conn.req_packed_commands(pipeline, offset, count);
                }
                Box::pin(slots.send(conn, direct, pipeline, offset, count))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(conn) => conn.get_db(),
            Self::Cluster(conn, ..) => conn.get_db(),
        }
    }
}
