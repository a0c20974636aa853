//! Secrets never reach the logs or an error message: the real binary runs with debug logging,
//! a token, and passwords in both connection URLs, and everything it prints is searched.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

const TOKEN: &str = "tok-3f9a1c7e5b2d4f608a1b3c5d7e9f0a2b";
const DATABASE_PASSWORD: &str = "pg-pass-7d1e9c";
const REDIS_PASSWORD: &str = "redis-pass-4b8f2a";

fn stockpile() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockpile"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json")
        .env("ADMIN_TOKEN", TOKEN)
        // Nothing listens on port 1: Redis is unreachable and its errors are logged.
        .env(
            "REDIS_URL",
            format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn assert_no_secret(output: &str) {
    for secret in [TOKEN, DATABASE_PASSWORD, REDIS_PASSWORD] {
        assert!(
            !output.contains(secret),
            "a secret ({secret}) was printed:\n{output}"
        );
    }
}

/// Everything a finished process wrote.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `stockpile serve` on a fresh SQLite file, answering.
struct Server {
    child: tokio::process::Child,
    base: String,
    database: std::path::PathBuf,
}

impl Server {
    async fn start(mut command: tokio::process::Command) -> Self {
        let database =
            std::env::temp_dir().join(format!("stockpile-secrets-{}.db", uuid::Uuid::new_v4()));
        let port = stockpile_test_support::spare_port();
        let child = command
            .arg("serve")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", database.display()),
            )
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let up = stockpile_test_support::wait_until(Duration::from_secs(10), || async {
            client.get(format!("{base}/health")).send().await.is_ok()
        })
        .await;
        assert!(up, "the server did not start");
        Self {
            child,
            base,
            database,
        }
    }

    /// Stops the server, removes its database and returns what it wrote.
    async fn stop(mut self) -> String {
        self.child.start_kill().unwrap();
        let output = self.child.wait_with_output().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.database.display()));
        }
        printed(&output)
    }
}

#[tokio::test]
async fn an_unreachable_database_is_reported_without_its_password() {
    let output = stockpile()
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("postgres://stockpile:{DATABASE_PASSWORD}@127.0.0.1:1/stockpile"),
        )
        .env("DATABASE_ACQUIRE_TIMEOUT_MS", "500")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let printed = printed(&output);
    assert!(
        printed.contains("database"),
        "the failure should name the database:\n{printed}"
    );
    assert_no_secret(&printed);
}

#[tokio::test]
async fn serving_admin_requests_and_a_cache_outage_logs_no_secret() {
    let server = Server::start(stockpile()).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let profile = json!({"name": "Secret Corp", "exchange": "NYSE", "sector": "Energy"});
    let created = client
        .put(format!("{base}/api/stocks/SCRT"))
        .bearer_auth(TOKEN)
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let wrong = client
        .put(format!("{base}/api/stocks/SCRT"))
        .bearer_auth("not-the-token")
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let body = wrong.text().await.unwrap();
    assert_no_secret(&body);
    assert!(
        !body.contains("not-the-token"),
        "the presented token was echoed: {body}"
    );
    let malformed = client
        .delete(format!("{base}/api/cache"))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 401);
    assert_no_secret(&malformed.text().await.unwrap());
    assert_eq!(
        client
            .get(format!("{base}/api/stocks/SCRT"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let printed = server.stop().await;
    // The logs were really written: the requests and the Redis trouble are in them.
    assert!(
        printed.contains("/api/stocks/{ticker}"),
        "no request log lines:\n{printed}"
    );
    assert!(
        printed.to_lowercase().contains("redis"),
        "no Redis log lines:\n{printed}"
    );
    assert_no_secret(&printed);
}

/// Every way a password can be written into `DATABASE_URL`.
fn database_urls() -> Vec<String> {
    let p = DATABASE_PASSWORD;
    vec![
        format!("postgres://stockpile:{p}@127.0.0.1:1/stockpile"),
        format!("postgres://stockpile@127.0.0.1:1/stockpile?password={p}"),
        format!("postgresql://127.0.0.1:1/stockpile?user=stockpile&PASSWORD={p}"),
        format!("postgres://stockpile:one@127.0.0.1:1/stockpile?sslmode=disable&Password={p}"),
        format!("postgres://{p}@127.0.0.1:1/stockpile"),
        format!("postgres://stockpile:a%40{p}@127.0.0.1:1/stockpile"),
    ]
}

/// Every way a password can be written into `REDIS_URL`, one of them not a valid URL.
fn redis_urls() -> Vec<String> {
    let p = REDIS_PASSWORD;
    vec![
        format!("redis://:{p}@127.0.0.1:1/0"),
        format!("redis://app:{p}@127.0.0.1:1/0"),
        format!("redis://127.0.0.1:1/0?password={p}"),
        format!("redis://{p}@127.0.0.1:1/0"),
        format!("redis://:{p}@127.0.0.1:not-a-port/0"),
    ]
}

#[test]
fn no_form_of_password_reaches_a_debug_output() {
    for url in database_urls().into_iter().chain(redis_urls()) {
        let typed: stockpile::settings::ConnectionUrl = serde_json::from_value(json!(url)).unwrap();
        assert_no_secret(&format!("{typed:?}"));
        assert_no_secret(&typed.redacted());
        let redis = stockpile_infrastructure::RedisSettings {
            url: url.clone(),
            ..stockpile_infrastructure::RedisSettings::default()
        };
        assert_no_secret(&format!("{redis:?}"));
    }
}

#[tokio::test]
async fn no_form_of_password_in_the_database_url_is_printed() {
    for url in database_urls() {
        let output = stockpile()
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("DATABASE_ACQUIRE_TIMEOUT_MS", "300")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{url} should fail");
        assert_no_secret(&printed(&output));
    }
}

#[tokio::test]
async fn no_form_of_password_in_the_redis_url_is_printed_or_answered() {
    let client = reqwest::Client::new();
    for url in redis_urls() {
        let mut command = stockpile();
        command.env("REDIS_URL", &url);
        let server = Server::start(command).await;
        let base = &server.base;
        for path in ["/health/ready", "/api/cache/status", "/api/stocks/NONE"] {
            let body = client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_no_secret(&body);
        }
        assert_no_secret(&server.stop().await);
    }
}
