//! `GET /api/quotes` against the running server: assembled from per-ticker entries, and a
//! write makes exactly its ticker's quote fresh again.

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, TestDatabase};

fn tickers_of(body: &serde_json::Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ticker"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_watchlist_is_one_request_and_writes_refresh_only_their_ticker() {
    let app = TestApp::spawn(TestDatabase::sqlite(), 5, 30).await;
    let list = app.json("/api/stocks").await;
    let all = tickers_of(&list);
    let (first, second) = (all[0].clone(), all[1].clone());
    let path = format!(
        "/api/quotes?tickers={},zzzz,{},{}",
        second.to_lowercase(),
        first,
        second
    );

    let miss = app.get(&path).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(miss.headers()["x-cache"], "MISS");
    let etag = miss.headers()["etag"].clone();
    let body: serde_json::Value = miss.json().await.unwrap();
    assert_eq!(tickers_of(&body), [second.clone(), first.clone()]);
    assert_eq!(body["missing"], json!(["ZZZZ"]));
    // The quote is the list's: the same summary of the same stock.
    let in_list = |ticker: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ticker"] == ticker)
            .unwrap()
            .clone()
    };
    assert_eq!(body["items"][1], in_list(&first));

    let hit = app.get(&path).await;
    assert_eq!(hit.headers()["x-cache"], "HIT");
    assert_eq!(hit.headers()["etag"], etag);

    // A price upload for the first ticker: its quote is loaded again, the other's is not.
    let uploaded = app
        .admin(Method::POST, &format!("/api/stocks/{first}/prices"))
        .json(&json!({"bars": [
            {"date": "2025-11-21", "open": 10, "high": 99, "low": 9, "close": 98.5, "volume": 7}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    // The write reloaded the ticker's entry once, after its commit, for the live-quote
    // streams: the batch is a hit, and fresh.
    let after = app.get(&path).await;
    assert_eq!(after.headers()["x-cache"], "HIT");
    assert_ne!(after.headers()["etag"], etag);
    let after: serde_json::Value = after.json().await.unwrap();
    assert_eq!(after["items"][1]["price"], 98.5);
    assert_eq!(after["items"][1]["volume"], 7);
    assert_eq!(after["items"][0], body["items"][0]);
    let only_second = app.get(&format!("/api/quotes?tickers={second}")).await;
    assert_eq!(
        only_second.headers()["x-cache"],
        "HIT",
        "the other entry survived"
    );

    // The absent ticker was cached as absent; creating its stock makes it present.
    let created = app
        .admin(Method::PUT, "/api/stocks/ZZZZ")
        .json(&json!({"name": "Zed Corp", "exchange": "NYSE", "sector": "Energy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let with_zzzz = app.get(&path).await;
    assert_eq!(
        with_zzzz.headers()["x-cache"],
        "HIT",
        "reloaded by the write"
    );
    let with_zzzz: serde_json::Value = with_zzzz.json().await.unwrap();
    assert_eq!(
        tickers_of(&with_zzzz),
        [second.clone(), "ZZZZ".to_owned(), first]
    );
    assert_eq!(with_zzzz["missing"], json!([]));
    assert!(with_zzzz["items"][1]["price"].is_null());
    assert_eq!(app.get(&path).await.headers()["x-cache"], "HIT");

    let bad = app.get("/api/quotes?tickers=AAPL&tickers=MSFT").await;
    assert_eq!(bad.status(), 400);
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "tickers");
}
