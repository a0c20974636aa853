//! The fallback between Redis and memory, against Redis servers the tests own: one they kill
//! and restart, and one behind a proxy they turn into a black hole.

use std::time::{Duration, Instant};

use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheError, CacheState};
use stockpile_infrastructure::{FallbackCache, MemoryCache, RedisCache};

use super::support::{connect, settings, text, FaultProxy, RedisServer};

/// Generous against the 100 ms command timeout, for a loaded machine; a cache that waited
/// for a dead Redis (seconds, with the driver's defaults) still fails it.
const PROMPTLY: Duration = Duration::from_millis(600);

/// How long recovery may take: a probe interval, a ping and a clear, with room to spare.
const RECOVERY: Duration = Duration::from_secs(5);

const PREFIX: &str = "stockpile-test:";

async fn fallback_on(url: &str) -> FallbackCache {
    let redis = RedisCache::new(&settings(url, PREFIX));
    let memory = MemoryCache::new(PREFIX, 1024 * 1024).with_max_ttl(Duration::from_secs(5));
    FallbackCache::start(redis, memory).await
}

async fn backend(cache: &FallbackCache) -> CacheState {
    cache.status().await.state
}

async fn wait_for_redis(cache: &FallbackCache) {
    let started = Instant::now();
    while backend(cache).await != CacheState::Serving(CacheBackend::Redis) {
        assert!(
            started.elapsed() < RECOVERY,
            "not back on Redis after {RECOVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `operation` and checks it came back promptly.
async fn promptly<T>(what: &str, operation: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let result = operation.await;
    assert!(
        started.elapsed() < PROMPTLY,
        "{what} took {:?}",
        started.elapsed()
    );
    result
}

/// A fallback cache serving from a Redis of its own, reached through a proxy the test controls.
async fn on_redis_behind_a_proxy() -> Option<(RedisServer, FaultProxy, FallbackCache)> {
    let server = RedisServer::start().await?;
    let proxy = FaultProxy::in_front_of(&format!("127.0.0.1:{}", server.port())).await;
    let cache = fallback_on(&proxy.url()).await;
    assert_eq!(
        backend(&cache).await,
        CacheState::Serving(CacheBackend::Redis)
    );
    Some((server, proxy, cache))
}

#[tokio::test]
async fn a_crashed_redis_falls_back_to_memory_and_recovery_replays_only_what_it_missed() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let mut raw = connect(&server.url())
        .await
        .expect("the server just answered");
    let cache = fallback_on(&server.url()).await;
    assert_eq!(
        backend(&cache).await,
        CacheState::Serving(CacheBackend::Redis)
    );

    // Before the outage: an entry in Redis, written to disk so the restart brings it back,
    // as a Redis with persistence (or a replica) would.
    let hour = Duration::from_secs(3600);
    cache
        .put("stocks:detail:AAPL", Bytes::from("old"), hour)
        .await
        .expect("stored");
    cache
        .put("stocks:list:1", Bytes::from("old list"), hour)
        .await
        .expect("stored");
    cache
        .put("stocks:detail:GOOG", Bytes::from("untouched"), hour)
        .await
        .expect("stored");
    bb8_redis::redis::cmd("SET")
        .arg("foreign:key")
        .arg("theirs")
        .query_async::<()>(&mut raw)
        .await
        .expect("SET");
    bb8_redis::redis::cmd("SAVE")
        .query_async::<()>(&mut raw)
        .await
        .expect("SAVE");
    assert_eq!(
        text(&cache, "stocks:detail:AAPL").await.as_deref(),
        Some("old")
    );

    server.kill().await;

    // The first operation after the crash finds out, within the timeout, and memory serves.
    let invalidated = promptly(
        "delete during the outage",
        cache.delete("stocks:detail:AAPL"),
    )
    .await;
    assert_eq!(
        invalidated,
        Ok(false),
        "applied to the (empty) memory stand-in"
    );
    assert_eq!(backend(&cache).await, CacheState::FallenBack);
    promptly(
        "put in memory",
        cache.put("stocks:detail:MSFT", Bytes::from("mem"), hour),
    )
    .await
    .expect("stored in memory");
    assert_eq!(
        promptly("get from memory", text(&cache, "stocks:detail:MSFT"))
            .await
            .as_deref(),
        Some("mem")
    );
    assert_eq!(
        promptly("pattern in memory", cache.delete_matching("stocks:list:*")).await,
        Ok(0)
    );

    assert!(server.restart().await, "redis-server did not come back");
    let mut raw = connect(&server.url())
        .await
        .expect("the server just answered");
    wait_for_redis(&cache).await;

    // The restart loaded the old entries; recovery applied what was invalidated during the
    // outage before serving, so none of that is served, and left everything else alone.
    // Memory was cleared too.
    assert_eq!(
        text(&cache, "stocks:detail:AAPL").await,
        None,
        "served a stale entry"
    );
    assert_eq!(
        text(&cache, "stocks:list:1").await,
        None,
        "served a stale entry"
    );
    assert_eq!(text(&cache, "stocks:detail:MSFT").await, None);
    assert_eq!(
        text(&cache, "stocks:detail:GOOG").await.as_deref(),
        Some("untouched"),
        "recovery removed an entry nothing invalidated"
    );
    let foreign: Option<String> = bb8_redis::redis::cmd("GET")
        .arg("foreign:key")
        .query_async(&mut raw)
        .await
        .expect("GET");
    assert_eq!(
        foreign.as_deref(),
        Some("theirs"),
        "the restart did not load the saved data"
    );

    cache
        .put("stocks:detail:AAPL", Bytes::from("new"), hour)
        .await
        .expect("stored");
    let in_redis: Option<String> = bb8_redis::redis::cmd("GET")
        .arg(format!("{PREFIX}stocks:detail:AAPL"))
        .query_async(&mut raw)
        .await
        .expect("GET");
    assert_eq!(in_redis.as_deref(), Some("new"), "not serving from Redis");
}

#[tokio::test]
async fn a_black_holed_redis_costs_one_timeout_per_operation_and_switches_to_memory() {
    let hole = FaultProxy::black_hole().await;
    let redis = RedisCache::new(&settings(&hole.url(), PREFIX));
    let hour = Duration::from_secs(3600);
    let unavailable = |result: Result<(), CacheError>| matches!(result, Err(CacheError::Unavailable(why)) if !why.contains(&hole.url()));
    assert!(unavailable(promptly("get", redis.get("k")).await.map(drop)));
    assert!(unavailable(
        promptly("put", redis.put("k", Bytes::from("v"), hour)).await
    ));
    assert!(unavailable(
        promptly("delete", redis.delete("k")).await.map(drop)
    ));
    assert!(unavailable(
        promptly("pattern", redis.delete_matching("*"))
            .await
            .map(drop)
    ));
    assert!(unavailable(
        promptly("clear", redis.clear()).await.map(drop)
    ));
    assert!(unavailable(promptly("ping", redis.ping()).await));
    assert!(hole.connections() > 0, "never reached the black hole");

    let cache = promptly("startup", fallback_on(&hole.url())).await;
    assert_eq!(backend(&cache).await, CacheState::FallenBack);
    assert_eq!(
        cache.coherence(),
        None,
        "memory standing in hears nothing of the other instances' writes"
    );
    promptly("put", cache.put("k", Bytes::from("v"), hour))
        .await
        .expect("stored in memory");
    assert_eq!(
        promptly("get", text(&cache, "k")).await.as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn a_redis_that_stops_answering_mid_way_switches_to_memory_and_back() {
    let Some((_server, proxy, cache)) = on_redis_behind_a_proxy().await else {
        return;
    };
    let hour = Duration::from_secs(3600);
    cache
        .put("stocks:detail:AAPL", Bytes::from("old"), hour)
        .await
        .expect("stored");

    proxy.swallow();
    // The invalidation cannot reach Redis: the cache must switch at once, so that the entry
    // left in Redis is never served, and still apply the invalidation to memory.
    let invalidated = promptly(
        "invalidation into the black hole",
        cache.delete_matching("stocks:*"),
    )
    .await;
    assert_eq!(invalidated, Ok(0));
    assert_eq!(backend(&cache).await, CacheState::FallenBack);
    assert_eq!(
        promptly("get from memory", text(&cache, "stocks:detail:AAPL")).await,
        None
    );
    promptly(
        "put in memory",
        cache.put("stocks:detail:MSFT", Bytes::from("mem"), hour),
    )
    .await
    .expect("stored in memory");
    assert_eq!(
        text(&cache, "stocks:detail:MSFT").await.as_deref(),
        Some("mem")
    );

    proxy.pass();
    wait_for_redis(&cache).await;
    assert_eq!(
        text(&cache, "stocks:detail:AAPL").await,
        None,
        "served a stale entry"
    );
    assert_eq!(
        text(&cache, "stocks:detail:MSFT").await,
        None,
        "memory leaked into Redis mode"
    );
    cache
        .put("stocks:detail:AAPL", Bytes::from("new"), hour)
        .await
        .expect("stored");
    assert_eq!(
        text(&cache, "stocks:detail:AAPL").await.as_deref(),
        Some("new")
    );
}

#[tokio::test]
async fn the_probe_stops_when_the_cache_is_dropped() {
    let hole = FaultProxy::black_hole().await;
    let cache = fallback_on(&hole.url()).await;
    drop(cache);
    // Let any connection attempt under way when it was dropped reach the listener first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connections = hole.connections();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        hole.connections(),
        connections,
        "something still probes Redis"
    );
}

/// The bound on the switch after Redis stops answering: the failed command's timeout, the
/// probe's (ten command timeouts) and a loaded machine's delays.
const SWITCH_BOUND: Duration = Duration::from_millis(2000);

#[tokio::test]
async fn a_slow_redis_fails_single_commands_but_is_not_taken_for_a_dead_one() {
    let Some((_server, proxy, cache)) = on_redis_behind_a_proxy().await else {
        return;
    };
    // 60 ms each way: every command misses its 100 ms timeout, the probe's PING answers.
    proxy.slow(Duration::from_millis(60));
    for n in 0..5 {
        let started = Instant::now();
        let read = promptly("a slow read", cache.get(&format!("cold:{n}"))).await;
        assert!(
            matches!(read, Err(CacheError::Unavailable(_))),
            "read {n} past the timeout is a failure for its caller: {read:?} after {:?}",
            started.elapsed()
        );
    }
    // The probe, woken by the failures, finds Redis slow but there; give it two tries.
    tokio::time::sleep(SWITCH_BOUND).await;
    let status = cache.status().await;
    assert_eq!(
        status.state,
        CacheState::Serving(CacheBackend::Redis),
        "a slow Redis was taken for a dead one"
    );
    assert!(status.faults.failed_commands >= 5, "{:?}", status.faults);
    assert_eq!(status.faults.fallbacks, 0);

    // Redis that stops answering is another matter: one failed read, and the probe switches.
    proxy.swallow();
    let started = Instant::now();
    assert!(cache.get("cold:again").await.is_err());
    let switched = stockpile_test_support::wait_until(SWITCH_BOUND, || async {
        backend(&cache).await == CacheState::FallenBack
    })
    .await;
    assert!(
        switched,
        "still on a silent Redis after {:?}",
        started.elapsed()
    );
    assert_eq!(cache.status().await.faults.fallbacks, 1);
    proxy.pass();
    wait_for_redis(&cache).await;
}
