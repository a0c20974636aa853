//! The writes: stocks, bars and the quote kept beside them, atomically.

use sea_orm::ConnectionTrait;
use stockpile_application::ports::{RepositoryError, StockRepository, UpsertOutcome};
use stockpile_domain::StockProfile;

use super::fixtures::*;
use super::harness::{on_each_backend, TestDb};

#[tokio::test]
async fn upsert_stock_creates_then_updates() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        assert_eq!(repo.count_stocks().await.unwrap(), 0);
        let created = repo
            .upsert_stock(
                &ticker("AAPL"),
                &profile("Apple", "Tech", "NASDAQ", Some(1)),
            )
            .await
            .unwrap();
        assert_eq!(created, UpsertOutcome::Created);
        let first = repo.detail(&ticker("AAPL")).await.unwrap().unwrap().stock;

        let changed = StockProfile::new(
            "Apple Inc.".into(),
            "NYSE".into(),
            "Information Technology".into(),
            Some("Consumer Electronics".into()),
            Some("EUR"),
            None,
        )
        .unwrap();
        let updated = repo.upsert_stock(&ticker("AAPL"), &changed).await.unwrap();
        assert_eq!(updated, UpsertOutcome::Updated);
        assert_eq!(repo.count_stocks().await.unwrap(), 1);

        let stock = repo.detail(&ticker("AAPL")).await.unwrap().unwrap().stock;
        assert_eq!(stock.name, "Apple Inc.");
        assert_eq!(stock.exchange, "NYSE");
        assert_eq!(stock.sector, "Information Technology");
        assert_eq!(stock.industry.as_deref(), Some("Consumer Electronics"));
        assert_eq!(stock.currency, "EUR");
        assert_eq!(stock.market_cap, None);
        assert!(stock.updated_at >= first.updated_at);
        assert!((chrono::Utc::now() - stock.updated_at).num_seconds() < 60);
    })
    .await;
}

#[tokio::test]
async fn writes_to_an_unknown_ticker_are_not_found() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        let bars = [flat_bar(date(2025, 1, 2), 10_000, 1)];
        assert!(matches!(
            repo.upsert_bars(&ticker("NOPE"), &bars).await,
            Err(RepositoryError::NotFound(t)) if t.as_str() == "NOPE"
        ));
        assert!(matches!(
            repo.delete_stock(&ticker("NOPE")).await,
            Err(RepositoryError::NotFound(_))
        ));
        assert_eq!(db.count_rows("price_bars").await, 0);
        assert_eq!(repo.count_stocks().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn upsert_bars_counts_rows_and_replaces_a_date() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", None).await;
        let (d1, d2) = (date(2025, 1, 2), date(2025, 1, 3));
        let stored = repo
            .upsert_bars(
                &ticker("AAPL"),
                &[flat_bar(d1, 10_000, 1), flat_bar(d2, 20_000, 2)],
            )
            .await
            .unwrap();
        assert_eq!(stored, 2);
        // A batch naming one date twice keeps the later bar.
        let stored = repo
            .upsert_bars(
                &ticker("AAPL"),
                &[flat_bar(d2, 30_000, 3), flat_bar(d2, 40_000, 4)],
            )
            .await
            .unwrap();
        assert_eq!(stored, 1);
        let bars = repo.bars(&ticker("AAPL"), d1, d2).await.unwrap();
        assert_eq!(bars, vec![flat_bar(d1, 10_000, 1), flat_bar(d2, 40_000, 4)]);
        assert_eq!(repo.upsert_bars(&ticker("AAPL"), &[]).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn the_quote_follows_every_price_write() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", None).await;
        let quote = || async {
            let stock = repo.detail(&ticker("AAPL")).await.unwrap().unwrap().stock;
            let q = stock.quote.unwrap();
            (
                q.as_of,
                q.price.units(),
                q.previous_close.map(|p| p.units()),
                q.change_units,
                q.change_percent.map(|p| p.hundredths()),
                q.volume,
            )
        };
        let before = repo.detail(&ticker("AAPL")).await.unwrap().unwrap().stock;
        let (d10, d12, d14) = (date(2025, 3, 10), date(2025, 3, 12), date(2025, 3, 14));

        add_closes(repo, "AAPL", &[(d10, 1_000_000, 5)]).await;
        assert_eq!(quote().await, (d10, 1_000_000, None, None, None, 5));
        let after = repo.detail(&ticker("AAPL")).await.unwrap().unwrap().stock;
        assert!(after.updated_at >= before.updated_at);

        add_closes(repo, "AAPL", &[(d14, 1_012_345, 7)]).await;
        // 1.2345 % rounds to 1.23 %, exactly as the domain rounds it.
        assert_eq!(
            quote().await,
            (d14, 1_012_345, Some(1_000_000), Some(12_345), Some(123), 7)
        );

        // Replacing the latest date changes the price and the change.
        add_closes(repo, "AAPL", &[(d14, 900_000, 9)]).await;
        assert_eq!(
            quote().await,
            (
                d14,
                900_000,
                Some(1_000_000),
                Some(-100_000),
                Some(-1_000),
                9
            )
        );

        // An older bar between the two latest becomes the previous close.
        add_closes(repo, "AAPL", &[(d12, 800_000, 1)]).await;
        assert_eq!(
            quote().await,
            (d14, 900_000, Some(800_000), Some(100_000), Some(1_250), 9)
        );

        // A bar older than both changes nothing.
        add_closes(repo, "AAPL", &[(date(2025, 1, 1), 1, 1)]).await;
        assert_eq!(
            quote().await,
            (d14, 900_000, Some(800_000), Some(100_000), Some(1_250), 9)
        );
    })
    .await;
}

/// Makes every later insert of a bar with volume 666 fail inside the database, the way a
/// constraint violation or a lost connection would half-way through a batch.
async fn arm_failure_on_volume_666(db: &TestDb) {
    let side = db.side_connection().await;
    let statements: &[&str] = match db.repo.backend_name() {
        "sqlite" => &["CREATE TRIGGER reject_666 BEFORE INSERT ON price_bars \
             WHEN NEW.volume = 666 BEGIN SELECT RAISE(ABORT, 'volume 666 rejected'); END"],
        _ => &[
            "CREATE FUNCTION reject_666() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.volume = 666 THEN RAISE EXCEPTION 'volume 666 rejected'; END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER reject_666 BEFORE INSERT ON price_bars \
             FOR EACH ROW EXECUTE FUNCTION reject_666()",
        ],
    };
    for sql in statements {
        side.execute_unprepared(sql).await.unwrap();
    }
    side.close().await.unwrap();
}

#[tokio::test]
async fn a_failing_batch_stores_nothing() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", None).await;
        let first = date(2000, 1, 1);
        add_closes(repo, "AAPL", &[(first, 10_000, 1)]).await;
        let before = repo.detail(&ticker("AAPL")).await.unwrap().unwrap();
        arm_failure_on_volume_666(&db).await;

        // 2,500 bars span three INSERTs; the poisoned one is in the last.
        let mut bars: Vec<_> = (1..=2_500_u64)
            .map(|i| flat_bar(first + chrono::Days::new(i), 20_000, 1))
            .collect();
        bars[2_400] = flat_bar(bars[2_400].date(), 20_000, 666);
        // The existing bar is part of the batch too: its replacement must be undone as well.
        bars.push(flat_bar(first, 30_000, 2));
        let result = repo.upsert_bars(&ticker("AAPL"), &bars).await;
        assert!(
            matches!(result, Err(RepositoryError::Internal(_))),
            "{result:?}"
        );

        assert_eq!(db.count_rows("price_bars").await, 1);
        let after = repo.detail(&ticker("AAPL")).await.unwrap().unwrap();
        assert_eq!(after, before, "the quote and updated_at are unchanged");
        let stored = repo
            .bars(&ticker("AAPL"), first, date(2100, 1, 1))
            .await
            .unwrap();
        assert_eq!(stored, vec![flat_bar(first, 10_000, 1)]);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_stock_takes_its_bars_and_quote() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", None).await;
        add_stock(repo, "MSFT", "Microsoft", None).await;
        let days = [date(2025, 1, 2), date(2025, 1, 3)];
        add_closes(repo, "AAPL", &[(days[0], 10_000, 1), (days[1], 11_000, 1)]).await;
        add_closes(repo, "MSFT", &[(days[0], 10_000, 1)]).await;

        repo.delete_stock(&ticker("AAPL")).await.unwrap();
        assert_eq!(repo.count_stocks().await.unwrap(), 1);
        assert_eq!(db.count_rows("price_bars").await, 1);
        assert_eq!(db.count_rows("stock_quotes").await, 1);
        assert_eq!(repo.detail(&ticker("AAPL")).await.unwrap(), None);
        assert_eq!(repo.latest_trading_day().await.unwrap(), Some(days[0]));
        assert!(matches!(
            repo.delete_stock(&ticker("AAPL")).await,
            Err(RepositoryError::NotFound(_))
        ));

        // The ticker can be listed again, from scratch.
        add_stock(repo, "AAPL", "Apple again", None).await;
        assert_eq!(repo.latest_bar_date(&ticker("AAPL")).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn concurrent_writers_wait_for_each_other() {
    on_each_backend(|db| async move {
        let symbols: Vec<String> = (0..6).map(|i| format!("S{i}")).collect();
        for symbol in &symbols {
            add_stock(&db.repo, symbol, symbol, None).await;
        }
        let writes = symbols.iter().map(|symbol| {
            let repo = db.repo.clone();
            let symbol = ticker(symbol);
            tokio::spawn(async move {
                for round in 0..5_u64 {
                    let bars: Vec<_> = (0..200_u64)
                        .map(|i| {
                            flat_bar(
                                date(2020, 1, 1) + chrono::Days::new(round * 200 + i),
                                10_000,
                                1,
                            )
                        })
                        .collect();
                    repo.upsert_bars(&symbol, &bars).await.unwrap();
                }
            })
        });
        for write in futures::future::join_all(writes).await {
            write.unwrap();
        }
        assert_eq!(db.count_rows("price_bars").await, 6 * 1_000);
    })
    .await;
}

#[tokio::test]
async fn ping_answers_and_the_backend_is_named() {
    on_each_backend(|db| async move {
        db.repo.ping().await.unwrap();
        assert!(["sqlite", "postgres"].contains(&db.repo.backend_name()));
        // Migrating twice is harmless: a restarted service migrates on every start.
        db.repo.migrate().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    let options = stockpile_infrastructure::DatabaseOptions {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(2),
        ..stockpile_infrastructure::DatabaseOptions::default()
    };
    // Port 1 on the loopback refuses connections.
    let error = stockpile_infrastructure::SeaOrmStockRepository::connect(
        "postgres://user:hunter2@127.0.0.1:1/db",
        options,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, RepositoryError::Unavailable(_)),
        "{error:?}"
    );
    assert!(!error.to_string().contains("hunter2"));

    let error = stockpile_infrastructure::SeaOrmStockRepository::connect(
        "mysql://user:hunter2@127.0.0.1/db",
        stockpile_infrastructure::DatabaseOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, RepositoryError::Internal(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2"));
}

#[tokio::test]
async fn an_in_memory_sqlite_database_is_one_shared_database() {
    // The repository keeps one connection to an in-memory database: concurrent writes queue
    // for it instead of failing on shared-cache table locks, and all see the same data.
    let repo = stockpile_infrastructure::SeaOrmStockRepository::connect(
        "sqlite::memory:",
        stockpile_infrastructure::DatabaseOptions::default(),
    )
    .await
    .unwrap();
    repo.migrate().await.unwrap();
    let repo: &dyn StockRepository = &repo;
    let writes = (0..4).map(|i| add_stock(repo, ["A", "B", "C", "D"][i], "Company", None));
    futures::future::join_all(writes).await;
    assert_eq!(repo.count_stocks().await.unwrap(), 4);
}

/// Pooled SQLite connections that read the schema while the migration runs must not keep half of
/// it: a connection that cached `stocks` without its unique index would refuse every later
/// upsert ("ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_during_a_migration_never_cache_half_a_schema() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use stockpile_infrastructure::{DatabaseOptions, SeaOrmStockRepository};

    for round in 0..8 {
        let path =
            std::env::temp_dir().join(format!("stockpile-migrate-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options = DatabaseOptions {
            max_connections: 8,
            ..DatabaseOptions::default()
        };
        let repo = SeaOrmStockRepository::connect(&url, options).await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..6)
            .map(|_| {
                let (repo, done) = (repo.clone(), done.clone());
                tokio::spawn(async move {
                    // Fails with "no such table" until the table exists, then leaves its
                    // connection idle with the schema it read at that moment cached.
                    while !done.load(Ordering::Relaxed) && repo.count_stocks().await.is_err() {}
                })
            })
            .collect();
        repo.migrate().await.unwrap();
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        let upserts = (0..24).map(|i| {
            let repo = repo.clone();
            async move {
                repo.upsert_stock(
                    &ticker(&format!("T{i}")),
                    &profile("Name", "Tech", "NYSE", None),
                )
                .await
            }
        });
        for outcome in futures::future::join_all(upserts).await {
            assert_eq!(
                outcome.unwrap_or_else(|e| panic!("round {round}: {e}")),
                UpsertOutcome::Created
            );
        }
        drop(repo);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

/// A query blocked behind another session's lock is cancelled at the statement timeout and
/// reported unavailable, so a hung database costs each request a bounded wait instead of
/// holding every pooled connection, and every request queued behind them, forever.
#[tokio::test]
async fn a_blocked_query_is_cancelled_at_the_statement_timeout() {
    use sea_orm::TransactionTrait;
    use std::time::{Duration, Instant};
    use stockpile_domain::{SortField, SortOrder};
    use stockpile_infrastructure::{DatabaseOptions, SeaOrmStockRepository};

    on_each_backend(|db| async move {
        if db.repo.backend_name() != "postgres" {
            // SQLite has no statement timeout: its waits for a lock end with the busy timeout.
            return;
        }
        add_stock(&db.repo, "AAA", "Alpha", None).await;
        let options = DatabaseOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_millis(300),
        };
        let repo = SeaOrmStockRepository::connect(&db.url, options)
            .await
            .unwrap();
        let side = db.side_connection().await;
        let lock = side.begin().await.unwrap();
        lock.execute_unprepared("LOCK TABLE stocks IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();

        let query = list_query(SortField::Ticker, SortOrder::Asc);
        let started = Instant::now();
        // Three times as many queries as connections: the later ones wait for a connection
        // that a cancelled query gives back.
        let queries = futures::future::join_all((0..6).map(|_| repo.list(&query)));
        let outcomes = tokio::time::timeout(Duration::from_secs(10), queries)
            .await
            .expect("the blocked queries were never cancelled");
        let took = started.elapsed();
        for outcome in outcomes {
            assert!(
                matches!(outcome, Err(RepositoryError::Unavailable(_))),
                "{outcome:?}"
            );
        }
        assert!(
            took < Duration::from_secs(3),
            "six blocked queries took {took:?}"
        );

        lock.rollback().await.unwrap();
        assert_eq!(repo.list(&query).await.unwrap().total, 1);
    })
    .await;
}

/// After a bulk load, `refresh_statistics` gives the planner the row counts there are.
#[tokio::test]
async fn refreshed_statistics_count_the_rows_of_a_bulk_load() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", None).await;
        let bars: Vec<_> = (1..=20)
            .map(|day| flat_bar(date(2025, 1, day), 10_000, 1))
            .collect();
        repo.upsert_bars(&ticker("AAPL"), &bars).await.unwrap();
        assert_ne!(db.planned_rows("price_bars").await, Some(20));

        db.repo.refresh_statistics().await.unwrap();
        assert_eq!(db.planned_rows("price_bars").await, Some(20));
        assert_eq!(db.planned_rows("stocks").await, Some(1));
        assert_eq!(db.planned_rows("stock_quotes").await, Some(1));
    })
    .await;
}
