//! Runs a test body against a fresh, migrated database on each backend: a temporary SQLite file
//! and, when a server answers at `TEST_DATABASE_URL`, a PostgreSQL database of its own.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

use futures::FutureExt;
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use stockpile_infrastructure::redaction::redact_url;
use stockpile_infrastructure::{DatabaseOptions, SeaOrmStockRepository};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// One test's database: the repository under test and the URL, so that a test can open a side
/// connection of its own (to count rows or arm a failure).
#[derive(Clone)]
pub struct TestDb {
    pub repo: SeaOrmStockRepository,
    pub url: String,
}

impl TestDb {
    /// A connection of the test's own, next to the repository's pool.
    pub async fn side_connection(&self) -> DatabaseConnection {
        Database::connect(self.url.as_str()).await.unwrap()
    }

    /// `SELECT COUNT(*) FROM {table}` through a side connection.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let db = self.side_connection().await;
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        db.close().await.unwrap();
        n
    }
}

impl TestDb {
    /// How many rows the query planner's statistics say `table` has; `None` before any were
    /// gathered (PostgreSQL's `reltuples` is -1 then, and SQLite has no `sqlite_stat1`).
    pub async fn planned_rows(&self, table: &str) -> Option<i64> {
        let db = self.side_connection().await;
        let backend = db.get_database_backend();
        let sql = match backend {
            DatabaseBackend::Postgres => format!(
                "SELECT CAST(reltuples AS BIGINT) AS n FROM pg_class WHERE relname = '{table}'"
            ),
            // The first number of an entry is the table's row count.
            _ => format!(
                "SELECT CAST(stat AS INTEGER) AS n FROM sqlite_stat1 WHERE tbl = '{table}' LIMIT 1"
            ),
        };
        let row = db
            .query_one(Statement::from_string(backend, sql))
            .await
            .ok()
            .flatten();
        db.close().await.unwrap();
        row.and_then(|row| row.try_get::<i64>("", "n").ok())
            .filter(|n| *n >= 0)
    }
}

/// Runs `test` on SQLite, then on PostgreSQL, each time with a fresh database.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let path = std::env::temp_dir().join(format!("stockpile-it-{}.db", uuid::Uuid::new_v4()));
    let outcome = run(
        "sqlite",
        format!("sqlite://{}?mode=rwc", path.display()),
        &test,
    )
    .await;
    remove_sqlite_files(&path);
    resume(outcome);

    let admin_url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let Some(admin) = postgres_admin(&admin_url).await else {
        return;
    };
    let name = format!("stockpile_it_{}", uuid::Uuid::new_v4().simple());
    execute(&admin, &format!("CREATE DATABASE {name}")).await;
    let outcome = run("postgres", database_url(&admin_url, &name), &test).await;
    // FORCE ends the repository's pooled connections, which may still be open.
    execute(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    admin.close().await.unwrap();
    resume(outcome);
}

type Outcome = Result<(), Box<dyn std::any::Any + Send>>;

async fn run<F, Fut>(backend: &str, url: String, test: &F) -> Outcome
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let repo = SeaOrmStockRepository::connect(&url, DatabaseOptions::default())
        .await
        .unwrap();
    assert_eq!(repo.backend_name(), backend);
    repo.migrate().await.unwrap();
    let outcome = AssertUnwindSafe(test(TestDb { repo, url }))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        eprintln!("the test above failed on {backend}");
    }
    outcome
}

/// Re-raises a test's panic once its database is cleaned up.
fn resume(outcome: Outcome) {
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        // A file that was never created is fine to miss.
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
}

/// A connection to the server's maintenance database, or `None` (loudly) when nothing answers,
/// except under `CI=true`, where PostgreSQL is required and its absence fails the test.
async fn postgres_admin(admin_url: &str) -> Option<DatabaseConnection> {
    let mut options = sea_orm::ConnectOptions::new(admin_url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(db) => Some(db),
        Err(error) => {
            stockpile_test_support::skip_or_fail(&format!(
                "PostgreSQL not reachable at {} ({error}); only SQLite was tested",
                redact_url(admin_url)
            ));
            None
        }
    }
}

async fn execute(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.unwrap();
}

/// The server URL with its database path replaced by `name` (query parameters kept).
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[test]
fn urls_are_rewritten() {
    assert_eq!(
        database_url("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
        "postgres://u:p@h:5432/t1?sslmode=disable"
    );
    assert_eq!(database_url("postgres://h", "t1"), "postgres://h/t1");
}
