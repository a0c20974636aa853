//! Helpers: a real Redis to test against (or a loud skip), servers the tests own, a TCP
//! black hole that can also stand between the cache and a real Redis, and a MONITOR tap.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8_redis::redis::{self, aio::MultiplexedConnection};
use futures::StreamExt;
use stockpile_infrastructure::cache::glob::escape;
use stockpile_infrastructure::cache::redact_url;
use stockpile_infrastructure::{RedisCache, RedisSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A test that needs something it does not have fails on CI and says so loudly elsewhere.
pub fn skip_or_fail(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why}, and CI=true: the cache tests need it"
    );
    // Written to the stream itself rather than with `eprintln!`, which the test harness
    // captures and hides for a passing test.
    let _ = writeln!(std::io::stderr(), "\n********\nSKIPPED: {why}\n********\n");
}

/// Settings as the service has them by default, but for `url` and `prefix`.
pub fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        ..RedisSettings::default()
    }
}

pub async fn connect(url: &str) -> Option<MultiplexedConnection> {
    let attempt = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok::<_, redis::RedisError>(conn)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(conn)) => Some(conn),
        _ => None,
    }
}

/// One test's corner of the shared Redis at `REDIS_URL`: every key it makes lives under
/// `stockpile-test-<uuid>`, plus one foreign key of "another application" that must survive.
pub struct RedisTest {
    pub url: String,
    /// `stockpile-test-<uuid>`: the start of every prefix this test uses.
    pub base: String,
    /// A key outside every prefix, standing for another application's data.
    pub foreign_key: String,
    raw: MultiplexedConnection,
}

impl RedisTest {
    /// The test's corner, or `None` after a loud skip when Redis is not reachable.
    pub async fn start() -> Option<Self> {
        let url = redis_url();
        let Some(raw) = connect(&url).await else {
            skip_or_fail(&format!("Redis not reachable at {}", redact_url(&url)));
            return None;
        };
        let id = uuid::Uuid::new_v4();
        let mut test = Self {
            url,
            base: format!("stockpile-test-{id}"),
            foreign_key: format!("foreign:key-{id}"),
            raw,
        };
        let foreign_key = test.foreign_key.clone();
        test.set(&foreign_key, "theirs").await;
        Some(test)
    }

    /// A cache under `prefix`, which should start with [`Self::base`].
    pub fn cache(&self, prefix: &str) -> RedisCache {
        RedisCache::new(&settings(&self.url, prefix))
    }

    /// Sets a key directly, expiring in a minute so that a failed test leaves nothing behind.
    pub async fn set(&mut self, key: &str, value: &str) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut self.raw)
            .await
            .expect("SET on the test Redis");
    }

    pub async fn get(&mut self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.raw)
            .await
            .expect("GET on the test Redis")
    }

    pub async fn pttl(&mut self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.raw)
            .await
            .expect("PTTL on the test Redis")
    }

    pub async fn exists(&mut self, key: &str) -> bool {
        self.get(key).await.is_some()
    }

    /// Every key starting with `prefix`, sorted.
    pub async fn keys_under(&mut self, prefix: &str) -> Vec<String> {
        scan(&mut self.raw, &format!("{}*", escape(prefix))).await
    }

    pub async fn assert_foreign_key_survives(&mut self) {
        let key = self.foreign_key.clone();
        assert_eq!(
            self.get(&key).await.as_deref(),
            Some("theirs"),
            "{key} was touched"
        );
    }

    /// Removes everything the test made.
    pub async fn cleanup(mut self) {
        let mut keys = self.keys_under(&self.base.clone()).await;
        keys.push(self.foreign_key.clone());
        redis::cmd("UNLINK")
            .arg(&keys)
            .query_async::<u64>(&mut self.raw)
            .await
            .expect("UNLINK on the test Redis");
    }
}

pub async fn scan(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut cursor = 0_u64;
    let mut keys = Vec::new();
    loop {
        let (next, mut page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN on the test Redis");
        keys.append(&mut page);
        if next == 0 {
            keys.sort();
            return keys;
        }
        cursor = next;
    }
}

/// Records every command Redis receives while it runs (`MONITOR`).
pub struct Monitor {
    seen: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Monitor {
    pub async fn start(url: &str) -> Self {
        let client = redis::Client::open(url).expect("a valid test URL");
        let monitor = client.get_async_monitor().await.expect("MONITOR");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut lines = monitor.into_on_message::<String>();
            while let Some(line) = lines.next().await {
                sink.lock().expect("not poisoned").push(line);
            }
        });
        Self { seen, task }
    }

    /// The names of the commands seen, upper case; waits a little for the last to arrive.
    pub async fn stop(self) -> Vec<(String, String)> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.task.abort();
        let seen = self.seen.lock().expect("not poisoned");
        seen.iter()
            .filter_map(|line| {
                // `1700000000.000000 [0 127.0.0.1:5000] "SCAN" "0" "MATCH" ...`
                let (_, command) = line.split_once("] \"")?;
                let name = command.split('"').next()?;
                Some((name.to_ascii_uppercase(), line.clone()))
            })
            .collect()
    }
}

/// A port nothing listens on right now.
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` the test owns, on a port of its own, killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` after a loud skip when `redis-server` is not installed.
    pub async fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("stockpile-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut server = Self {
            port: spare_port(),
            dir,
            child: None,
        };
        if server.restart().await {
            Some(server)
        } else {
            skip_or_fail("redis-server is not installed or did not start");
            None
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, loading what `SAVE` last wrote; true once it answers.
    pub async fn restart(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(child) = spawned else {
            return false;
        };
        self.child = Some(child);
        for _ in 0..50 {
            if connect(&self.url()).await.is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Kills it at once, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP listener that accepts connections and never answers, or a proxy to a real server
/// that can be switched into such a black hole and back. A black-holed proxy stalls, as a
/// network partition does: bytes wait, and flow on in order when it passes traffic again.
pub struct BlackHole {
    port: u16,
    swallowing: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl BlackHole {
    /// A listener that never answers.
    pub async fn start() -> Self {
        Self::listen(None).await
    }

    /// A proxy to `upstream_port`, passing traffic until [`Self::swallow`] is called.
    pub async fn proxy_to(upstream_port: u16) -> Self {
        let hole = Self::listen(Some(upstream_port)).await;
        hole.pass();
        hole
    }

    async fn listen(upstream: Option<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let swallowing = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (Arc::clone(&swallowing), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                match upstream {
                    Some(upstream) => held.push(AbortOnDrop(tokio::spawn(relay(
                        client,
                        upstream,
                        Arc::clone(&flag),
                    )))),
                    // Kept open and never read: the other side waits for ever.
                    None => held.push(AbortOnDrop(tokio::spawn(async move {
                        let _client = client;
                        std::future::pending::<()>().await;
                    }))),
                }
            }
        });
        Self {
            port,
            swallowing,
            connections,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// From now on, bytes in either direction stall, and new connections hang.
    pub fn swallow(&self) {
        self.swallowing.store(true, Ordering::SeqCst);
    }

    /// From now on, traffic passes again.
    pub fn pass(&self) {
        self.swallowing.store(false, Ordering::SeqCst);
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        // Aborting the accept loop drops the tasks it holds, and with them every connection.
        self.task.abort();
    }
}

/// Copies bytes between a client and the upstream, stalling while `swallowing`.
async fn relay(client: TcpStream, upstream: u16, swallowing: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(pump(client_read, server_write, Arc::clone(&swallowing)));
    let down = tokio::spawn(pump(server_read, client_write, swallowing));
    // Dropping this task (when the hole is dropped) must end both directions.
    let _guards = (AbortOnDrop(up), AbortOnDrop(down));
    std::future::pending::<()>().await;
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    swallowing: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        stall_while(&swallowing).await;
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        stall_while(&swallowing).await;
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

async fn stall_while(swallowing: &AtomicBool) {
    while swallowing.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
