//! The cache as a client sees it: Redis outages, slowdowns and black holes under load,
//! recovery, and one load per miss.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use stockpile::settings::{CacheBackendKind, ConnectionUrl};
use stockpile_test_support::{FaultProxy, RedisServer};

use crate::support::{shared_redis_settings, test_settings, TestApp, TestDatabase};

const PATHS: &[&str] = &[
    "/api/stocks",
    "/api/stocks/A",
    "/api/stocks/AAPL/history",
    "/api/stocks/top?metric=active",
    "/api/stocks/leaderboard/top?period=1m",
];

/// The command timeout of the Redis-outage test: the server shares 2 cores with 32 client
/// connections, and a live Redis must not be mistaken for a dead one because a command waited
/// for CPU. A dead Redis refuses at once anyway.
const OUTAGE_COMMAND_TIMEOUT_MS: u64 = 500;

async fn wait_for_backend(app: &TestApp, backend: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let status = app.json("/api/cache/status").await;
        if status["backend"] == backend || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_redis_under_load_fails_no_request_and_recovery_serves_no_stale_entry() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let database = TestDatabase::sqlite();
    let mut settings = test_settings(&database);
    settings.cache.backend = CacheBackendKind::Auto;
    settings.redis.url = Some(serde_json::from_value::<ConnectionUrl>(redis.url().into()).unwrap());
    settings.cache.key_prefix = format!("e2e-{}:", uuid::Uuid::new_v4().simple());
    settings.redis.command_timeout_ms = OUTAGE_COMMAND_TIMEOUT_MS;
    let app = TestApp::spawn_with(settings, database, 12, 40).await;

    let status = app.json("/api/cache/status").await;
    assert_eq!(
        (status["backend"].as_str(), status["degraded"].as_bool()),
        (Some("redis"), Some(false))
    );
    assert_eq!(
        app.get("/api/stocks/AAPL").await.headers()["x-cache"],
        "MISS"
    );
    assert_eq!(
        app.get("/api/stocks/AAPL").await.headers()["x-cache"],
        "HIT"
    );

    // 32 connections read for three seconds; Redis dies after one. A dead Redis refuses at
    // once, so no answer should take much more than the command timeout.
    let kill = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.kill().await;
    };
    let bound = Duration::from_millis(OUTAGE_COMMAND_TIMEOUT_MS + 750);
    tokio::join!(load_within(&app, 3, bound, "stopped"), kill);

    let status = app.json("/api/cache/status").await;
    assert_eq!(
        (status["backend"].as_str(), status["degraded"].as_bool()),
        (Some("memory"), Some(true)),
        "{status}"
    );
    assert_eq!(app.json("/health/ready").await["status"], "degraded");

    // A write during the outage cannot reach Redis; after recovery its result must show.
    let renamed = app
        .admin(Method::PUT, "/api/stocks/AAPL")
        .json(&json!({"name": "Apple Renamed", "exchange": "NASDAQ", "sector": "Information Technology"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert!(redis.restart().await);
    let status = wait_for_backend(&app, "redis", Duration::from_secs(10)).await;
    assert_eq!(
        status["backend"], "redis",
        "not back on Redis within 10 s: {status}"
    );
    assert_eq!(app.json("/api/stocks/AAPL").await["name"], "Apple Renamed");
}

#[tokio::test]
async fn two_hundred_concurrent_cold_requests_cause_one_load() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let app = TestApp::spawn(TestDatabase::sqlite(), 10, 300).await;
    let path = "/api/stocks/leaderboard/top?period=1y&limit=7";
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let request = app.client.get(format!("{}{path}", app.base));
            tokio::spawn(async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let loads = metrics
        .lines()
        .find(|l| {
            l.starts_with("stockpile_cache_loads_total{") && l.contains("family=\"leaderboard\"")
        })
        .unwrap_or_else(|| panic!("no leaderboard loads counter in:\n{metrics}"));
    assert!(loads.ends_with(" 1"), "expected one load: {loads}");
}

/// Statuses and latencies of 32 connections reading for `seconds`, each cycling through
/// `PATHS` and 40 list pages (distinct keys, so that Redis is asked too, not only memory).
async fn load(app: &TestApp, seconds: u64) -> (Vec<u16>, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let readers: Vec<_> = (0..32)
        .map(|i| {
            let (client, base) = (app.client.clone(), app.base.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut n = i;
                while Instant::now() < deadline {
                    let path = match n % 2 {
                        0 => PATHS[n / 2 % PATHS.len()].to_owned(),
                        _ => format!("/api/stocks?page_size=1&page={}", n / 2 % 40 + 1),
                    };
                    n += 1;
                    let started = Instant::now();
                    let status = client
                        .get(format!("{base}{path}"))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    answers.push((status, started.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut latencies = Vec::new();
    for reader in readers {
        for (status, took) in reader.await.unwrap() {
            statuses.push(status);
            latencies.push(took);
        }
    }
    latencies.sort();
    (statuses, latencies)
}

/// Runs [`load`] and checks that every answer was 2xx and the p99 stayed under `bound`.
async fn load_within(app: &TestApp, seconds: u64, bound: Duration, redis_was: &str) {
    let (statuses, latencies) = load(app, seconds).await;
    assert!(
        statuses.len() > 100,
        "only {} requests were sent",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "a non-2xx answer while Redis was {redis_was}"
    );
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!(
        "{redis_was} Redis: {} requests, p99 {p99:?}",
        statuses.len()
    );
    assert!(p99 < bound, "p99 {p99:?} while Redis was {redis_was}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_then_black_holed_redis_under_load_costs_at_most_a_timeout_and_recovers() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let upstream = redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    let proxy = FaultProxy::in_front_of(&upstream).await;
    let database = TestDatabase::sqlite();
    let prefix = format!("e2e-fault-{}:", uuid::Uuid::new_v4().simple());
    let mut settings = shared_redis_settings(&database, &prefix);
    settings.redis.url = Some(
        serde_json::from_value::<ConnectionUrl>(format!("redis://{}/0", proxy.addr()).into())
            .unwrap(),
    );
    // Generous for a debug build sharing 2 cores with 32 clients, so that only the black hole,
    // not a command waiting for CPU, switches to memory; short enough to bound every answer.
    let command_timeout = Duration::from_millis(250);
    settings.redis.command_timeout_ms = command_timeout.as_millis() as u64;
    settings.cache.local_ttl = 1;
    let app = TestApp::spawn_with(settings, database, 12, 40).await;
    if !crate::support::all_on_redis_or_skip(&[&app]).await {
        return;
    }
    // Bound on any answer under a fault: one command timeout, plus room for a debug build
    // serving 32 connections on 2 cores.
    let bound = command_timeout + Duration::from_millis(750);

    proxy.slow(Duration::from_millis(20));
    load_within(&app, 2, bound, "slow").await;
    let status = app.json("/api/cache/status").await;
    assert_eq!(
        status["backend"], "redis",
        "a slow but answering Redis was left: {status}"
    );

    proxy.swallow();
    load_within(&app, 3, bound, "black-holed").await;
    let status = app.json("/api/cache/status").await;
    assert_eq!(
        (status["backend"].as_str(), status["degraded"].as_bool()),
        (Some("memory"), Some(true)),
        "{status}"
    );

    proxy.pass();
    let status = wait_for_backend(&app, "redis", Duration::from_secs(10)).await;
    assert_eq!(
        status["backend"], "redis",
        "not back on Redis within 10 s: {status}"
    );
    let cleared = app
        .admin(Method::DELETE, "/api/cache")
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
}
