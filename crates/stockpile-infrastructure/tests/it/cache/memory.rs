//! The in-memory cache: lifetimes, the TTL cap and glob invalidation (the byte bound is a unit
//! test beside the cache, where moka's pending evictions can be run).

use std::time::Duration;

use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheState};
use stockpile_infrastructure::MemoryCache;

use super::support::FAMILY_KEYS;

const MIB: u64 = 1024 * 1024;

fn cache() -> MemoryCache {
    MemoryCache::new("stockpile:", MIB)
}

async fn put(cache: &MemoryCache, key: &str, retain_for: Duration) {
    cache
        .put(key, Bytes::from(format!("value of {key}")), retain_for)
        .await
        .expect("memory accepts every put");
}

async fn has(cache: &MemoryCache, key: &str) -> bool {
    cache
        .get(key)
        .await
        .expect("memory always answers")
        .is_some()
}

#[tokio::test]
async fn stores_until_the_entry_expires() {
    let cache = cache();
    put(&cache, "short", Duration::from_millis(150)).await;
    put(&cache, "long", Duration::from_secs(60)).await;
    assert_eq!(
        cache.get("short").await.expect("answers"),
        Some(Bytes::from("value of short"))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!has(&cache, "short").await, "an expired entry is gone");
    assert!(has(&cache, "long").await);
    assert!(
        !cache.delete("short").await.expect("answers"),
        "an expired entry is not counted"
    );
}

#[tokio::test]
async fn a_put_replaces_the_value_and_its_lifetime() {
    let cache = cache();
    put(&cache, "k", Duration::from_secs(60)).await;
    cache
        .put("k", Bytes::from("new"), Duration::from_millis(100))
        .await
        .expect("accepted");
    assert_eq!(
        cache.get("k").await.expect("answers"),
        Some(Bytes::from("new"))
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!has(&cache, "k").await);
}

#[tokio::test]
async fn the_ttl_cap_shortens_every_entry() {
    let cache = cache().with_max_ttl(Duration::from_millis(150));
    put(&cache, "k", Duration::from_secs(3600)).await;
    assert!(has(&cache, "k").await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!has(&cache, "k").await, "lived past the cap");
}

#[tokio::test]
async fn delete_reports_whether_there_was_an_entry() {
    let cache = cache();
    put(&cache, "k", Duration::from_secs(60)).await;
    assert!(cache.delete("k").await.expect("answers"));
    assert!(!cache.delete("k").await.expect("answers"));
    assert!(!has(&cache, "k").await);
}

#[tokio::test]
async fn delete_matching_removes_exactly_the_matching_keys() {
    let cache = cache();
    let keys = FAMILY_KEYS;
    for key in keys {
        put(&cache, key, Duration::from_secs(60)).await;
    }
    // (pattern, keys it removes), applied in order.
    let steps: [(&str, &[&str]); 4] = [
        ("stocks:list:*", &["stocks:list:1", "stocks:list:2"]),
        ("stocks:detail:[L-Z]???", &["stocks:detail:MSFT"]),
        ("*:AAPL*", &["stocks:detail:AAPL", "stocks:history:AAPL:1"]),
        ("nothing:*", &[]),
    ];
    let mut left: Vec<&str> = keys.to_vec();
    for (pattern, removed) in steps {
        let count = cache.delete_matching(pattern).await.expect("answers");
        assert_eq!(count, removed.len() as u64, "pattern {pattern:?}");
        left.retain(|key| !removed.contains(key));
        for key in keys {
            assert_eq!(
                has(&cache, key).await,
                left.contains(&key),
                "{key} after {pattern:?}"
            );
        }
    }
}

#[tokio::test]
async fn clear_removes_everything_and_counts_it() {
    let cache = cache();
    for key in ["a", "b", "c"] {
        put(&cache, key, Duration::from_secs(60)).await;
    }
    assert_eq!(cache.clear().await.expect("answers"), 3);
    assert!(!has(&cache, "a").await);
    assert_eq!(cache.clear().await.expect("answers"), 0);
}

#[tokio::test]
async fn reports_itself_as_memory() {
    let status = cache().status().await;
    assert_eq!(status.state, CacheState::Serving(CacheBackend::Memory));
    assert_eq!(status.topology, None);
    assert_eq!(status.key_prefix, "stockpile:");
}

#[tokio::test]
async fn the_lease_is_always_granted_since_memory_serves_one_process() {
    let cache = cache();
    let ttl = Duration::from_secs(2);
    assert_eq!(cache.try_lease("k", ttl).await, Ok(true));
    assert_eq!(cache.try_lease("k", ttl).await, Ok(true));
    assert_eq!(cache.release_lease("k").await, Ok(()));
    assert!(!has(&cache, "k").await);
}

/// As the only cache (`CACHE_BACKEND=memory`) it vouches for what it answers until something
/// is removed, which every write does first.
#[tokio::test]
async fn its_mark_moves_at_every_removal_and_only_then() {
    let cache = cache();
    let mark = || cache.coherence().expect("memory vouches for itself").mark;
    let first = mark();
    put(&cache, "stocks:detail:AAPL", Duration::from_secs(60)).await;
    put(&cache, "stocks:list:1", Duration::from_secs(60)).await;
    assert_eq!(mark(), first, "a put changes no fresh answer");
    let mut marks = vec![first];
    assert!(cache.delete("stocks:detail:AAPL").await.expect("removed"));
    marks.push(mark());
    cache.delete("absent").await.expect("answered");
    marks.push(mark());
    cache.delete_matching("stocks:*").await.expect("removed");
    marks.push(mark());
    cache.clear().await.expect("cleared");
    marks.push(mark());
    assert!(
        marks.windows(2).all(|pair| pair[0] != pair[1]),
        "a removal left the mark: {marks:?}"
    );
    assert!(
        cache
            .coherence()
            .is_some_and(|c| c.for_at_most > Duration::from_secs(86_400)),
        "no cap of its own: as long as its entries live"
    );
    let capped = cache_with_cap(Duration::from_secs(5));
    assert_eq!(
        capped.coherence().map(|c| c.for_at_most),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        cache_with_cap(Duration::ZERO).coherence(),
        None,
        "it keeps nothing"
    );
}

fn cache_with_cap(cap: Duration) -> MemoryCache {
    cache().with_max_ttl(cap)
}
