//! Invalidation across a fleet, against its three faults: a load on one instance racing a write
//! on another, one instance cut off from Redis while it takes a write, and a Redis that evicts
//! keys under memory pressure. Each instance pair shares one PostgreSQL database and a Redis
//! of the test's own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use stockpile::Settings;
use stockpile_test_support::{wait_until, FaultProxy, RedisServer};

use crate::support::{shared_redis_settings, TestApp, TestDatabase};

/// How long another instance's first tier may take to hear of a write (a pub/sub message on
/// loopback takes well under a millisecond; this is for a loaded 2-core machine).
const PROPAGATION: Duration = Duration::from_millis(300);

/// An instance on `database` and the Redis at `redis_url`, under `prefix`, with a first tier
/// that only an invalidation can empty within the test.
fn instance(database: &TestDatabase, prefix: &str, redis_url: &str) -> Settings {
    let mut settings = shared_redis_settings(database, prefix);
    settings.redis.url = Some(serde_json::from_value(redis_url.into()).unwrap());
    settings.cache.local_ttl = 300;
    // Two servers, readers and a writer share two cores: a command may wait for a thread
    // past the default 100 ms, which is not what these tests are about.
    settings.redis.command_timeout_ms = 1000;
    settings
}

pub async fn rename(app: &TestApp, ticker: &str, name: &str) {
    let renamed = app
        .admin(Method::PUT, &format!("/api/stocks/{ticker}"))
        .json(&json!({"name": name, "exchange": "NASDAQ", "sector": "Information Technology"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200, "{}", renamed.text().await.unwrap());
}

async fn name_on(app: &TestApp, ticker: &str) -> String {
    app.json(&format!("/api/stocks/{ticker}")).await["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for `app` to answer `name` for `ticker`, and fails with what it answers instead.
async fn sees(app: &TestApp, ticker: &str, name: &str, why: &str) {
    let seen = wait_until(PROPAGATION, || async { name_on(app, ticker).await == name }).await;
    let answered = name_on(app, ticker).await;
    assert!(
        seen && answered == name,
        "{why}: {answered:?}, not {name:?}"
    );
}

async fn backend(app: &TestApp) -> String {
    app.json("/api/cache/status").await["backend"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Both instances over one database and `redis_url`, seeded, with the tickers they share.
async fn pair(redis_url_a: &str, redis_url_b: &str, delay_b: Option<Duration>) -> Option<Pair> {
    let database = TestDatabase::postgres().await?;
    let prefix = format!("e2e-inv-{}:", uuid::Uuid::new_v4().simple());
    let settings_a = instance(&database, &prefix, redis_url_a);
    let mut settings_b = instance(&database, &prefix, redis_url_b);
    let database_proxy = match delay_b {
        Some(delay) => {
            let (proxy, proxied) =
                FaultProxy::in_front_of_database(settings_b.database.url.expose()).await;
            proxy.slow(delay);
            settings_b.database.url = serde_json::from_value(proxied.into()).unwrap();
            Some(proxy)
        }
        None => None,
    };
    let a = TestApp::spawn_with(settings_a, database, 6, 40).await;
    // B shares A's database, which A's test database drops at the end.
    let b = TestApp::spawn_with(settings_b, TestDatabase::sqlite(), 0, 0).await;
    let tickers: Vec<String> = a.json("/api/stocks").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ticker"].as_str().unwrap().to_owned())
        .collect();
    Some(Pair {
        a,
        b,
        tickers,
        _database_proxy: database_proxy,
    })
}

struct Pair {
    a: TestApp,
    b: TestApp,
    tickers: Vec<String>,
    _database_proxy: Option<FaultProxy>,
}

/// Fault 3 of the invalidation issue: B reaches the database 40 ms late each way (a loaded
/// database, another zone) and 8 readers keep reading on B. Each round removes B's entry so
/// that B loads, and A writes while that load may be under way: after its query ran, before
/// its answer came back. B's load, older than the write, must never be the answer after it, on
/// either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_on_one_instance_never_outlives_a_write_on_the_other() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let Some(pair) = pair(&redis.url(), &redis.url(), Some(DATABASE_DELAY)).await else {
        return;
    };
    let (a, b) = (Arc::new(pair.a), Arc::new(pair.b));
    let ticker = pair.tickers[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (b, stop, ticker) = (b.clone(), stop.clone(), ticker.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    assert_eq!(b.get(&format!("/api/stocks/{ticker}")).await.status(), 200);
                }
            })
        })
        .collect();
    let mut late = Vec::new();
    for write in 0..ROUNDS {
        let removed = b
            .admin(
                Method::DELETE,
                &format!("/api/cache/key/stocks:detail:{ticker}"),
            )
            .send()
            .await
            .unwrap();
        assert!(removed.status().is_success() || removed.status() == 404);
        // B's readers miss at once; its load's queries reach the database a delay later each,
        // and their answers come back a delay after that. Aim the write into that window:
        // spread over the rounds, from at once to six delays, so that some land there on any
        // machine, whatever the number of round trips a load takes.
        let aim = DATABASE_DELAY * u32::try_from(write % 12).unwrap() / 2;
        tokio::time::sleep(aim).await;
        let name = format!("Renamed {write}");
        rename(&a, &ticker, &name).await;
        // The writer's own next read sees its write at once.
        assert_eq!(name_on(&a, &ticker).await, name, "write {write} on A");
        let seen = wait_until(PROPAGATION, || async { name_on(&b, &ticker).await == name }).await;
        let (on_a, on_b) = (name_on(&a, &ticker).await, name_on(&b, &ticker).await);
        if !seen || on_a != name || on_b != name {
            late.push((write, on_a, on_b));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        late.is_empty(),
        "{} of {ROUNDS} writes were followed by an older answer (write, on A, on B): {late:?}",
        late.len()
    );
}

/// How late B's database answers, each way, in the race above.
const DATABASE_DELAY: Duration = Duration::from_millis(40);
const ROUNDS: usize = 24;

/// Fault 2: A is cut off from Redis while it takes a write. When A reports itself back on
/// Redis, the write's entries are stale everywhere (B's first tier included), and nothing else
/// was removed: B still hits the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_back_from_a_redis_outage_revokes_only_what_it_wrote() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = FaultProxy::in_front_of(&format!("127.0.0.1:{}", redis.port())).await;
    let Some(pair) = pair(&proxy.url(), &redis.url(), None).await else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    let (written, untouched) = (&pair.tickers[0], &pair.tickers[1]);
    let old_name = name_on(b, written).await;
    let untouched_history = format!("/api/stocks/{untouched}/history");
    for path in [
        format!("/api/stocks/{untouched}"),
        untouched_history.clone(),
    ] {
        b.get(&path).await;
        assert_eq!(b.get(&path).await.headers()["x-cache"], "HIT", "{path}");
    }
    let keys_before = redis.cli(["DBSIZE"]).await.unwrap();

    proxy.cut().await;
    assert!(
        wait_until(Duration::from_secs(5), || async {
            backend(a).await == "memory"
        })
        .await,
        "A did not notice the cut"
    );
    rename(a, written, "Written While Away").await;
    // B cannot know yet: A cannot reach Redis to tell anyone.
    assert_eq!(name_on(b, written).await, old_name);
    proxy.restore().await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            backend(a).await == "redis"
        })
        .await,
        "A did not come back to Redis"
    );

    // As soon as A is back: the write is seen on B, from its first tier's point of view too.
    assert_eq!(name_on(b, written).await, "Written While Away");
    assert_eq!(name_on(a, written).await, "Written While Away");
    for path in [format!("/api/stocks/{untouched}"), untouched_history] {
        assert_eq!(
            b.get(&path).await.headers()["x-cache"],
            "HIT",
            "{path} was removed by a recovery that should leave it alone"
        );
    }
    let keys_after: u64 = redis.cli(["DBSIZE"]).await.unwrap().trim().parse().unwrap();
    let keys_before: u64 = keys_before.trim().parse().unwrap();
    assert!(
        keys_after + 3 >= keys_before,
        "recovery emptied Redis: {keys_before} keys before, {keys_after} after"
    );

    // Clearing the cache leaves no bookkeeping behind: no generation, no lease.
    let cleared = a.admin(Method::DELETE, "/api/cache").send().await.unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(redis.cli(["DBSIZE"]).await.unwrap().trim(), "0");
}

/// Redis evicts under memory pressure (`allkeys-lru`, as managed Redis often does) while
/// writes and reads go on: no read is ever older than an acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_never_brings_back_an_answer_older_than_a_write() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(redis) =
        RedisServer::start_with(["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]).await
    else {
        return;
    };
    let Some(pair) = pair(&redis.url(), &redis.url(), None).await else {
        return;
    };
    let (a, b) = (Arc::new(pair.a), Arc::new(pair.b));
    let stop = Arc::new(AtomicBool::new(false));
    // Pressure: big values under the same prefix keep Redis evicting, generations included.
    let filler = {
        let (stop, url) = (stop.clone(), redis.url());
        tokio::spawn(async move {
            let client = bb8_redis::redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let ballast = vec![b'x'; 64 * 1024];
            let mut n = 0_u64;
            while !stop.load(Ordering::SeqCst) {
                let _: Result<(), _> = bb8_redis::redis::cmd("SET")
                    .arg(format!("ballast:{n}"))
                    .arg(&ballast)
                    .query_async(&mut conn)
                    .await;
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    let readers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|app| {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    assert_eq!(app.get("/api/stocks?page_size=10").await.status(), 200);
                }
            })
        })
        .collect();
    for write in 0..30 {
        let ticker = &pair.tickers[write % pair.tickers.len()];
        let name = format!("Evicted {write}");
        rename(&a, ticker, &name).await;
        assert_eq!(name_on(&a, ticker).await, name, "write {write} on A");
        sees(&b, ticker, &name, &format!("write {write} on B")).await;
        let listed = a.json("/api/stocks?page_size=10").await;
        let in_list = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["ticker"] == ticker.as_str())
            .map(|s| s["name"].clone());
        assert_eq!(in_list, Some(json!(name)), "the list after write {write}");
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    let ballast_keys = filler.await.unwrap();
    let evicted: u64 = redis
        .info("stats", "evicted_keys")
        .await
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        evicted > 0,
        "Redis evicted nothing ({ballast_keys} ballast keys written): the test proved nothing"
    );
}
