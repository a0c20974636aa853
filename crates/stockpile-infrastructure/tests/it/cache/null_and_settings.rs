//! The null cache, the choice of adapter, and secrets kept out of `Debug` and errors.

use std::time::{Duration, Instant};

use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheError, CacheState};
use stockpile_infrastructure::cache::redact_url;
use stockpile_infrastructure::{
    build_cache, CacheBackendKind, CacheSettings, NullCache, RedisCache, RedisSettings,
};

use super::support::FaultProxy;

#[tokio::test]
async fn the_null_cache_refuses_everything() {
    let cache = NullCache::new("stockpile:");
    let disabled = Err(CacheError::Disabled);
    assert_eq!(cache.get("k").await, disabled);
    assert_eq!(
        cache
            .put("k", Bytes::from("v"), Duration::from_secs(1))
            .await,
        Err(CacheError::Disabled)
    );
    assert_eq!(cache.delete("k").await, Err(CacheError::Disabled));
    assert_eq!(cache.delete_matching("*").await, Err(CacheError::Disabled));
    assert_eq!(cache.clear().await, Err(CacheError::Disabled));
    assert_eq!(
        cache.try_lease("k", Duration::from_secs(1)).await,
        Err(CacheError::Disabled)
    );
    assert_eq!(cache.release_lease("k").await, Err(CacheError::Disabled));
    let status = cache.status().await;
    assert_eq!(status.state, CacheState::Off);
    assert_eq!(status.topology, None);
}

/// Settings whose Redis is a black hole: any contact with it would show as a slow operation.
async fn settings_with_unanswering_redis(backend: CacheBackendKind) -> (CacheSettings, FaultProxy) {
    let hole = FaultProxy::black_hole().await;
    let settings = CacheSettings {
        backend,
        redis: RedisSettings {
            url: hole.url(),
            ..RedisSettings::default()
        },
        ..CacheSettings::default()
    };
    (settings, hole)
}

#[tokio::test]
async fn memory_and_none_never_contact_redis() {
    for (backend, expected) in [
        (
            CacheBackendKind::Memory,
            CacheState::Serving(CacheBackend::Memory),
        ),
        (CacheBackendKind::None, CacheState::Off),
    ] {
        let (settings, hole) = settings_with_unanswering_redis(backend).await;
        let cache = build_cache(&settings).await;
        let _ = cache
            .put("k", Bytes::from("v"), Duration::from_secs(3600))
            .await;
        let _ = cache.get("k").await;
        let status = cache.status().await;
        assert_eq!(status.state, expected);
        assert_eq!(hole.connections(), 0, "{backend:?} contacted Redis");
    }
}

#[tokio::test]
async fn memory_keeps_full_lifetimes() {
    let settings = CacheSettings {
        backend: CacheBackendKind::Memory,
        local_ttl: Duration::from_millis(50),
        ..CacheSettings::default()
    };
    let cache = build_cache(&settings).await;
    cache
        .put("k", Bytes::from("v"), Duration::from_secs(60))
        .await
        .expect("accepted");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cache.get("k").await.expect("answers").is_some(),
        "capped by the local TTL"
    );
}

#[tokio::test]
async fn auto_and_redis_start_quickly_on_memory_when_redis_does_not_answer() {
    for backend in [CacheBackendKind::Auto, CacheBackendKind::Redis] {
        let (settings, _hole) = settings_with_unanswering_redis(backend).await;
        let started = Instant::now();
        let cache = build_cache(&settings).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "startup waited on Redis"
        );
        let status = cache.status().await;
        assert_eq!(status.state, CacheState::FallenBack, "{backend:?}");
    }
}

#[tokio::test]
async fn an_unparsable_url_serves_from_memory_and_never_shows_the_url() {
    let settings = CacheSettings {
        redis: RedisSettings {
            url: "redis://user:hunter2@[not-a-host".to_owned(),
            ..RedisSettings::default()
        },
        ..CacheSettings::default()
    };
    let cache = build_cache(&settings).await;
    let status = cache.status().await;
    assert_eq!(status.state, CacheState::FallenBack);
    let redis = RedisCache::new(&settings.redis);
    match redis.get("k").await {
        Err(CacheError::Unavailable(why)) => assert!(!why.contains("hunter2"), "{why}"),
        other => panic!("expected unavailability, got {other:?}"),
    }
    assert!(!format!("{redis:?}").contains("hunter2"));
}

#[test]
fn debug_and_redact_url_hide_passwords() {
    // (url, redacted)
    let cases = [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "redis://app:hunter2@cache:6379",
            "redis://app:***@cache:6379",
        ),
        ("rediss://hunter2@cache", "rediss://***@cache"),
        ("redis://app:p@ss:w0rd@cache/1", "redis://app:***@cache/1"),
        (
            "redis+unix:///run/redis.sock?db=1&pass=hunter2",
            "redis+unix:///run/redis.sock?db=1&pass=***",
        ),
        ("hunter2", "***"),
    ];
    for (url, redacted) in cases {
        assert_eq!(redact_url(url), redacted, "{url}");
    }
    let settings = CacheSettings {
        redis: RedisSettings {
            url: "redis://app:hunter2@cache:6379/0".to_owned(),
            ..RedisSettings::default()
        },
        ..CacheSettings::default()
    };
    let debug = format!("{settings:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("redis://app:***@cache:6379/0"), "{debug}");
}

#[test]
fn the_default_backend_is_auto() {
    assert_eq!(CacheSettings::default().backend, CacheBackendKind::Auto);
}
