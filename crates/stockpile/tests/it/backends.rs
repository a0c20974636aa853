//! The same code over SQLite and PostgreSQL gives the same answers.

use crate::support::{TestApp, TestDatabase};

const PATHS: &[&str] = &[
    "/api/stocks",
    "/api/stocks?sort=change_percent&order=desc&page_size=7",
    "/api/stocks?sort=name&q=inc&page=2&page_size=5",
    "/api/stocks?sector=information%20technology&sort=market_cap&order=desc",
    "/api/stocks/AAPL",
    "/api/stocks/abnb/history?interval=1w",
    "/api/stocks/AAPL/history?from=2025-09-01&to=2025-10-15&interval=1mo",
    "/api/stocks/top?metric=gainers&limit=5",
    "/api/stocks/top?metric=losers",
    "/api/stocks/top?metric=active&limit=3",
    "/api/stocks/leaderboard/top?period=3m",
    "/api/stocks/leaderboard/top?period=ytd&limit=4&sector=Financials",
];

#[tokio::test]
async fn postgres_and_sqlite_serve_the_same_answers() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let sqlite = TestApp::spawn(TestDatabase::sqlite(), 40, 300).await;
    let postgres = TestApp::spawn(postgres, 40, 300).await;
    for path in PATHS {
        let (a, b) = (
            without_timestamps(sqlite.json(path).await),
            without_timestamps(postgres.json(path).await),
        );
        assert_eq!(a, b, "{path} differs between SQLite and PostgreSQL");
    }
    // The comparison means something only if the answers carry data.
    assert_eq!(sqlite.json("/api/stocks").await["total"], 40);
}

/// Drops `updated_at`, the one field that records when each server seeded, not what.
fn without_timestamps(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("updated_at");
    }
    value
}
