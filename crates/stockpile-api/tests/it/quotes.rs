//! `GET /api/quotes`: the `tickers` parameter, the assembled body and its cache headers.

use std::sync::Arc;
use std::time::Duration;

use actix_web::test::TestRequest;
use mockall::predicate::eq;
use stockpile_application::cache_aside::{etag_of, CachePolicy};
use stockpile_application::metrics::CacheMetrics;
use stockpile_application::ports::{MockStockRepository, RepositoryError};
use stockpile_domain::Ticker;

use crate::support::{
    init, record, send, send_to, service_with, untouched, Admin, CacheMode, FakeCache,
};

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

fn tickers(names: &[&str]) -> Vec<Ticker> {
    names.iter().map(|n| Ticker::parse(n).unwrap()).collect()
}

/// A repository that knows AAPL and MSFT, answering `times` batch queries.
fn knows_aapl_and_msft(asked: &[&str], times: usize) -> MockStockRepository {
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .with(eq(tickers(asked)))
        .times(times)
        .returning(|_| Ok(vec![record("MSFT"), record("AAPL")]));
    repository
}

fn with_cache(
    repository: MockStockRepository,
    cache: &Arc<FakeCache>,
    policy: CachePolicy,
) -> stockpile_application::Stockpile {
    service_with(
        repository,
        Arc::clone(cache),
        Arc::new(CacheMetrics::default()),
        policy,
    )
}

#[actix_web::test]
async fn a_batch_is_assembled_in_the_order_given_and_then_served_from_the_cache() {
    let cache = Arc::new(FakeCache::new(CacheMode::Working, "memory"));
    let repository = knows_aapl_and_msft(&["AAPL", "ZZZZ", "MSFT"], 1);
    let app = init(
        with_cache(repository, &cache, CachePolicy::default()),
        Admin::Off,
    )
    .await;
    let miss = send_to(&app, get("/api/quotes?tickers=aapl,ZZZZ,msft,AAPL")).await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-cache"), "MISS");
    assert_eq!(miss.header("content-type"), "application/json");
    assert_eq!(miss.header("etag"), &*etag_of(&miss.body));
    assert!(miss.header("cache-control").starts_with("public, max-age="));
    let body = miss.json();
    let items: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["AAPL", "MSFT"]);
    assert_eq!(body["missing"], serde_json::json!(["ZZZZ"]));
    assert_eq!(body["items"][0]["price"], 191.0);

    // The same tickers, spelled otherwise: every entry (the absent one too) is a hit, and
    // the cache was asked once for the batch.
    let before = cache.operations();
    let hit = send_to(&app, get("/api/quotes?tickers=AAPL,zzzz,MSFT")).await;
    assert_eq!(cache.operations() - before, 1);
    assert_eq!(hit.header("x-cache"), "HIT");
    assert_eq!(
        (&hit.body, hit.header("etag")),
        (&miss.body, miss.header("etag"))
    );
    let max_age = |reply: &crate::support::Reply| -> u64 {
        reply.header("cache-control")["public, max-age=".len()..]
            .parse()
            .unwrap()
    };
    assert!(max_age(&hit) <= max_age(&miss));

    let etag = hit.header("etag").to_owned();
    let not_modified = send_to(
        &app,
        get("/api/quotes?tickers=AAPL,ZZZZ,MSFT").insert_header(("if-none-match", etag.clone())),
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), etag);
    assert_eq!(not_modified.header("x-cache"), "HIT");
    assert!(not_modified.body.is_empty());

    // A batch whose order differs is another body, from the same entries.
    let other = send_to(&app, get("/api/quotes?tickers=MSFT,AAPL")).await;
    assert_eq!(other.header("x-cache"), "HIT");
    assert_ne!(other.header("etag"), etag);
}

#[actix_web::test]
async fn a_bad_tickers_parameter_is_a_400_naming_it() {
    let hundred_and_one: Vec<String> = (0..=100).map(|i| format!("T{i}")).collect();
    let over = format!("/api/quotes?tickers={}", hundred_and_one.join(","));
    for uri in [
        "/api/quotes",
        "/api/quotes?ticker=AAPL",
        "/api/quotes?tickers=",
        "/api/quotes?tickers=AAPL,NOT%20ONE",
        "/api/quotes?tickers=AAPL,,MSFT",
        "/api/quotes?tickers=AAPL&tickers=MSFT",
        "/api/quotes?tickers=-AAPL",
        over.as_str(),
    ] {
        let reply = send(untouched(), Admin::Off, get(uri)).await;
        assert_eq!(reply.invalid_fields(), ["tickers"], "{uri}");
    }
}

#[actix_web::test]
async fn a_hundred_distinct_tickers_are_one_query() {
    let names: Vec<String> = (0..100).map(|i| format!("T{i}")).collect();
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .withf(|asked| asked.len() == 100)
        .times(1)
        .returning(|_| Ok(Vec::new()));
    let cache = Arc::new(FakeCache::new(CacheMode::Working, "memory"));
    let uri = format!("/api/quotes?tickers={},t0,T99", names.join(","));
    let reply = send(
        with_cache(repository, &cache, CachePolicy::default()),
        Admin::Off,
        get(&uri),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["missing"].as_array().unwrap().len(), 100);
}

#[actix_web::test]
async fn a_switched_off_cache_answers_bypass() {
    let cache = Arc::new(FakeCache::new(CacheMode::Off, "none"));
    let repository = knows_aapl_and_msft(&["MSFT"], 1);
    let reply = send(
        with_cache(repository, &cache, CachePolicy::default()),
        Admin::Off,
        get("/api/quotes?tickers=MSFT"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-cache"), "BYPASS");
    assert_eq!(reply.header("cache-control"), "no-cache");
}

#[actix_web::test]
async fn expired_entries_stand_in_for_a_failing_database_and_say_stale() {
    let policy = CachePolicy {
        ttl_default: Duration::ZERO,
        ttl_scores: Duration::ZERO,
        stale_if_error: Duration::from_secs(3600),
        ..CachePolicy::default()
    };
    let mut repository = knows_aapl_and_msft(&["AAPL", "MSFT"], 1);
    repository
        .expect_summaries()
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    let cache = Arc::new(FakeCache::new(CacheMode::Working, "memory"));
    let app = init(with_cache(repository, &cache, policy), Admin::Off).await;
    let fresh = send_to(&app, get("/api/quotes?tickers=AAPL,MSFT")).await;
    let stale = send_to(&app, get("/api/quotes?tickers=AAPL,MSFT")).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("x-cache"), "STALE");
    assert!(stale.header("cache-control").ends_with("max-age=0"));
    assert!(stale.header("age").parse::<u64>().is_ok());
    assert_eq!(stale.body, fresh.body);
    // A ticker never cached has nothing to stand in: the database's failure is the answer.
    let failed = send_to(&app, get("/api/quotes?tickers=AAPL,IBM")).await;
    assert_eq!(failed.status, 503);
}

#[actix_web::test]
async fn the_quote_family_is_on_the_metrics_page() {
    let cache = Arc::new(FakeCache::new(CacheMode::Working, "memory"));
    let repository = knows_aapl_and_msft(&["AAPL", "MSFT", "ZZZZ"], 1);
    let app = init(
        with_cache(repository, &cache, CachePolicy::default()),
        Admin::Off,
    )
    .await;
    send_to(&app, get("/api/quotes?tickers=AAPL,MSFT,ZZZZ")).await;
    send_to(&app, get("/api/quotes?tickers=AAPL")).await;
    let page = String::from_utf8(send_to(&app, get("/metrics")).await.body.to_vec()).unwrap();
    for line in [
        "stockpile_cache_misses_total{family=\"quote\"} 3",
        "stockpile_cache_loads_total{family=\"quote\"} 3",
        "stockpile_cache_hits_total{family=\"quote\"} 1",
    ] {
        assert!(page.contains(line), "{line} not in\n{page}");
    }
}
