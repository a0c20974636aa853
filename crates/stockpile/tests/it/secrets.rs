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
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("database"),
        "the failure should name the database:\n{printed}"
    );
    assert_no_secret(&printed);
}

#[tokio::test]
async fn serving_admin_requests_and_a_cache_outage_logs_no_secret() {
    let database =
        std::env::temp_dir().join(format!("stockpile-secrets-{}.db", uuid::Uuid::new_v4()));
    let port = stockpile_test_support::spare_port();
    let mut server = stockpile()
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

    server.start_kill().unwrap();
    let output = server.wait_with_output().await.unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
}
