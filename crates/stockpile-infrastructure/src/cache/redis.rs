//! The Redis cache: every key under the configured prefix, every command bounded in time.
//!
//! Invariants: nothing outside the prefix is ever read, listed or deleted (patterns are sent
//! as `SCAN MATCH <escaped prefix><pattern>`, and every key found is checked again against the
//! prefix before it is unlinked), and `KEYS`, `FLUSHDB` and `FLUSHALL` are never sent: `KEYS`
//! blocks the server for the whole keyspace, and the flushes would take other applications'
//! keys with ours.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::bb8;
use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::{
    self, AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError, RedisResult,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use stockpile_application::ports::{
    Cache, CacheBackend, CacheError, CacheState, CacheStatus, RedisTopology,
};
use tokio::runtime::RuntimeFlavor;
use tokio::time::error::Elapsed;

use super::{glob, LONGEST_TTL};

mod batch;

/// How keys are fetched per `SCAN` step: large enough that clearing a big cache takes few
/// round trips, small enough that no single step blocks Redis noticeably.
const SCAN_COUNT: u32 = 500;

/// Where Redis is and how long the service waits for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db`; the password never appears in `Debug` or errors.
    pub url: String,
    /// The namespace of every key, `stockpile:` by default.
    pub key_prefix: String,
    /// Connections kept open. Each is multiplexed, so a few serve many concurrent requests.
    pub pool_size: u32,
    /// The longest wait for a connection; kept short so that a dead Redis costs one short
    /// wait before the service falls back, rather than one per request.
    pub connect_timeout: Duration,
    /// The longest wait for any one command, after which it counts as unavailable.
    pub command_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            key_prefix: "stockpile:".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_millis(100),
            command_timeout: Duration::from_millis(100),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// `url` with its password, if any, replaced by `***`: in the user-info part
/// (`redis://user:secret@host`, or all of it when it has no `:`) and in a `password` or
/// `pass` query parameter (`redis+unix:///socket?pass=secret`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Not a URL at all: it cannot be told which part is secret, so none is shown.
        return "***".to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((before, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if matches!(name, "password" | "pass") => {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{before}?{}", query.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{}{authority}{path}", &url[..scheme_end])
}

/// The secret parts of the URL, kept to scrub them from error messages.
#[derive(Clone)]
struct Secrets {
    url: String,
    redacted_url: String,
}

impl Secrets {
    /// `message` with the URL and anything the redacted URL hides removed. Redis's own
    /// messages do not quote the URL, but an error text is no place to find out that one does.
    fn scrub(&self, message: &str) -> String {
        let mut message = message.replace(&self.url, &self.redacted_url);
        for secret in hidden_parts(&self.url) {
            message = message.replace(secret, "***");
        }
        message
    }
}

/// The parts of `url` that [`redact_url`] hides.
fn hidden_parts(url: &str) -> Vec<&str> {
    let Some(rest) = url.find("://").map(|i| &url[i + 3..]) else {
        return vec![url];
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut parts = Vec::new();
    if let Some((user_info, _)) = rest[..authority_end].rsplit_once('@') {
        parts.push(user_info.split_once(':').map_or(user_info, |(_, p)| p));
    }
    if let Some((_, query)) = rest.split_once('?') {
        parts.extend(
            query
                .split('&')
                .filter_map(|pair| match pair.split_once('=') {
                    Some(("password" | "pass", value)) => Some(value),
                    _ => None,
                }),
        );
    }
    parts.retain(|part| !part.is_empty());
    parts
}

/// A command or a pipeline: what [`RedisCache::run`] sends.
trait Query: Sync {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut MultiplexedConnection,
    ) -> BoxFuture<'a, RedisResult<T>>;
}

impl Query for Cmd {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut MultiplexedConnection,
    ) -> BoxFuture<'a, RedisResult<T>> {
        Box::pin(self.query_async(conn))
    }
}

impl Query for Pipeline {
    fn query<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        conn: &'a mut MultiplexedConnection,
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
    inner: MultiplexedConnection,
    /// Shared with every clone lent out, and set by any of them after an I/O error, a
    /// dropped connection or a timeout, so that the pool discards the connection the next
    /// time it is checked out or returned instead of lending it again (a multiplexed
    /// connection whose socket died fails every later command).
    broken: Arc<AtomicBool>,
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
    client: redis::Client,
    config: AsyncConnectionConfig,
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Connection, RedisError> {
        let inner = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(Connection {
            inner,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), RedisError> {
        redis::cmd("PING").query_async(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

/// A [`Cache`] in Redis, under a key prefix, through a small pool of multiplexed connections.
///
/// Creating it does not touch the network: connections are opened on first use, so a dead
/// Redis never fails or delays startup.
pub struct RedisCache {
    /// The connection pool, or why there is none: a URL that does not parse is reported by
    /// every command as unavailability rather than failing startup, like a dead Redis.
    pool: Result<bb8::Pool<Manager>, String>,
    /// The client the pool connects with, kept to open the pub/sub connection of the first
    /// tier's invalidations (`None` with the pool's error).
    client: Option<redis::Client>,
    /// One connection per single-threaded runtime's thread (actix-web's workers); see
    /// [`RedisCache::worker_connection`].
    worker_connections: Mutex<HashMap<ThreadId, WorkerConnection>>,
    /// The longest wait for a new connection.
    connect_timeout: Duration,
    key_prefix: String,
    /// The prefix with its glob metacharacters escaped, put in front of every pattern.
    match_prefix: String,
    command_timeout: Duration,
    /// How many times a command is retried on a connection that turns out to be dead: once
    /// per pooled connection, since after a Redis restart every one of them is.
    pool_size: u32,
    secrets: Secrets,
    /// What this cache writes into the leases it takes, so that it releases only its own.
    lease_token: String,
}

/// Deletes the lease in `KEYS[1]` only while it still holds this cache's token `ARGV[1]`.
const RELEASE_LEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// A token unique among the caches sharing a Redis (process id, clock and a counter): it
/// names this cache's leases and its invalidation messages.
pub(super) fn instance_token() -> String {
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

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &self.secrets.redacted_url)
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
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
        let secrets = Secrets {
            url: settings.url.clone(),
            redacted_url: redact_url(&settings.url),
        };
        // bb8 refuses a zero connection timeout.
        let connect_timeout = settings.connect_timeout.max(Duration::from_millis(1));
        let pool_size = settings.pool_size.max(1);
        let mut pubsub_client = None;
        let pool = match redis::Client::open(settings.url.as_str()) {
            Ok(client) => {
                pubsub_client = Some(client.clone());
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
                    .build_unchecked(Manager { client, config }))
            }
            Err(e) => {
                let why = format!(
                    "the Redis URL is not valid: {}",
                    secrets.scrub(&e.to_string())
                );
                tracing::error!(url = %secrets.redacted_url, "{why}; Redis will not be used");
                Err(why)
            }
        };
        Self {
            pool,
            client: pubsub_client,
            worker_connections: Mutex::new(HashMap::new()),
            connect_timeout,
            match_prefix: glob::escape(&settings.key_prefix),
            key_prefix: settings.key_prefix.clone(),
            command_timeout: settings.command_timeout,
            pool_size,
            secrets,
            lease_token: instance_token(),
        }
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
        self.run::<String>(&redis::cmd("PING")).await.map(drop)
    }

    /// Runs one command within the command timeout, on a fresh connection when a pooled one
    /// turns out to be dead.
    async fn run<T: FromRedisValue + Send>(&self, cmd: &impl Query) -> Result<T, CacheError> {
        let pool = self.pool.as_ref().map_err(|why| self.unavailable(why))?;
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        let mut attempt = 0;
        loop {
            let (mut conn, broken) = match self.worker_connection(pool, deadline).await {
                Some(opened) => self.connected(opened)?,
                None => {
                    let pooled =
                        self.connected(tokio::time::timeout_at(deadline, pool.get()).await)?;
                    if pooled.broken.load(Ordering::Relaxed) {
                        // Marked by another command after it was returned; dropping it here
                        // discards it.
                        continue;
                    }
                    (pooled.inner.clone(), Arc::clone(&pooled.broken))
                }
            };
            match tokio::time::timeout_at(deadline, cmd.query::<T>(&mut conn)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => {
                    if e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_timeout()
                        || e.is_unrecoverable_error()
                    {
                        broken.store(true, Ordering::Relaxed);
                    }
                    attempt += 1;
                    if !e.is_connection_dropped() || attempt > self.pool_size {
                        return Err(self.unavailable(&e.to_string()));
                    }
                }
                Err(_) => {
                    // A connection whose answer is late is not lent out again: a fresh one
                    // costs little, and a stalled one would hold up the next command too.
                    broken.store(true, Ordering::Relaxed);
                    return Err(self.timed_out());
                }
            }
        }
    }

    fn timed_out(&self) -> CacheError {
        self.unavailable(&format!(
            "no answer within {} ms",
            self.command_timeout.as_millis()
        ))
    }

    /// The connection a wait within the command timeout got, or why there is none.
    fn connected<C, E: fmt::Display>(
        &self,
        outcome: Result<Result<C, E>, Elapsed>,
    ) -> Result<C, CacheError> {
        match outcome {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(self.unavailable(&format!("no connection: {e}"))),
            Err(_) => Err(self.timed_out()),
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
    ) -> Option<Result<Result<(MultiplexedConnection, Arc<AtomicBool>), RedisError>, Elapsed>> {
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !on_worker {
            return None;
        }
        let thread = std::thread::current().id();
        let lock = || {
            self.worker_connections
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        {
            let mut connections = lock();
            match connections.get(&thread) {
                Some(WorkerConnection::Open(open)) if !open.broken.load(Ordering::Relaxed) => {
                    return Some(Ok(Ok((open.inner.clone(), Arc::clone(&open.broken)))));
                }
                Some(WorkerConnection::Opening) => return None,
                Some(WorkerConnection::Open(_)) | None => {}
            }
            connections.insert(thread, WorkerConnection::Opening);
        }
        let opened = tokio::time::timeout_at(deadline, pool.dedicated_connection()).await;
        let mut connections = lock();
        if !matches!(opened, Ok(Ok(_))) {
            connections.remove(&thread);
        }
        Some(opened.map(|opened| {
            opened.map(|connection| {
                let lent = (connection.inner.clone(), Arc::clone(&connection.broken));
                connections.insert(thread, WorkerConnection::Open(connection));
                lent
            })
        }))
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
        let (value, pttl): (Option<Vec<u8>>, i64) = self.run(&pipeline).await?;
        Ok(value.and_then(|value| {
            let left = match pttl {
                // No expiry.
                -1 => None,
                // Gone between the two commands, or expiring now.
                millis if millis <= 0 => return None,
                millis => Some(Duration::from_millis(millis.unsigned_abs())),
            };
            Some((Bytes::from(value), left))
        }))
    }

    /// The pub/sub channel of invalidations, under the prefix.
    pub(crate) fn invalidation_channel(&self) -> String {
        format!("{}__invalidate", self.key_prefix)
    }

    /// Publishes `message` on the invalidation channel; returns how many subscribers got it.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn publish_invalidation(&self, message: &str) -> Result<u64, CacheError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.invalidation_channel()).arg(message);
        self.run(&publish).await
    }

    /// A dedicated pub/sub connection subscribed to the invalidation channel, within the
    /// connect and command timeouts.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time or refuses.
    pub(crate) async fn subscribe_invalidations(&self) -> Result<redis::aio::PubSub, CacheError> {
        let client = match (&self.client, &self.pool) {
            (Some(client), _) => client,
            (None, Err(why)) => return Err(self.unavailable(why)),
            (None, Ok(_)) => return Err(self.unavailable("no client")),
        };
        let channel = self.invalidation_channel();
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        };
        match tokio::time::timeout(self.connect_timeout + self.command_timeout, subscribe).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(self.unavailable(&format!("subscribe: {e}"))),
            Err(_) => Err(self.unavailable("subscribe: no answer in time")),
        }
    }

    fn unavailable(&self, why: &str) -> CacheError {
        CacheError::Unavailable(format!("redis: {}", self.secrets.scrub(why)))
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Where the load lease on `key` lives: under the prefix, apart from the entries.
    fn lease_key(&self, key: &str) -> String {
        format!("{}lease:{key}", self.key_prefix)
    }

    /// `SCAN`s for keys under the prefix matching `pattern` and `UNLINK`s them page by page;
    /// returns how many were removed. `UNLINK` frees memory off Redis's main thread, so even
    /// a large clear does not stall other clients.
    async fn unlink_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}{pattern}", self.match_prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, mut keys): (u64, Vec<Vec<u8>>) = self.run(&scan).await?;
            // The escaped prefix already confines the match; checking again costs nothing and
            // keeps a mistake in escaping from ever deleting another application's keys.
            keys.retain(|key| key.starts_with(self.key_prefix.as_bytes()));
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                removed += self.run::<u64>(&unlink).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut get = redis::cmd("GET");
        get.arg(self.full_key(key));
        let value: Option<Vec<u8>> = self.run(&get).await?;
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
        self.run::<()>(&set).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut unlink = redis::cmd("UNLINK");
        unlink.arg(self.full_key(key));
        Ok(self.run::<u64>(&unlink).await? > 0)
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        self.unlink_matching(pattern).await
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.unlink_matching("*").await
    }

    /// `SET <prefix>lease:<key> <token> NX PX <ttl>`: granted when no lease was there.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let millis = ttl.min(LONGEST_TTL).as_millis().max(1);
        let mut set = redis::cmd("SET");
        set.arg(self.lease_key(key))
            .arg(&self.lease_token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(millis).unwrap_or(u64::MAX));
        // `OK` when set, nil when the key was there.
        let set: Option<String> = self.run(&set).await?;
        Ok(set.is_some())
    }

    /// Deletes the lease only while it holds this cache's token (one `EVAL`, so atomically).
    async fn release_lease(&self, key: &str) -> Result<(), CacheError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(RELEASE_LEASE)
            .arg(1)
            .arg(self.lease_key(key))
            .arg(&self.lease_token);
        self.run::<u64>(&eval).await.map(drop)
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
            topology: Some(RedisTopology::Standalone),
            key_prefix: self.key_prefix.clone(),
        }
    }
}
