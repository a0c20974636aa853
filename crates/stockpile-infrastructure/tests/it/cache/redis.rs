//! The Redis cache against the real Redis at `REDIS_URL`; each test under its own prefix.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheState, RedisTopology};
use stockpile_infrastructure::{MemoryCache, RedisCache};

use super::support::{connect, settings, Monitor, RedisServer, RedisTest, FAMILY_KEYS};

async fn put(cache: &RedisCache, key: &str, retain_for: Duration) {
    cache
        .put(key, Bytes::from(format!("value of {key}")), retain_for)
        .await
        .expect("Redis accepts the put");
}

/// The names of the monitored commands that concern this test's keys (under `base`).
fn names_of_ours<'a>(commands: &'a [(String, String)], base: &str) -> Vec<&'a str> {
    commands
        .iter()
        .filter(|(_, line)| line.contains(base))
        .map(|(name, _)| name.as_str())
        .collect()
}

#[tokio::test]
async fn stores_under_the_prefix_until_the_entry_expires() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let cache = redis.cache(&prefix);
    put(&cache, "stocks:detail:AAPL", Duration::from_millis(300)).await;
    assert_eq!(
        cache.get("stocks:detail:AAPL").await.expect("answers"),
        Some(Bytes::from("value of stocks:detail:AAPL"))
    );
    let full_key = format!("{prefix}stocks:detail:AAPL");
    assert_eq!(
        redis.get(&full_key).await.as_deref(),
        Some("value of stocks:detail:AAPL")
    );
    let pttl = redis.pttl(&full_key).await;
    assert!((1..=300).contains(&pttl), "PTTL {pttl}");
    assert_eq!(
        cache.get("stocks:detail:MSFT").await.expect("answers"),
        None
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cache.get("stocks:detail:AAPL").await.expect("answers"),
        None
    );
    let status = cache.status().await;
    assert_eq!(status.state, CacheState::Serving(CacheBackend::Redis));
    assert_eq!(status.topology, Some(RedisTopology::Standalone));
    assert_eq!(status.key_prefix, prefix);
    cache.ping().await.expect("PONG");
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

#[tokio::test]
async fn delete_reports_whether_there_was_a_key() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let cache = redis.cache(&format!("{}:", redis.base));
    put(&cache, "k", Duration::from_secs(60)).await;
    assert!(cache.delete("k").await.expect("answers"));
    assert!(!cache.delete("k").await.expect("answers"));
    assert_eq!(cache.get("k").await.expect("answers"), None);
    // The foreign key's name relative to no prefix at all is still out of reach.
    let foreign_key = redis.foreign_key.clone();
    assert!(!cache.delete(&foreign_key).await.expect("answers"));
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

/// The usual keys and two whose names glob patterns must escape.
const KEYS: [&str; 8] = [
    FAMILY_KEYS[0],
    FAMILY_KEYS[1],
    FAMILY_KEYS[2],
    FAMILY_KEYS[3],
    FAMILY_KEYS[4],
    FAMILY_KEYS[5],
    "a*b",
    "weird]key",
];

/// Patterns that Redis and the memory cache must agree on, tricky ones included.
const PATTERNS: [&str; 12] = [
    "stocks:list:*",
    "stocks:detail:[A-M]???",
    "*:AAPL*",
    "stocks:[^l]*",
    "a\\*b",
    "a*b",
    "weird[]]key",
    "weird\\]key",
    "[",
    "*[",
    "leaderboard:top:?",
    "*",
];

#[tokio::test]
async fn patterns_remove_what_the_memory_cache_removes_and_nothing_else() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    for (i, pattern) in PATTERNS.into_iter().enumerate() {
        let prefix = format!("{}:{i}:", redis.base);
        let cache = redis.cache(&prefix);
        let memory = MemoryCache::new(&prefix, 1024 * 1024);
        for key in KEYS {
            put(&cache, key, Duration::from_secs(60)).await;
            memory
                .put(key, Bytes::from("v"), Duration::from_secs(60))
                .await
                .expect("accepted");
        }
        let removed = cache.delete_matching(pattern).await.expect("answers");
        let removed_in_memory = memory.delete_matching(pattern).await.expect("answers");
        assert_eq!(removed, removed_in_memory, "pattern {pattern:?}");
        for key in KEYS {
            let in_memory = memory.get(key).await.expect("answers").is_some();
            let in_redis = cache.get(key).await.expect("answers").is_some();
            assert_eq!(in_redis, in_memory, "{key} after {pattern:?}");
        }
    }
    assert_eq!(
        redis.keys_under(&format!("{}:11:", redis.base)).await,
        Vec::<String>::new(),
        "`*` left keys"
    );
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

#[tokio::test]
async fn clear_and_patterns_never_reach_past_the_prefix() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let base = redis.base.clone();
    // (the cache's prefix, a neighbour's key that a careless pattern would take with it)
    let cases = [
        (format!("{base}:p:"), format!("{base}:p2:k")),
        (
            format!("{base}:p:"),
            format!("{base}:p:").trim_end_matches(':').to_owned(),
        ),
        (format!("{base}:a*:"), format!("{base}:abc:k")),
        (format!("{base}:a?:"), format!("{base}:ab:k")),
        (format!("{base}:[ab]:"), format!("{base}:a:k")),
        (format!("{base}:b\\:"), format!("{base}:b:k")),
        (format!("{base}:c[:"), format!("{base}:c:")),
    ];
    for (prefix, neighbour) in &cases {
        redis.set(neighbour, "neighbour").await;
        let cache = redis.cache(prefix);
        for pattern in ["*", "?*", "[a-z]*", "k", "*k*"] {
            put(&cache, "k", Duration::from_secs(60)).await;
            put(&cache, "kk", Duration::from_secs(60)).await;
            cache.delete_matching(pattern).await.expect("answers");
            assert!(
                redis.exists(neighbour).await,
                "{pattern:?} under {prefix:?} took {neighbour}"
            );
        }
        put(&cache, "k", Duration::from_secs(60)).await;
        assert!(cache.clear().await.expect("answers") >= 1);
        assert!(
            redis.exists(neighbour).await,
            "clear of {prefix:?} took {neighbour}"
        );
        assert_eq!(
            redis.keys_under(prefix).await,
            Vec::<String>::new(),
            "clear of {prefix:?} left keys"
        );
    }
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

#[tokio::test]
async fn clear_counts_what_it_removes_across_many_scan_pages() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let cache = redis.cache(&format!("{}:", redis.base));
    let many = 1_200;
    for i in 0..many {
        put(
            &cache,
            &format!("stocks:detail:T{i}"),
            Duration::from_secs(60),
        )
        .await;
    }
    assert_eq!(cache.clear().await.expect("answers"), many);
    assert_eq!(cache.clear().await.expect("answers"), 0);
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

#[tokio::test]
async fn never_sends_keys_or_flushes() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let monitor = Monitor::start(&redis.url).await;
    let prefix = format!("{}:m*:", redis.base);
    let cache = redis.cache(&prefix);
    for key in ["stocks:list:1", "stocks:detail:AAPL", "leaderboard:top:1"] {
        put(&cache, key, Duration::from_secs(60)).await;
        cache.get(key).await.expect("answers");
    }
    cache.delete("stocks:list:1").await.expect("answers");
    cache.delete_matching("stocks:*").await.expect("answers");
    cache.clear().await.expect("answers");
    cache.status().await;
    let commands = monitor.stop().await;
    let ours = names_of_ours(&commands, &redis.base);
    for expected in ["SET", "GET", "UNLINK", "SCAN"] {
        assert!(
            ours.contains(&expected),
            "MONITOR did not see our {expected}: {ours:?}"
        );
    }
    let forbidden: Vec<&(String, String)> = commands
        .iter()
        .filter(|(name, _)| matches!(name.as_str(), "KEYS" | "FLUSHDB" | "FLUSHALL"))
        .collect();
    assert!(forbidden.is_empty(), "forbidden commands: {forbidden:?}");
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

#[tokio::test]
async fn a_lease_is_granted_to_one_cache_until_released_or_expired() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    // Two instances on one prefix, and one under another prefix.
    let (a, b) = (redis.cache(&prefix), redis.cache(&prefix));
    let elsewhere = redis.cache(&format!("{}-other:", redis.base));
    let key = "leaderboard:top:1m";
    let ttl = Duration::from_millis(300);
    assert!(a.try_lease(key, ttl).await.expect("answers"));
    // NX: neither another instance nor the holder itself gets it again.
    assert!(!b.try_lease(key, ttl).await.expect("answers"));
    assert!(!a.try_lease(key, ttl).await.expect("answers"));
    // Another key, and the same key under another prefix, are free.
    assert!(b
        .try_lease("stocks:detail:AAPL", ttl)
        .await
        .expect("answers"));
    assert!(elsewhere.try_lease(key, ttl).await.expect("answers"));
    // Under the prefix, apart from the entry, with the TTL.
    let lease_key = format!("{prefix}lease:{key}");
    assert!(redis.exists(&lease_key).await);
    let pttl = redis.pttl(&lease_key).await;
    assert!((1..=300).contains(&pttl), "PTTL {pttl}");
    assert_eq!(a.get(key).await.expect("answers"), None);
    // Only the holder releases it.
    b.release_lease(key).await.expect("answers");
    assert!(redis.exists(&lease_key).await, "b released a's lease");
    a.release_lease(key).await.expect("answers");
    assert!(!redis.exists(&lease_key).await);
    assert!(b.try_lease(key, ttl).await.expect("answers"));
    // A lease not released expires, and is then granted again.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!redis.exists(&lease_key).await);
    assert!(a.try_lease(key, ttl).await.expect("answers"));
    // b's late release cannot remove a's lease taken since.
    b.release_lease(key).await.expect("answers");
    assert!(redis.exists(&lease_key).await);
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}

/// Far more concurrent commands than pooled connections: a multiplexed connection pipelines
/// them all, so none waits for the pool past its short timeout (which would count as Redis
/// being unavailable and switch an instance to memory under mere load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_commands_share_a_small_pool_without_waiting_for_it() {
    let Some(redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let cache = std::sync::Arc::new(RedisCache::new(&stockpile_infrastructure::RedisSettings {
        pool_size: 1,
        // Long enough for any one round trip on a loaded machine, far shorter than 2,000
        // commands one after another.
        command_timeout: Duration::from_secs(2),
        ..super::support::settings(&redis.url, &prefix)
    }));
    put(&cache, "stocks:detail:AAPL", Duration::from_secs(60)).await;
    let gets = (0..2_000).map(|_| {
        let cache = std::sync::Arc::clone(&cache);
        tokio::spawn(async move { cache.get("stocks:detail:AAPL").await })
    });
    for get in futures::future::join_all(gets).await {
        let value = get.expect("the task ran").expect("Redis answered in time");
        assert_eq!(value, Some(Bytes::from("value of stocks:detail:AAPL")));
    }
    redis.cleanup().await;
}

/// The number of clients connected to the Redis at `url`, the asking one included.
async fn connected_clients(url: &str) -> usize {
    let mut conn = connect(url).await.expect("Redis answers");
    let list: String = bb8_redis::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("CLIENT LIST");
    list.lines().count()
}

/// Each thread running a single-threaded runtime (an actix-web worker) reads through a
/// connection of its own, driven by that runtime, and opens a new one by itself once Redis
/// has restarted under it.
#[test]
fn each_worker_thread_reads_through_its_own_connection_and_replaces_it_after_a_restart() {
    let main = tokio::runtime::Runtime::new().expect("a runtime");
    let Some(mut server) = main.block_on(RedisServer::start()) else {
        return;
    };
    let url = server.url();
    let cache = {
        let _runtime = main.enter();
        Arc::new(RedisCache::new(&settings(&url, "workers:")))
    };
    // From the multi-threaded runtime: through the pool, which opens one connection.
    main.block_on(put(&cache, "k", Duration::from_secs(60)));
    let expected = Some(Bytes::from("value of k"));

    let barrier = Arc::new(Barrier::new(3));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (cache, barrier, expected) =
                (Arc::clone(&cache), Arc::clone(&barrier), expected.clone());
            std::thread::spawn(move || {
                let worker = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                let read_all = || {
                    worker.block_on(async {
                        for _ in 0..50 {
                            assert_eq!(cache.get("k").await, Ok(expected.clone()));
                        }
                    });
                };
                read_all();
                barrier.wait(); // counted
                barrier.wait(); // Redis restarted, and `k` stored again
                                // The dead connection is found out by the first command that uses it; by
                                // the second at the latest the thread reads through a new one.
                let _ = worker.block_on(cache.get("k"));
                read_all();
                barrier.wait(); // read again
                barrier.wait(); // counted again: the runtime, and its connection, may go
            })
        })
        .collect();

    barrier.wait();
    // The test's own, the pool's and one per worker thread.
    assert_eq!(main.block_on(connected_clients(&url)), 4);
    main.block_on(async {
        server.kill().await;
        assert!(server.restart().await, "redis-server did not come back");
        // The pool's connection died too: the first put may find that out.
        let _ = cache
            .put("k", Bytes::from("value of k"), Duration::from_secs(60))
            .await;
        put(&cache, "k", Duration::from_secs(60)).await;
    });
    barrier.wait();
    barrier.wait();
    assert_eq!(main.block_on(connected_clients(&url)), 4);
    barrier.wait();
    for worker in workers {
        worker.join().expect("every read of the worker succeeded");
    }
}

#[tokio::test]
async fn a_batch_is_one_pipeline_under_the_prefix() {
    let Some(redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let cache = redis.cache(&prefix);
    put(&cache, "quotes:AAPL", Duration::from_secs(60)).await;
    put(&cache, "quotes:MSFT", Duration::from_secs(60)).await;
    let monitor = Monitor::start(&redis.url).await;
    let keys = ["quotes:MSFT", "quotes:ZZZZ", "quotes:AAPL"].map(String::from);
    let values = cache.get_many(&keys).await.expect("answers");
    let commands = monitor.stop().await;
    assert_eq!(
        values,
        [
            Some(Bytes::from("value of quotes:MSFT")),
            None,
            Some(Bytes::from("value of quotes:AAPL"))
        ]
    );
    let ours = names_of_ours(&commands, &redis.base);
    // One pipeline of single-key GETs (no MGET, which a Cluster refuses across slots).
    assert_eq!(ours, ["GET", "GET", "GET"], "one GET per key, pipelined");
    assert!(cache.get_many(&[]).await.expect("answers").is_empty());
    redis.cleanup().await;
}

#[tokio::test]
async fn a_generation_is_started_once_and_kept_alive_by_whoever_asks_next() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let (a, b) = (redis.cache(&prefix), redis.cache(&prefix));
    let keys = ["gen:market", "gen:stock:AAPL"].map(String::from);
    let minute = Duration::from_secs(60);
    // Two instances starting the same generations at once agree on their tokens.
    let (from_a, from_b) = tokio::join!(
        a.get_or_put_many(&keys, Bytes::from("token-a"), minute),
        b.get_or_put_many(&keys, Bytes::from("token-b"), minute),
    );
    let (from_a, from_b) = (from_a.expect("answers"), from_b.expect("answers"));
    assert_eq!(from_a, from_b);
    assert!(from_a
        .iter()
        .all(|held| held.as_deref() == Some(b"token-a") || held.as_deref() == Some(b"token-b")));
    let full_key = format!("{prefix}gen:market");
    assert!((1..=60_000).contains(&redis.pttl(&full_key).await));
    // Asking again keeps the token and extends its life; it never overwrites.
    let later = a
        .get_or_put_many(&keys, Bytes::from("token-c"), Duration::from_secs(3600))
        .await
        .expect("answers");
    assert_eq!(later, from_a);
    assert!(redis.pttl(&full_key).await > 60_000, "not kept alive");
    redis.cleanup().await;
}

#[tokio::test]
async fn revoking_many_keys_is_one_pipeline_of_single_key_unlinks() {
    let Some(mut redis) = RedisTest::start().await else {
        return;
    };
    let prefix = format!("{}:", redis.base);
    let cache = redis.cache(&prefix);
    put(&cache, "gen:market", Duration::from_secs(60)).await;
    put(&cache, "gen:stock:AAPL", Duration::from_secs(60)).await;
    let monitor = Monitor::start(&redis.url).await;
    let keys = ["gen:market", "gen:stock:AAPL", "gen:history:AAPL"].map(String::from);
    assert_eq!(cache.delete_many(&keys).await, Ok(2));
    let commands = monitor.stop().await;
    let ours = names_of_ours(&commands, &redis.base);
    // No multi-key UNLINK, which a Cluster refuses across slots.
    assert_eq!(ours, ["UNLINK", "UNLINK", "UNLINK"]);
    assert!(!redis.exists(&format!("{prefix}gen:market")).await);
    assert_eq!(cache.delete_many(&[]).await, Ok(0));
    redis.assert_foreign_key_survives().await;
    redis.cleanup().await;
}
