//! Memory as the first tier in front of Redis: served without a round trip, forgotten on
//! every instance when any of them invalidates, and cleared when the subscription to the
//! invalidations drops.

use std::time::{Duration, Instant};

use bb8_redis::redis::{self, aio::MultiplexedConnection};
use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheState};
use stockpile_infrastructure::{FallbackCache, MemoryCache, RedisCache};

use super::support::{connect, settings, text, FaultProxy, RedisServer, RedisTest};

/// How long an invalidation may take to reach the other instance's memory: pub/sub delivery
/// is well under a millisecond locally; this leaves room for a loaded machine.
const PROPAGATION: Duration = Duration::from_secs(1);

const HOUR: Duration = Duration::from_secs(3600);

async fn tiered(url: &str, prefix: &str, local_ttl: Duration) -> FallbackCache {
    let redis = RedisCache::new(&settings(url, prefix));
    let memory = MemoryCache::new(prefix, 1024 * 1024).with_max_ttl(local_ttl);
    let cache = FallbackCache::start(redis, memory).await;
    assert_eq!(
        cache.status().await.state,
        CacheState::Serving(CacheBackend::Redis)
    );
    cache
}

async fn raw(url: &str) -> MultiplexedConnection {
    connect(url).await.expect("Redis answered a moment ago")
}

async fn unlink(conn: &mut MultiplexedConnection, key: &str) {
    redis::cmd("UNLINK")
        .arg(key)
        .query_async::<u64>(conn)
        .await
        .expect("UNLINK");
}

async fn subscribers(conn: &mut MultiplexedConnection, channel: &str) -> u64 {
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

/// Waits until `key` reads as `None` on `cache`; panics after `within`.
async fn until_missing(cache: &dyn Cache, key: &str, within: Duration, why: &str) {
    let started = Instant::now();
    while text(cache, key).await.is_some() {
        assert!(
            started.elapsed() < within,
            "{why}: {key} still served after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Puts `key` and removes it from Redis behind the cache's back: true when the cache still
/// serves it, that is, from its first tier.
async fn served_from_memory(
    cache: &dyn Cache,
    conn: &mut MultiplexedConnection,
    prefix: &str,
    key: &str,
) -> bool {
    cache
        .put(key, Bytes::from("in memory"), HOUR)
        .await
        .expect("stored");
    unlink(conn, &format!("{prefix}{key}")).await;
    text(cache, key).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_instance_reaches_the_other_s_first_tier() {
    let Some(redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let channel = format!("{prefix}__invalidate");
    let mut conn = raw(&redis.url).await;
    // A long local TTL: only an invalidation can make A forget within the bound.
    let a = tiered(&redis.url, &prefix, HOUR).await;
    let b = tiered(&redis.url, &prefix, HOUR).await;
    assert_eq!(subscribers(&mut conn, &channel).await, 2);

    for key in ["stocks:detail:AAPL", "stocks:list:1", "stocks:top:1"] {
        a.put(key, Bytes::from("old"), HOUR).await.expect("stored");
        assert_eq!(text(&a, key).await.as_deref(), Some("old"));
        assert_eq!(
            text(&b, key).await.as_deref(),
            Some("old"),
            "shared through Redis"
        );
    }

    // One invalidation of each kind, made on B, each forgotten by A's memory.
    assert_eq!(b.delete("stocks:detail:AAPL").await, Ok(true));
    until_missing(&a, "stocks:detail:AAPL", PROPAGATION, "delete on B").await;
    for key in ["gen:market", "gen:stock:AAPL"] {
        a.put(key, Bytes::from("token"), HOUR)
            .await
            .expect("stored");
        assert_eq!(text(&b, key).await.as_deref(), Some("token"));
    }
    let revoked = ["gen:market", "gen:stock:AAPL", "gen:history:AAPL"].map(String::from);
    assert_eq!(a.delete_many(&revoked).await, Ok(2));
    until_missing(&b, "gen:market", PROPAGATION, "delete_many on A").await;
    until_missing(&b, "gen:stock:AAPL", PROPAGATION, "delete_many on A").await;
    assert_eq!(b.delete_matching("stocks:list:*").await, Ok(1));
    until_missing(&a, "stocks:list:1", PROPAGATION, "delete_matching on B").await;
    assert_eq!(b.clear().await, Ok(1));
    until_missing(&a, "stocks:top:1", PROPAGATION, "clear on B").await;

    // The invalidating instance forgets at once.
    b.put("k", Bytes::from("v"), HOUR).await.expect("stored");
    assert_eq!(b.delete("k").await, Ok(true));
    assert_eq!(text(&b, "k").await, None);

    // Dropping the caches ends their subscriptions.
    drop((a, b));
    let started = Instant::now();
    while subscribers(&mut conn, &channel).await > 0 {
        assert!(
            started.elapsed() < PROPAGATION,
            "a dropped cache still subscribes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.cleanup().await;
}

#[tokio::test]
async fn the_first_tier_serves_without_a_round_trip_for_at_most_the_local_ttl() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let mut conn = raw(&redis.url).await;
    let local_ttl = Duration::from_millis(1500);
    let cache = tiered(&redis.url, &prefix, local_ttl).await;

    // Stored with an hour to live, removed from Redis behind the cache's back: memory still
    // serves it, so no round trip was made, until the local TTL passes.
    let stored = Instant::now();
    assert!(served_from_memory(&cache, &mut conn, &prefix, "stocks:detail:AAPL").await);
    assert!(!redis.exists(&format!("{prefix}stocks:detail:AAPL")).await);
    assert_eq!(
        text(&cache, "stocks:detail:AAPL").await.as_deref(),
        Some("in memory")
    );
    until_missing(
        &cache,
        "stocks:detail:AAPL",
        local_ttl + Duration::from_secs(1),
        "local TTL",
    )
    .await;
    assert!(
        stored.elapsed() >= local_ttl - Duration::from_millis(50),
        "forgotten too early"
    );

    // A read from Redis fills memory too, for what the Redis entry has left.
    let key = "stocks:detail:MSFT";
    redis.set(&format!("{prefix}{key}"), "from redis").await;
    assert_eq!(text(&cache, key).await.as_deref(), Some("from redis"));
    unlink(&mut conn, &format!("{prefix}{key}")).await;
    assert_eq!(
        text(&cache, key).await.as_deref(),
        Some("from redis"),
        "not filled"
    );

    let key = "stocks:detail:IBM";
    redis::cmd("SET")
        .arg(format!("{prefix}{key}"))
        .arg("short")
        .arg("PX")
        .arg(300)
        .query_async::<()>(&mut conn)
        .await
        .expect("SET");
    assert_eq!(text(&cache, key).await.as_deref(), Some("short"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        text(&cache, key).await,
        None,
        "outlived its Redis entry in memory"
    );

    redis.assert_foreign_key_survives().await;
    drop(cache);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_local_ttl_of_zero_switches_the_first_tier_off() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let mut conn = raw(&redis.url).await;
    let cache = tiered(&redis.url, &prefix, Duration::ZERO).await;

    // Removed from Redis behind the cache's back: gone at once, memory kept nothing.
    assert!(!served_from_memory(&cache, &mut conn, &prefix, "stocks:detail:AAPL").await);
    // Every read is Redis's: a value changed there behind the cache's back is read as it is.
    let key = "stocks:detail:MSFT";
    redis.set(&format!("{prefix}{key}"), "first").await;
    assert_eq!(text(&cache, key).await.as_deref(), Some("first"));
    redis.set(&format!("{prefix}{key}"), "second").await;
    assert_eq!(text(&cache, key).await.as_deref(), Some("second"));
    assert_eq!(
        cache.status().await.state,
        CacheState::Serving(CacheBackend::Redis)
    );
    assert_eq!(
        cache.coherence(),
        None,
        "without a first tier nothing here hears the other instances' writes"
    );

    drop(cache);
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_is_restored_and_clears_the_first_tier() {
    // A server of its own: `CLIENT KILL TYPE pubsub` would cut every test's subscription.
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let url = server.url();
    let prefix = "stockpile-test:";
    let mut conn = raw(&url).await;
    let a = tiered(&url, prefix, HOUR).await;
    let b = tiered(&url, prefix, HOUR).await;
    assert!(served_from_memory(&a, &mut conn, prefix, "stocks:detail:AAPL").await);
    let vouched = a.coherence().map(|c| c.mark);

    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 2);
    // Invalidations may have been lost meanwhile: memory is cleared.
    until_missing(
        &a,
        "stocks:detail:AAPL",
        PROPAGATION,
        "after the subscription dropped",
    )
    .await;
    assert_eq!(
        a.status().await.state,
        CacheState::Serving(CacheBackend::Redis),
        "Redis itself still serves"
    );
    assert!(vouched.is_some());
    assert_ne!(
        a.coherence().map(|c| c.mark),
        vouched,
        "an answer read before the subscription dropped was vouched for after it"
    );

    // It subscribes again by itself, and then serves from memory and hears B again.
    let started = Instant::now();
    while !served_from_memory(&a, &mut conn, prefix, "stocks:detail:MSFT").await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never subscribed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B subscribes again on its own backoff, which a loaded machine may stretch.
    let channel = format!("{prefix}__invalidate");
    while subscribers(&mut conn, &channel).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "B never subscribed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.delete("stocks:detail:MSFT").await, Ok(false));
    until_missing(
        &a,
        "stocks:detail:MSFT",
        PROPAGATION,
        "delete on B after resubscribing",
    )
    .await;
}

#[tokio::test]
async fn two_instances_share_one_lease_through_redis() {
    let Some(redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let a = tiered(&redis.url, &prefix, HOUR).await;
    let b = tiered(&redis.url, &prefix, HOUR).await;
    let ttl = Duration::from_secs(2);
    assert_eq!(a.try_lease("cold", ttl).await, Ok(true));
    assert_eq!(b.try_lease("cold", ttl).await, Ok(false));
    a.release_lease("cold").await.expect("answers");
    assert_eq!(b.try_lease("cold", ttl).await, Ok(true));
    b.release_lease("cold").await.expect("answers");
    redis.cleanup().await;
}

#[tokio::test]
async fn a_batch_takes_what_memory_has_and_asks_redis_once_for_the_rest() {
    let Some(redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let cache = tiered(&redis.url, &prefix, HOUR).await;
    let value = |key: &str| Bytes::from(format!("value of {key}"));
    // AAPL goes through the cache (both tiers); MSFT is only in Redis.
    cache
        .put("quotes:AAPL", value("quotes:AAPL"), HOUR)
        .await
        .unwrap();
    let only_redis = RedisCache::new(&settings(&redis.url, &prefix));
    only_redis
        .put("quotes:MSFT", value("quotes:MSFT"), HOUR)
        .await
        .unwrap();
    let monitor = super::support::Monitor::start(&redis.url).await;
    let keys = ["quotes:AAPL", "quotes:MSFT", "quotes:ZZZZ"].map(String::from);
    let values = cache.get_many(&keys).await.expect("always answers");
    let commands = monitor.stop().await;
    assert_eq!(
        values,
        [Some(value("quotes:AAPL")), Some(value("quotes:MSFT")), None]
    );
    let lines: Vec<&String> = commands
        .iter()
        .filter(|(_, line)| line.contains(&redis.base))
        .map(|(_, line)| line)
        .collect();
    // One pipelined GET (with its PTTL) per key memory lacked, none for the one it had.
    let gets: Vec<&&String> = lines.iter().filter(|l| l.contains("\"GET\"")).collect();
    assert_eq!(gets.len(), 2, "{lines:?}");
    assert!(
        !gets.iter().any(|l| l.contains("quotes:AAPL")),
        "memory answered AAPL: {lines:?}"
    );
    // MSFT was filled in memory: gone from Redis, still served.
    let mut conn = raw(&redis.url).await;
    unlink(&mut conn, &format!("{prefix}quotes:MSFT")).await;
    let again = cache.get_many(&keys[1..2]).await.unwrap();
    assert_eq!(again, [Some(value("quotes:MSFT"))]);
    drop(cache);
    redis.cleanup().await;
}

/// Two instances on a Redis of their own, A directly and B through a proxy the test controls.
async fn one_direct_one_behind_a_proxy(
    prefix: &str,
) -> Option<(RedisServer, FaultProxy, FallbackCache, FallbackCache)> {
    let server = RedisServer::start().await?;
    let proxy = FaultProxy::in_front_of(&format!("127.0.0.1:{}", server.port())).await;
    let a = tiered(&server.url(), prefix, HOUR).await;
    let b = tiered(&proxy.url(), prefix, HOUR).await;
    Some((server, proxy, a, b))
}

#[tokio::test]
async fn an_invalidation_answers_only_once_the_other_first_tiers_forgot() {
    let prefix = "confirmed:";
    let Some((_server, proxy, a, b)) = one_direct_one_behind_a_proxy(prefix).await else {
        return;
    };
    // B hears every invalidation 30 ms late; its commands (60 ms a round trip now) stay within
    // their 100 ms timeout. Before invalidations were confirmed, B's memory still served the
    // older entry right after A's answer.
    proxy.slow(Duration::from_millis(30));
    let key = "stocks:detail:AAPL";
    for kind in ["delete", "delete_matching", "clear"] {
        a.put(key, Bytes::from("old"), HOUR).await.expect("stored");
        assert_eq!(
            text(&b, key).await.as_deref(),
            Some("old"),
            "{kind}: B fills its memory"
        );
        let before = b
            .coherence()
            .expect("B's first tier vouches for what it answers");
        assert_eq!(
            before.for_at_most, HOUR,
            "as long as its memory keeps an entry"
        );
        let removed = match kind {
            "delete" => a.delete(key).await.map(u64::from),
            "delete_matching" => a.delete_matching("stocks:detail:*").await,
            _ => a.clear().await,
        };
        assert_eq!(removed, Ok(1), "{kind}");
        assert_eq!(
            text(&b, key).await,
            None,
            "{kind}: B served the older entry after A's invalidation answered"
        );
        // What B's batch answers rely on to be reused: the mark moved before A answered.
        assert_ne!(
            b.coherence().map(|after| after.mark),
            Some(before.mark),
            "{kind}: B's mark stood after A's invalidation answered"
        );
    }
    let faults = a.status().await.faults;
    assert_eq!(faults.unconfirmed_invalidations, 0, "{faults:?}");
}

#[tokio::test]
async fn an_instance_that_does_not_confirm_delays_an_invalidation_boundedly_and_is_counted() {
    let prefix = "unconfirmed:";
    let Some((_server, proxy, a, b)) = one_direct_one_behind_a_proxy(prefix).await else {
        return;
    };
    a.put("k", Bytes::from("old"), HOUR).await.expect("stored");
    assert_eq!(text(&b, "k").await.as_deref(), Some("old"));
    // B's connections stay open but nothing reaches it: it cannot confirm.
    proxy.swallow();
    let started = Instant::now();
    assert_eq!(a.delete("k").await, Ok(true));
    let waited = started.elapsed();
    // Ten command timeouts of 100 ms, then the write goes on: never failed, never hung.
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?} for B's confirmation"
    );
    let status = a.status().await;
    assert_eq!(status.state, CacheState::Serving(CacheBackend::Redis));
    assert_eq!(
        status.faults.unconfirmed_invalidations, 1,
        "{:?}",
        status.faults
    );
    assert_eq!(
        status.faults.fallbacks, 0,
        "a silent peer is not a Redis outage"
    );
    proxy.pass();
}
