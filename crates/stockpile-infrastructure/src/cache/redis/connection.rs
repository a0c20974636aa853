//! Connection management: a small pool of multiplexed connections, one connection per worker
//! thread, and every command bounded in time and retried on a fresh connection when the one it
//! was sent on turns out to be dead. Which servers the connections reach is the
//! [`Topology`]'s business.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use bb8_redis::bb8;
use bb8_redis::redis::aio::PubSub;
use bb8_redis::redis::{
    self, AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult,
    ServerErrorKind,
};
use futures::future::BoxFuture;
use stockpile_application::ports::{CacheError, RedisTopology};
use tokio::runtime::RuntimeFlavor;
use tokio::time::error::Elapsed;

use super::settings::RedisSettings;
use super::topology::{self, Link, Shard, Topology};
use crate::redaction::UrlSecrets;

/// A command or a pipeline: what [`Connections::run`] sends.
pub(super) trait Query: Sync {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut Link,
    ) -> BoxFuture<'a, RedisResult<T>>;
}

impl Query for Cmd {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut Link,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

/// A command that names no key, for one [`Shard`].
pub(super) struct OnShard<'a>(pub &'a Shard, pub &'a Cmd);

impl Query for OnShard<'_> {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut Link,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(async move { Ok(redis::from_redis_value(conn.on(self.0, self.1).await?)?) })
    }
}

impl Query for Pipeline {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut Link,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

/// A pooled connection and whether it failed in a way that makes it useless.
///
/// The pool lends a connection only long enough to clone it: a multiplexed connection
/// pipelines the commands of every clone over one socket, so holding it for a whole round
/// trip would make concurrent commands queue for the pool instead (and a queue longer than
/// the pool's wait fails commands that Redis would have answered in time).
struct Connection {
    inner: Link,
    /// Shared with every clone lent out, and set by any of them after an I/O error, a
    /// dropped connection or a timeout, so that the pool discards the connection the next
    /// time it is checked out or returned instead of lending it again (a multiplexed
    /// connection whose socket died fails every later command).
    broken: Arc<AtomicBool>,
    /// The [`Connections::moves`] seen before it asked where the servers are.
    opened_after_moves: u64,
}

impl Connection {
    /// Whether it is not to be used again: broken, or opened before the servers last moved.
    fn is_spent(&self, moves: &AtomicU64) -> bool {
        self.broken.load(Ordering::Relaxed)
            || self.opened_after_moves < moves.load(Ordering::Relaxed)
    }

    /// A clone to send one command on.
    fn lend(&self) -> Lent {
        Lent {
            link: self.inner.clone(),
            broken: Arc::clone(&self.broken),
            opened_after_moves: self.opened_after_moves,
        }
    }
}

/// A [`Connection`]'s clone that one command is sent on, and what it reports back by.
struct Lent {
    link: Link,
    broken: Arc<AtomicBool>,
    opened_after_moves: u64,
}

/// A worker thread's connection, or the note that one of its tasks is opening it.
enum WorkerConnection {
    Opening,
    Open(Connection),
}

/// Opens connections with the cache's own timeouts. `bb8_redis::RedisConnectionManager`
/// cannot be used as it is: it never reports a connection as broken, and it opens
/// connections with the client's default timeouts (a second to connect), so a black-holed
/// Redis would hold pool slots long after the command timeout.
struct Manager {
    topology: Topology,
    config: AsyncConnectionConfig,
    /// Why the latest attempt to connect failed (`None` once one succeeds): bb8 reports a
    /// failed attempt to the command waiting for it only as a timeout, and a wrong CA or an
    /// unknown Sentinel master must be named in the log line of the fallback.
    connect_failure: Arc<Mutex<Option<String>>>,
    /// [`Connections::moves`].
    moves: Arc<AtomicU64>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Connection, RedisError> {
        // Read before the servers are asked: a move noticed while this connects may have been
        // answered with the old master.
        let opened_after_moves = self.moves.load(Ordering::Relaxed);
        let connected = self.topology.connect(&self.config).await;
        *lock(&self.connect_failure) = connected.as_ref().err().map(ToString::to_string);
        let inner = connected?;
        Ok(Connection {
            inner,
            broken: Arc::new(AtomicBool::new(false)),
            opened_after_moves,
        })
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), RedisError> {
        redis::cmd("PING").query_async(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.is_spent(&self.moves)
    }
}

/// `PING` on `link`, opened first (within `patience`) when there is none.
async fn ping(topology: &Topology, link: &mut Option<Link>, patience: Duration) -> RedisResult<()> {
    let conn = match link {
        Some(conn) => conn,
        None => {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(patience))
                .set_response_timeout(Some(patience));
            link.insert(topology.connect(&config).await?)
        }
    };
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map(drop)
}

/// The connections to Redis and the rules every command is sent by.
pub(super) struct Connections {
    /// The connection pool, or why there is none: settings that cannot be used (a URL that
    /// does not parse, an unreadable CA file) are reported by every command as unavailability
    /// rather than failing startup, like a dead Redis.
    pool: Result<bb8::Pool<Manager>, String>,
    /// The topology the pool connects to, kept to open the pub/sub connection of the first
    /// tier's invalidations (`None` with the pool's error).
    topology: Option<Topology>,
    /// How the settings say Redis is reached, usable or not.
    kind: RedisTopology,
    /// The pool's [`Manager::connect_failure`].
    connect_failure: Arc<Mutex<Option<String>>>,
    /// One connection per single-threaded runtime's thread (actix-web's workers); see
    /// [`Connections::worker_connection`].
    worker_connections: Mutex<HashMap<ThreadId, WorkerConnection>>,
    /// How many times a command found the servers moved (a `READONLY` answer from a demoted
    /// master, a cluster node no longer there). Every connection open then was opened to the
    /// same servers, so none opened before the latest move is used again.
    moves: Arc<AtomicU64>,
    /// The probe's own connection; see [`Connections::probe`].
    probe_link: tokio::sync::Mutex<Option<Link>>,
    /// The longest wait for a new connection.
    connect_timeout: Duration,
    command_timeout: Duration,
    /// How many times a command is retried on a connection that turns out to be dead: once
    /// per pooled connection, since after a Redis restart every one of them is.
    pool_size: u32,
    secrets: UrlSecrets,
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("topology", &self.kind)
            .field("url", &self.secrets)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// The connections to the Redis the settings name; none is opened yet.
    ///
    /// Settings that cannot be used (a URL that does not parse, an unreadable CA file) are
    /// logged as an error here, and every command then fails with
    /// [`CacheError::Unavailable`].
    ///
    /// # Panics
    /// Outside a Tokio runtime: the pool spawns a task that closes idle connections.
    pub(super) fn new(settings: &RedisSettings) -> Self {
        let secrets = UrlSecrets::new(&settings.url).hiding(settings.password.as_deref());
        // bb8 refuses a zero connection timeout.
        let connect_timeout = settings.connect_timeout.max(Duration::from_millis(1));
        let pool_size = settings.pool_size.max(1);
        let mut kept_topology = None;
        let connect_failure = Arc::new(Mutex::new(None));
        let moves = Arc::new(AtomicU64::new(0));
        let pool = match Topology::from_settings(settings) {
            Ok(topology) => {
                kept_topology = Some(topology.clone());
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(settings.command_timeout));
                Ok(bb8::Pool::builder()
                    .max_size(pool_size)
                    .connection_timeout(connect_timeout)
                    // A refused connection is not retried: retrying within the timeout cannot
                    // help a dead Redis, and would only add attempts against it.
                    .retry_connection(false)
                    // A PING before every command would double each one's round trips; a dead
                    // connection is recognised by its first failing command instead.
                    .test_on_check_out(false)
                    .build_unchecked(Manager {
                        topology,
                        config,
                        connect_failure: Arc::clone(&connect_failure),
                        moves: Arc::clone(&moves),
                    }))
            }
            Err(e) => {
                let why = format!(
                    "the Redis settings cannot be used: {}",
                    secrets.scrub(&e.to_string())
                );
                tracing::error!(url = %secrets.redacted(), "{why}; Redis will not be used");
                Err(why)
            }
        };
        Self {
            pool,
            topology: kept_topology,
            kind: topology::kind_of(&settings.servers),
            connect_failure,
            worker_connections: Mutex::new(HashMap::new()),
            moves,
            probe_link: tokio::sync::Mutex::new(None),
            connect_timeout,
            command_timeout: settings.command_timeout,
            pool_size,
            secrets,
        }
    }

    /// How Redis is reached, as the settings say, usable or not.
    pub(super) fn topology(&self) -> RedisTopology {
        self.kind
    }

    /// Where a walk of the keyspace goes: the one server, or every primary of a cluster as
    /// the cluster names them now.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(super) async fn shards(&self) -> Result<Vec<Shard>, CacheError> {
        if !self.topology.as_ref().is_some_and(Topology::is_cluster) {
            return Ok(vec![Shard::Whole]);
        }
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        topology::primaries_in(self.run(&slots).await?)
            .map_err(|e| self.unavailable(&format!("CLUSTER SLOTS: {e}")))
    }

    /// A dedicated pub/sub connection subscribed to `channels`, within the connect and
    /// command timeouts, and the shard it listens on.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time or refuses.
    pub(super) async fn subscribe(
        &self,
        channels: &[String],
    ) -> Result<(PubSub, Shard), CacheError> {
        let topology = match (&self.topology, &self.pool) {
            (Some(topology), _) => topology,
            (None, Err(why)) => return Err(self.unavailable(why)),
            (None, Ok(_)) => return Err(self.unavailable("no client")),
        };
        // On a cluster, the primary the cluster itself lists first (of slot 0): the same node
        // for every instance, named as the cluster names it, so that invalidations published
        // there are counted for every instance's subscription.
        let node = if topology.is_cluster() {
            self.shards()
                .await
                .ok()
                .and_then(|shards| shards.into_iter().next())
        } else {
            None
        };
        let subscribe = async {
            let (mut pubsub, shard) = topology.pubsub(node.as_ref()).await?;
            pubsub.subscribe(channels).await?;
            Ok::<_, RedisError>((pubsub, shard))
        };
        match tokio::time::timeout(self.connect_timeout + self.command_timeout, subscribe).await {
            Ok(Ok(subscribed)) => Ok(subscribed),
            Ok(Err(e)) => Err(self.unavailable(&format!("subscribe: {e}"))),
            Err(_) => Err(self.unavailable("subscribe: no answer in time")),
        }
    }

    /// Whether Redis answers a `PING` within ten command timeouts, on the probe's own
    /// connection (kept while it works, opened again with the same patience when not). A
    /// Redis slowed past the command timeout (a saturated CPU, a long command ahead in its
    /// queue) passes, whereas the commands' connections, discarded after a late answer, could
    /// not even be opened again within the command timeout; a dead one fails (at once when
    /// refused, once the ten timeouts run out when black-holed).
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when it does not answer.
    pub(super) async fn probe(&self) -> Result<(), CacheError> {
        let Some(topology) = &self.topology else {
            return Err(
                self.unavailable(self.pool.as_ref().err().map_or("no client", String::as_str))
            );
        };
        let patience = self.patience();
        let mut link = self.probe_link.lock().await;
        match tokio::time::timeout(patience, ping(topology, &mut link, patience)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                *link = None;
                Err(self.unavailable(&format!("probe: {e}")))
            }
            Err(_) => {
                *link = None;
                Err(self.timed_out(patience))
            }
        }
    }

    /// Ten command timeouts: how long a Redis that is slow, not dead, may take to answer.
    pub(super) fn patience(&self) -> Duration {
        self.command_timeout * 10
    }

    /// Runs one command within the command timeout, on a fresh connection when a pooled one
    /// turns out to be dead.
    pub(super) async fn run<T: FromRedisValue + Send>(
        &self,
        cmd: &impl Query,
    ) -> Result<T, CacheError> {
        let timeout = self.command_timeout;
        let pool = self.pool.as_ref().map_err(|why| self.unavailable(why))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            let mut lent = match self.worker_connection(pool, deadline).await {
                Some(opened) => self.connected(opened, timeout)?,
                None => {
                    let pooled = self
                        .connected(tokio::time::timeout_at(deadline, pool.get()).await, timeout)?;
                    if pooled.is_spent(&self.moves) {
                        // Marked by another command after it was returned; dropping it here
                        // discards it.
                        continue;
                    }
                    pooled.lend()
                }
            };
            match tokio::time::timeout_at(deadline, cmd.query::<T>(&mut lent.link)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => {
                    // A connection whose view of the servers is out of date: a master demoted
                    // by a failover answers writes with READONLY, and a cluster connection
                    // does not know a primary promoted since it was opened. A fresh one
                    // reaches the servers as they are now, and so must every other: the
                    // ones that only read would go on reading a replica.
                    let outdated = matches!(
                        e.kind(),
                        ErrorKind::Server(ServerErrorKind::ReadOnly)
                            | ErrorKind::ClusterConnectionNotFound
                    );
                    if outdated {
                        // Counted once per move: the other connections of its time that answer
                        // the same are already spent.
                        let seen = lent.opened_after_moves;
                        let _ = self.moves.compare_exchange(
                            seen,
                            seen + 1,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    if e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_timeout()
                        || e.is_unrecoverable_error()
                        || outdated
                    {
                        lent.broken.store(true, Ordering::Relaxed);
                    }
                    attempt += 1;
                    if !(e.is_connection_dropped() || outdated) || attempt > self.pool_size {
                        return Err(self.unavailable(&e.to_string()));
                    }
                }
                Err(_) => {
                    // A connection whose answer is late is not lent out again: a fresh one
                    // costs little, and a stalled one would hold up the next command too.
                    lent.broken.store(true, Ordering::Relaxed);
                    return Err(self.timed_out(timeout));
                }
            }
        }
    }

    fn timed_out(&self, timeout: Duration) -> CacheError {
        self.unavailable(&format!("no answer within {} ms", timeout.as_millis()))
    }

    /// The connection a wait within `timeout` got, or why there is none.
    fn connected<C, E: fmt::Display>(
        &self,
        outcome: Result<Result<C, E>, Elapsed>,
        timeout: Duration,
    ) -> Result<C, CacheError> {
        let failure = lock(&self.connect_failure).clone();
        match (outcome, failure) {
            (Ok(Ok(connection)), _) => Ok(connection),
            (Ok(Err(_)) | Err(_), Some(why)) => {
                Err(self.unavailable(&format!("no connection: {why}")))
            }
            (Ok(Err(e)), None) => Err(self.unavailable(&format!("no connection: {e}"))),
            (Err(_), None) => Err(self.timed_out(timeout)),
        }
    }

    /// This thread's own connection, opened on first use, when the thread runs a
    /// single-threaded runtime (each actix-web worker does); `None` elsewhere, and while another
    /// task of this thread is opening it, for the pool to serve instead.
    ///
    /// A pooled connection's I/O is driven by a task of the runtime that opened it, so on a
    /// worker every command crossed threads twice: to that task and back with the answer.
    /// Opened on the worker, the connection's task runs beside the requests that use it, and a
    /// Redis hit costs no thread switch (see `docs/benchmarks.md`). Its commands still pipeline
    /// over one socket, so a worker needs one.
    async fn worker_connection(
        &self,
        pool: &bb8::Pool<Manager>,
        deadline: tokio::time::Instant,
    ) -> Option<Result<Result<Lent, RedisError>, Elapsed>> {
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !on_worker {
            return None;
        }
        let thread = std::thread::current().id();
        {
            let mut connections = lock(&self.worker_connections);
            match connections.get(&thread) {
                Some(WorkerConnection::Open(open)) if !open.is_spent(&self.moves) => {
                    return Some(Ok(Ok(open.lend())));
                }
                Some(WorkerConnection::Opening) => return None,
                Some(WorkerConnection::Open(_)) | None => {}
            }
            connections.insert(thread, WorkerConnection::Opening);
        }
        let opened = tokio::time::timeout_at(deadline, pool.dedicated_connection()).await;
        let mut connections = lock(&self.worker_connections);
        if !matches!(opened, Ok(Ok(_))) {
            connections.remove(&thread);
        }
        Some(opened.map(|opened| {
            opened.map(|connection| {
                let lent = connection.lend();
                connections.insert(thread, WorkerConnection::Open(connection));
                lent
            })
        }))
    }

    pub(super) fn unavailable(&self, why: &str) -> CacheError {
        CacheError::Unavailable(format!("redis: {}", self.secrets.scrub(why)))
    }
}

/// `mutex`'s guard, poisoned or not: what it guards stays consistent whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
