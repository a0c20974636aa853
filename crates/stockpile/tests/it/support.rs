use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chrono::NaiveDate;
use stockpile::seed::{seed, SeedOptions};
use stockpile::settings::{CacheBackendKind, ConnectionUrl, Secret};
use stockpile::{Application, Settings};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The last trading day of every seeded test data set.
pub fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 21).unwrap_or_default()
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    _database: TestDatabase,
}

/// A database that lives as long as the test: a temporary SQLite file or a PostgreSQL
/// database of its own, dropped afterwards.
pub enum TestDatabase {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        Self::Sqlite(
            std::env::temp_dir().join(format!("stockpile-e2e-{}.db", uuid::Uuid::new_v4())),
        )
    }

    /// A fresh PostgreSQL database; `None` (with a loud message) when no server answers,
    /// except under `CI=true`, where that fails the test.
    pub async fn postgres() -> Option<Self> {
        use sea_orm::ConnectionTrait;
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("stockpile_e2e_{}", uuid::Uuid::new_v4().simple());
        let created = async {
            let db = sea_orm::Database::connect(&admin_url).await?;
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            db.close().await
        }
        .await;
        match created {
            Ok(()) => Some(Self::Postgres { admin_url, name }),
            Err(error) => {
                stockpile_test_support::skip_or_fail(&format!(
                    "PostgreSQL not reachable through TEST_DATABASE_URL ({error})"
                ));
                None
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            Self::Postgres { admin_url, name } => match admin_url.rsplit_once('/') {
                Some((server, _)) => format!("{server}/{name}"),
                None => admin_url.clone(),
            },
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            Self::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Self::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Dropped from inside a runtime: do it on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(runtime) = runtime {
                        runtime.block_on(async {
                            use sea_orm::ConnectionTrait;
                            if let Ok(db) = sea_orm::Database::connect(&admin_url).await {
                                let _ = db
                                    .execute_unprepared(&format!(
                                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                    ))
                                    .await;
                            }
                        });
                    }
                })
                .join();
            }
        }
    }
}

/// Settings for a test server: port 0, the given database, an in-process cache.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut settings = Settings::default();
    settings.http.bind_addr = "127.0.0.1:0".into();
    settings.database.url = serde_json::from_value::<ConnectionUrl>(database.url().into())
        .unwrap_or_else(|e| panic!("{e}"));
    settings.cache.backend = CacheBackendKind::Memory;
    settings.admin.token = Some(
        serde_json::from_value::<Secret>(ADMIN_TOKEN.into()).unwrap_or_else(|e| panic!("{e}")),
    );
    settings
}

impl TestApp {
    /// A server over `database`, seeded with `tickers` × `days` of synthetic bars.
    pub async fn spawn(database: TestDatabase, tickers: usize, days: usize) -> Self {
        Self::spawn_with(test_settings(&database), database, tickers, days).await
    }

    pub async fn spawn_with(
        settings: Settings,
        database: TestDatabase,
        tickers: usize,
        days: usize,
    ) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            stockpile::telemetry::init(&stockpile::settings::LogSection::default());
        }
        let app = Application::build(&settings)
            .await
            .unwrap_or_else(|e| panic!("the test server did not start: {e}"));
        let service = app.service();
        if tickers > 0 {
            let options = SeedOptions {
                tickers,
                days,
                last_date: Some(last_day()),
                seed: 7,
            };
            seed(service.as_ref(), &options, false)
                .await
                .unwrap_or_else(|e| panic!("seeding failed: {e}"));
        }
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            client: reqwest::Client::new(),
            _database: database,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
    }
}

/// Tests that drive load or run several servers take turns: on a 2-core machine two of them at
/// once starve each other's servers of CPU, and timeouts meant for dead dependencies fire on
/// live ones. Light tests still run alongside.
static HEAVY_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn one_heavy_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY_TESTS.lock().await
}

/// Settings for one of several instances sharing `database` and the local Redis (`REDIS_URL`)
/// under `prefix`, in the default `auto` mode.
/// Whether every one of `apps` serves from Redis. When one does not, says loudly that the test
/// is skipped, except under `CI=true`, where Redis is required and its absence fails the test.
pub async fn all_on_redis_or_skip(apps: &[&TestApp]) -> bool {
    for app in apps {
        let status = app.json("/api/cache/status").await;
        if status["backend"] != "redis" {
            stockpile_test_support::skip_or_fail(&format!(
                "Redis not reachable through REDIS_URL ({status})"
            ));
            return false;
        }
    }
    true
}

pub fn shared_redis_settings(database: &TestDatabase, prefix: &str) -> Settings {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut settings = test_settings(database);
    settings.cache.backend = CacheBackendKind::Auto;
    settings.redis.url = Some(
        serde_json::from_value::<ConnectionUrl>(redis_url.into()).unwrap_or_else(|e| panic!("{e}")),
    );
    settings.cache.key_prefix = prefix.to_owned();
    settings
}

/// A temporary directory (the server's working directory, and its SQLite file unless
/// `database` is PostgreSQL), removed after.
pub struct Scratch {
    pub dir: PathBuf,
    pub database: Option<TestDatabase>,
}

impl Scratch {
    pub fn database_url(&self) -> String {
        self.database.as_ref().map_or_else(
            || format!("sqlite://{}?mode=rwc", self.dir.join("kill.db").display()),
            TestDatabase::url,
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real `stockpile` binary, with only the settings given here: no `stockpile.toml` (its
/// working directory is the scratch directory) and none of the caller's environment.
pub fn stockpile(scratch: &Scratch, port: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockpile"));
    command
        .current_dir(&scratch.dir)
        .env_clear()
        .env("DATABASE_URL", scratch.database_url())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("CACHE_BACKEND", "memory")
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A scratch directory whose database (`database`, else a SQLite file in it) `stockpile seed`
/// filled with two stocks and five days, so that the server does not seed the whole universe
/// on its first start.
pub async fn seeded_scratch(purpose: &str, database: Option<TestDatabase>) -> Scratch {
    let scratch = Scratch {
        dir: std::env::temp_dir().join(format!("stockpile-{purpose}-{}", uuid::Uuid::new_v4())),
        database,
    };
    std::fs::create_dir_all(&scratch.dir).unwrap();
    let seeded = tokio::time::timeout(
        Duration::from_secs(15),
        stockpile(&scratch, 0)
            .args([
                "seed",
                "--tickers",
                "2",
                "--days",
                "5",
                "--last-date",
                "2025-11-21",
            ])
            .status(),
    )
    .await
    .expect("stockpile seed took over 15 s")
    .unwrap();
    assert!(seeded.success(), "stockpile seed failed: {seeded}");
    scratch
}
