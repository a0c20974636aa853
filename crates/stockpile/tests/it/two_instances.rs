//! Two instances sharing one PostgreSQL database and one Redis: each keeps hot entries in its
//! own memory (the first tier), and a write on one is seen by the other's very next read.

use reqwest::Method;
use serde_json::json;
use stockpile::Settings;

use crate::support::{shared_redis_settings, TestApp, TestDatabase};

fn instance_settings(database: &TestDatabase, prefix: &str) -> Settings {
    let mut settings = shared_redis_settings(database, prefix);
    settings.cache.local_ttl = 300;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_is_read_on_the_other_right_after() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let prefix = format!("e2e-two-{}:", uuid::Uuid::new_v4().simple());
    let settings_a = instance_settings(&database, &prefix);
    let settings_b = instance_settings(&database, &prefix);
    let a = TestApp::spawn_with(settings_a, database, 12, 5).await;
    // B shares A's database, which A's test database drops at the end; B's own is a SQLite
    // file that is never created.
    let b = TestApp::spawn_with(settings_b, TestDatabase::sqlite(), 0, 0).await;

    if !crate::support::all_on_redis_or_skip(&[&a, &b]).await {
        return;
    }

    // B reads twice: the second read is a hit, served from its memory.
    let first = b.get("/api/stocks/AAPL").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    let second = b.get("/api/stocks/AAPL").await;
    assert_eq!(second.headers()["x-cache"], "HIT");
    let old: serde_json::Value = second.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(old["name"], "Apple Renamed");
    // A watchlist on B: read, then assembled from its memory, then that assembled answer
    // reused (its entries vouched for by B's first tier, until an invalidation reaches it).
    let listed = b.json("/api/stocks?page_size=2&sort=ticker").await;
    let other = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["ticker"].as_str().unwrap())
        .find(|ticker| *ticker != "AAPL")
        .unwrap()
        .to_owned();
    let watchlist = &format!("/api/quotes?tickers={other},AAPL");
    assert_eq!(b.get(watchlist).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(b.get(watchlist).await.headers()["x-cache"], "HIT");
    }

    let renamed = a
        .admin(Method::PUT, "/api/stocks/AAPL")
        .json(&json!({"name": "Apple Renamed", "exchange": "NASDAQ", "sector": "Information Technology"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT: {e}"));
    assert_eq!(renamed.status(), 200);

    // Right after: B's memory has forgotten the entry, and B reads the new name, alone and
    // in the watchlist.
    assert_eq!(b.json("/api/stocks/AAPL").await["name"], "Apple Renamed");
    assert_eq!(b.json(watchlist).await["items"][1]["name"], "Apple Renamed");
    assert_eq!(a.json("/api/stocks/AAPL").await["name"], "Apple Renamed");

    // Nothing left behind in the shared Redis.
    let cleared = a
        .admin(Method::DELETE, "/api/cache")
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE /api/cache: {e}"));
    assert_eq!(cleared.status(), 200);
}
