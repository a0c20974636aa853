//! Admin writes over HTTP: they change the data and leave no stale answer behind.

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, TestDatabase};

#[tokio::test]
async fn a_new_stock_and_its_prices_are_visible_at_once() {
    let app = TestApp::spawn(TestDatabase::sqlite(), 5, 30).await;
    // Warm the caches that the writes must invalidate.
    assert_eq!(app.json("/api/stocks").await["total"], 5);
    assert_eq!(app.get("/api/stocks").await.headers()["x-cache"], "HIT");

    let created = app
        .admin(Method::PUT, "/api/stocks/zzzz")
        .json(&json!({"name": "Zed Corp", "exchange": "NYSE", "sector": "Energy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let detail: serde_json::Value = created.json().await.unwrap();
    assert_eq!(
        (
            detail["ticker"].as_str(),
            detail["currency"].as_str(),
            detail["price"].is_null()
        ),
        (Some("ZZZZ"), Some("USD"), true)
    );

    let list = app.get("/api/stocks").await;
    assert_eq!(
        list.headers()["x-cache"],
        "MISS",
        "the write must have invalidated the list"
    );
    assert_eq!(list.json::<serde_json::Value>().await.unwrap()["total"], 6);

    assert_eq!(
        app.get("/api/stocks/ZZZZ").await.headers()["x-cache"],
        "MISS"
    );
    let bars = json!({"bars": [
        {"date": "2025-11-20", "open": 10, "high": 11, "low": 9.5, "close": 10.5, "volume": 1000},
        {"date": "2025-11-21", "open": 10.5, "high": 12.5, "low": 10.25, "close": 12.123456, "volume": 2500},
    ]});
    let uploaded = app
        .admin(Method::POST, "/api/stocks/ZZZZ/prices")
        .json(&bars)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    assert_eq!(
        uploaded.json::<serde_json::Value>().await.unwrap()["upserted"],
        2
    );

    let detail = app.json("/api/stocks/ZZZZ").await;
    assert_eq!(detail["price"], 12.1235);
    assert_eq!(detail["change"], 1.6235);
    assert_eq!(detail["change_percent"], 15.46);
    assert_eq!(detail["volume"], 2500);

    let updated = app
        .admin(Method::PUT, "/api/stocks/ZZZZ")
        .json(&json!({"name": "Zed Corporation", "exchange": "NYSE", "sector": "Energy", "market_cap": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    assert_eq!(
        app.json("/api/stocks/ZZZZ").await["name"],
        "Zed Corporation"
    );

    let deleted = app
        .admin(Method::DELETE, "/api/stocks/ZZZZ")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get("/api/stocks/ZZZZ").await.status(), 404);
    assert_eq!(app.get("/api/stocks/ZZZZ/history").await.status(), 404);
    assert_eq!(
        app.admin(Method::DELETE, "/api/stocks/ZZZZ")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn a_bad_bar_among_many_stores_nothing() {
    let app = TestApp::spawn(TestDatabase::sqlite(), 1, 10).await;
    let before = app.json("/api/stocks/A/history?from=2009-12-01").await;
    let mut bars: Vec<serde_json::Value> = (0..2000)
        .map(|i| {
            let date = chrono::NaiveDate::from_ymd_opt(2010, 1, 1).unwrap() + chrono::Days::new(i);
            json!({"date": date.to_string(), "open": 10, "high": 11, "low": 9, "close": 10, "volume": 1})
        })
        .collect();
    bars[1234]["low"] = json!(12);
    let rejected = app
        .admin(Method::POST, "/api/stocks/A/prices")
        .json(&json!({"bars": bars}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 400);
    let problem: serde_json::Value = rejected.json().await.unwrap();
    assert!(
        problem["errors"].to_string().contains("bars[1234]"),
        "{problem}"
    );
    assert_eq!(
        app.json("/api/stocks/A/history?from=2009-12-01").await,
        before
    );
}

#[tokio::test]
async fn writes_need_the_admin_token() {
    let app = TestApp::spawn(TestDatabase::sqlite(), 1, 5).await;
    let body = json!({"name": "X", "exchange": "NYSE", "sector": "Energy"});
    let anonymous = app
        .client
        .put(format!("{}/api/stocks/XYZ", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .put(format!("{}/api/stocks/XYZ", app.base))
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(app.get("/api/stocks/XYZ").await.status(), 404);
}
