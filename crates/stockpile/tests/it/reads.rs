//! The cached reads over HTTP, against a seeded SQLite database.

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};

use crate::support::{last_day, TestApp, TestDatabase};

async fn app() -> TestApp {
    TestApp::spawn(TestDatabase::sqlite(), 30, 260).await
}

#[tokio::test]
async fn a_stock_detail_has_its_name_and_quote_and_is_cached() {
    let app = app().await;
    let first = app.get("/api/stocks/aapl").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    let etag = first.headers()[ETAG].clone();
    assert!(first.headers()[CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("public, max-age="));
    let detail: serde_json::Value = first.json().await.unwrap();
    assert_eq!(detail["ticker"], "AAPL");
    assert_eq!(detail["name"], "Apple Inc.");
    assert_eq!(detail["as_of"], last_day().to_string());
    assert!(detail["price"].as_f64().unwrap() > 0.0);
    let change = detail["price"].as_f64().unwrap() - detail["previous_close"].as_f64().unwrap();
    assert!((detail["change"].as_f64().unwrap() - change).abs() < 1e-6);
    assert!(detail["fifty_two_week_high"].as_f64().unwrap() >= detail["high"].as_f64().unwrap());
    assert!(detail["average_volume_30d"].as_i64().unwrap() > 0);

    let second = app.get("/api/stocks/AAPL").await;
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert_eq!(second.headers()[ETAG], etag);

    let not_modified = app
        .client
        .get(format!("{}/api/stocks/AAPL", app.base))
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()[ETAG], etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn equivalent_list_queries_share_one_cache_entry() {
    let app = app().await;
    assert_eq!(app.get("/api/stocks").await.headers()["x-cache"], "MISS");
    assert_eq!(
        app.get("/api/stocks/?page=1&sort=ticker").await.headers()["x-cache"],
        "HIT"
    );
    assert_eq!(
        app.get("/api/stocks?sort=ticker&order=asc&page_size=50&unknown=1")
            .await
            .headers()["x-cache"],
        "HIT"
    );
    let list = app.json("/api/stocks?page_size=10&page=2").await;
    assert_eq!(list["total"], 30);
    assert_eq!(list["items"].as_array().unwrap().len(), 10);
    let tickers: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ticker"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = tickers.clone();
    sorted.sort();
    assert_eq!(tickers, sorted);
}

#[tokio::test]
async fn movers_and_leaderboards_follow_their_rules() {
    let app = app().await;
    let gainers = app.json("/api/stocks/top?metric=gainers&limit=100").await;
    assert_eq!(gainers["as_of"], last_day().to_string());
    let changes: Vec<f64> = gainers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["change_percent"].as_f64().unwrap())
        .collect();
    assert!(changes.iter().all(|c| *c > 0.0));
    assert!(changes.windows(2).all(|w| w[0] >= w[1]));

    let board = app
        .json("/api/stocks/leaderboard/top?period=6m&limit=5")
        .await;
    let items = board["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["rank"], i + 1);
        let expected =
            (item["end_price"].as_f64().unwrap() / item["start_price"].as_f64().unwrap() - 1.0)
                * 100.0;
        assert!(
            (item["return_percent"].as_f64().unwrap() - expected).abs() <= 0.0051,
            "{item}"
        );
    }
    assert_eq!(
        app.get("/api/stocks/leaderboard/top").await.headers()["x-cache"],
        "MISS"
    );
}

#[tokio::test]
async fn history_aggregates_and_bounds_its_range() {
    let app = app().await;
    let daily = app.json("/api/stocks/AAPL/history").await;
    let bars = daily["bars"].as_array().unwrap();
    // 260 weekdays cover about a year: the default is the 365 days ending at the latest bar.
    assert!(bars.len() > 240 && bars.len() <= 261, "{}", bars.len());
    assert_eq!(bars.last().unwrap()["date"], last_day().to_string());
    let monthly = app
        .json("/api/stocks/AAPL/history?interval=1mo&from=2025-06-01&to=2025-08-31")
        .await;
    let months = monthly["bars"].as_array().unwrap();
    assert_eq!(months.len(), 3);
    assert_eq!(
        months[0]["date"], "2025-06-02",
        "dated by the first trading day"
    );

    let future = app.json("/api/stocks/AAPL/history?from=2030-01-01").await;
    assert_eq!(future["bars"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_input_is_a_problem_not_a_crash() {
    let app = app().await;
    let cases = [
        ("/api/stocks/BAD_TICKER!", 400),
        ("/api/stocks?page_size=0", 400),
        ("/api/stocks?page_size=201", 400),
        ("/api/stocks?sort=Ticker", 400),
        ("/api/stocks?order=DESC", 400),
        ("/api/stocks/top?limit=101", 400),
        ("/api/stocks/top?metric=up", 400),
        ("/api/stocks/leaderboard/top?period=2y", 400),
        (
            "/api/stocks/AAPL/history?from=2025-02-01&to=2025-01-01",
            400,
        ),
        (
            "/api/stocks/AAPL/history?from=2000-01-01&to=2025-01-01",
            400,
        ),
        ("/api/stocks/AAPL/history?interval=1y", 400),
        ("/api/stocks/AAPL/history?from=yesterday", 400),
        ("/api/stocks/AAPL/history?from=1990-01-01", 400),
        ("/api/stocks/NOPE", 404),
        ("/api/stocks/TOP", 404),
        ("/api/stocks/NOPE/history", 404),
        ("/no/such/route", 404),
    ];
    for (path, status) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status, "{path}");
        assert!(
            problem["title"].is_string() && problem["detail"].is_string(),
            "{path}: {problem}"
        );
    }
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = app().await;
    assert_eq!(app.json("/health").await["status"], "ok");
    let ready = app.json("/health/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["cache"]["backend"], "memory");
    let openapi = app.json("/api-docs/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn head_is_answered_wherever_get_is_with_the_same_status_and_headers_and_no_body() {
    let app = app().await;
    let list = app.json("/api/stocks").await;
    let detail = format!(
        "/api/stocks/{}",
        list["items"][0]["ticker"].as_str().unwrap()
    );
    let client = reqwest::Client::new();
    for path in [
        detail.as_str(),
        "/api/stocks",
        "/api/stocks/top",
        "/api/stocks/leaderboard/top",
        "/api/stocks/ZZZZ",
        "/health",
    ] {
        let got = app.get(path).await;
        let (status, headers) = (got.status(), got.headers().clone());
        let body = got.bytes().await.unwrap();
        let head = client
            .head(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), status, "HEAD {path}");
        for name in ["content-type", "etag", "cache-control", "content-length"] {
            assert_eq!(
                head.headers().get(name),
                headers.get(name),
                "HEAD {path}: {name}"
            );
        }
        if status == 200 && headers.contains_key("etag") {
            assert_eq!(head.headers()["x-cache"], "HIT", "HEAD {path} after a GET");
        }
        assert!(!body.is_empty(), "GET {path} has a body");
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} sent a body"
        );
    }
}
