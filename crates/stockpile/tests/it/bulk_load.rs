//! `stockpile seed` and `stockpile import` end by refreshing PostgreSQL's statistics, so the
//! planner knows the rows a bulk load brought (it estimated 27 quote rows for a date that had
//! 5,000). Too few rows for autovacuum to analyse the tables on its own.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use crate::support::{seeded_scratch, stockpile, TestDatabase};

/// How many rows PostgreSQL's statistics say `table` has; -1 before any were gathered.
async fn planned_rows(database_url: &str, table: &str) -> i64 {
    let db = sea_orm::Database::connect(database_url).await.unwrap();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT CAST(reltuples AS BIGINT) AS n FROM pg_class WHERE relname = '{table}'"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    db.close().await.unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_and_importing_refresh_the_planners_statistics() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    // Two stocks of five days each.
    let scratch = seeded_scratch("statistics", Some(database)).await;
    let url = scratch.database_url();
    assert_eq!(planned_rows(&url, "price_bars").await, 10);
    assert_eq!(planned_rows(&url, "stocks").await, 2);
    assert_eq!(planned_rows(&url, "stock_quotes").await, 2);

    let csv = scratch.dir.join("bars.csv");
    std::fs::write(
        &csv,
        "Date,Open,High,Low,Close,Adj Close,Volume\n\
         2025-11-24,10,11,9,10,10,100\n\
         2025-11-25,10,11,9,10,10,100\n\
         2025-11-26,10,11,9,10,10,100\n",
    )
    .unwrap();
    let seeded = stockpile::seed::universe().unwrap();
    let ticker = &seeded[0].ticker;
    let imported = tokio::time::timeout(
        Duration::from_secs(15),
        stockpile(&scratch, 0)
            .args(["import", "--ticker", ticker])
            .arg(&csv)
            .status(),
    )
    .await
    .expect("stockpile import took over 15 s")
    .unwrap();
    assert!(imported.success(), "stockpile import failed: {imported}");
    assert_eq!(planned_rows(&url, "price_bars").await, 13);
}
