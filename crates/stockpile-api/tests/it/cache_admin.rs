//! Cache status and administration.

use std::sync::Arc;

use actix_web::test::TestRequest;
use stockpile_application::cache_aside::CachePolicy;
use stockpile_application::cache_keys::KeyFamily;
use stockpile_application::metrics::{CacheEvent, CacheMetrics};
use stockpile_application::ports::MockStockRepository;

use crate::support::{bearer, send, service_with, untouched, Admin, CacheMode, FakeCache};

/// The service over a cache in `mode` holding `keys`, and that cache and its metrics.
fn with_cache(
    mode: CacheMode,
    keys: &[&str],
) -> (
    stockpile_application::Stockpile,
    Arc<FakeCache>,
    Arc<CacheMetrics>,
) {
    let cache = Arc::new(FakeCache::new(mode, "redis"));
    for key in keys {
        cache.insert(key);
    }
    let metrics = Arc::new(CacheMetrics::default());
    let service = service_with(
        MockStockRepository::new(),
        Arc::clone(&cache),
        Arc::clone(&metrics),
        CachePolicy::default(),
    );
    (service, cache, metrics)
}

fn invalidate(body: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/cache/invalidate")
        .insert_header(bearer())
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn status_is_public_and_adds_this_process_counters() {
    let (service, _, metrics) = with_cache(CacheMode::Working, &[]);
    metrics.record(KeyFamily::List, CacheEvent::Hit);
    metrics.record(KeyFamily::Detail, CacheEvent::Hit);
    metrics.record(KeyFamily::Top, CacheEvent::Miss);
    let reply = send(
        service,
        Admin::Off,
        TestRequest::get().uri("/api/cache/status"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "enabled": true, "available": true, "backend": "redis", "topology": "standalone",
            "degraded": false,
            "key_prefix": "stockpile:", "hits": 2, "misses": 1, "errors": 0,
            "failed_commands": 0, "fallbacks": 0,
            "unconfirmed_invalidations": 0
        })
    );
}

#[actix_web::test]
async fn invalidate_removes_the_matching_keys_and_counts_them() {
    let (service, _, _) = with_cache(
        CacheMode::Working,
        &["stocks:list:a", "stocks:list:b", "stocks:detail:AAPL"],
    );
    let reply = send(
        service,
        Admin::On,
        invalidate(r#"{"pattern":"stocks:list:*"}"#),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"deleted": 2}));
}

#[actix_web::test]
async fn invalidate_rejects_bad_bodies_before_the_cache() {
    for body in [
        r#"{"pattern":"a","all":true}"#,
        r#"{"pattern":1}"#,
        "{",
        r#"{"pattern":""}"#,
    ] {
        let reply = send(untouched(), Admin::On, invalidate(body)).await;
        reply.problem(400);
    }
    let long = format!(r#"{{"pattern":"{}"}}"#, "a".repeat(257));
    let reply = send(untouched(), Admin::On, invalidate(&long)).await;
    assert_eq!(reply.invalid_fields(), ["pattern"]);
}

/// Issue 14: the invalidate body names its field for every kind of shape problem too.
#[actix_web::test]
async fn invalidate_body_errors_name_their_field() {
    for (body, fields) in [
        ("{}", &["pattern"][..]),
        (r#"{"pattern":1}"#, &["pattern"]),
        (r#"{"pattern":null}"#, &["pattern"]),
        (r#"{"pattern":"a","all":true}"#, &["all"]),
        (r#"{"pattern":"a","pattern":"b"}"#, &["pattern"]),
    ] {
        let reply = send(untouched(), Admin::On, invalidate(body)).await;
        assert_eq!(reply.invalid_fields(), fields, "{body}");
    }
    let reply = send(untouched(), Admin::On, invalidate("{")).await;
    assert!(reply.problem(400).get("errors").is_none());
}

#[actix_web::test]
async fn deleting_a_key_answers_204_or_404() {
    let (service, cache, _) = with_cache(CacheMode::Working, &["stocks:detail:AAPL"]);
    let app = crate::support::init(service, Admin::On).await;
    let delete = || {
        TestRequest::delete()
            .uri("/api/cache/key/stocks:detail:AAPL")
            .insert_header(bearer())
    };
    let reply = crate::support::send_to(&app, delete()).await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    let reply = crate::support::send_to(&app, delete()).await;
    reply.problem(404);
    assert_eq!(cache.operations(), 2);
}

#[actix_web::test]
async fn clearing_counts_and_cache_trouble_is_503() {
    let (service, _, _) = with_cache(CacheMode::Working, &["a", "b", "c"]);
    let req = TestRequest::delete()
        .uri("/api/cache")
        .insert_header(bearer());
    let reply = send(service, Admin::On, req).await;
    assert_eq!(reply.json(), serde_json::json!({"deleted": 3}));

    let (service, _, _) = with_cache(CacheMode::Down, &[]);
    let req = TestRequest::delete()
        .uri("/api/cache")
        .insert_header(bearer());
    let reply = send(service, Admin::On, req).await;
    let problem = reply.problem(503);
    assert!(!problem.to_string().contains("10.0.0.7"), "{problem}");
}
