//! Helpers: a corner of the shared Redis to test against (or a loud skip) and a MONITOR tap.
//! Servers the tests own, the black hole and the fault proxy come from stockpile-test-support.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8_redis::redis::{self, aio::MultiplexedConnection};
use futures::StreamExt;
use stockpile_application::ports::Cache;
use stockpile_infrastructure::cache::glob::escape;
use stockpile_infrastructure::cache::redact_url;
use stockpile_infrastructure::{RedisCache, RedisSettings};
use tokio::task::JoinHandle;

pub use stockpile_test_support::{skip_or_fail, FaultProxy, RedisServer};

/// One key of each family (lists twice, details twice), as the tests of pattern deletes use them.
pub const FAMILY_KEYS: [&str; 6] = [
    "stocks:list:1",
    "stocks:list:2",
    "stocks:detail:AAPL",
    "stocks:detail:MSFT",
    "stocks:history:AAPL:1",
    "leaderboard:top:1",
];

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Settings as the service has them by default, but for `url` and `prefix`.
pub fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        ..RedisSettings::default()
    }
}

/// What a fallback (or tiered) cache serves under `key`, as text. A command that misses its
/// timeout on a loaded machine fails on its own (a slow Redis is not taken for a dead one),
/// so such a failure is asked again, twice at most.
pub async fn text(cache: &dyn Cache, key: &str) -> Option<String> {
    let mut attempts = 0;
    loop {
        match cache.get(key).await {
            Ok(value) => return value.map(|value| String::from_utf8_lossy(&value).into_owned()),
            Err(error) if attempts < 2 => {
                attempts += 1;
                eprintln!("{key}: {error}; asking again");
            }
            Err(error) => panic!("{key}: the cache failed three times in a row: {error}"),
        }
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
    url: String,
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
        Self {
            url: url.to_owned(),
            seen,
            task,
        }
    }

    /// The names of the commands seen, upper case, once every command sent before this call
    /// has arrived: Redis reports them in the order it ran them, so that is when a marker sent
    /// now comes back.
    pub async fn stop(self) -> Vec<(String, String)> {
        let marker = format!("monitor-marker-{}", uuid::Uuid::new_v4());
        let mut conn = connect(&self.url)
            .await
            .expect("the monitored Redis answers");
        redis::cmd("ECHO")
            .arg(&marker)
            .query_async::<String>(&mut conn)
            .await
            .expect("ECHO");
        let seen_marker = stockpile_test_support::wait_until(Duration::from_secs(5), || {
            let found = self
                .seen
                .lock()
                .expect("not poisoned")
                .iter()
                .any(|line| line.contains(&marker));
            std::future::ready(found)
        })
        .await;
        assert!(seen_marker, "MONITOR never reported the marker {marker}");
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
