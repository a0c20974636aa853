//! Three instances of this crate's binary over one PostgreSQL database and a Redis of the
//! test's own, behind nginx with upstream keep-alive: `cargo xtask fleet`'s load and rules at a
//! small bound. No 5xx, one ETag per body on every instance, and no read after an acknowledged
//! write, on any instance or through nginx, answers the older data.

use std::time::Duration;

use stockpile_test_support::{skip_or_fail, RedisServer};
use xtask::fleet::{nginx_binary, run, Plan};

use crate::support::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_behind_nginx_answers_no_5xx_one_etag_per_body_and_no_stale_read() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    if nginx_binary().is_none() {
        skip_or_fail("nginx is not installed (apt-get install nginx)");
        return;
    }
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let binary = env!("CARGO_BIN_EXE_stockpile");
    let seeded = tokio::process::Command::new(binary)
        .args(["seed", "--tickers", "40", "--days", "260"])
        .args(["--last-date", "2025-11-21"])
        .env("DATABASE_URL", database.url())
        .env("CACHE_BACKEND", "none")
        .env("RUST_LOG", "warn")
        .status()
        .await
        .unwrap_or_else(|e| panic!("stockpile seed: {e}"));
    assert!(seeded.success(), "stockpile seed failed: {seeded}");

    let plan = Plan {
        binary: binary.to_owned(),
        database_url: database.url(),
        // The first tier on, as deployed: a write answers only once every instance's memory
        // forgot what it made stale, so no read after it finds the older entry anywhere.
        env: vec![(
            "REDIS_URL".into(),
            format!("redis://127.0.0.1:{}", redis.port()),
        )],
        instances: 3,
        readers: 4,
        run_for: Duration::from_secs(10),
    };
    let report = tokio::task::spawn_blocking(move || run(&plan))
        .await
        .unwrap_or_else(|e| panic!("the fleet panicked: {e}"))
        .unwrap_or_else(|failure| panic!("the fleet could not run: {failure}"));
    eprintln!("{report:?}");
    assert!(report.failures.is_empty(), "{}", report.failures.join("\n"));
    // The rules were put to the test, not merely unbroken: writes were read back everywhere,
    // and ETags compared across instances.
    assert!(report.writes >= 20, "{report:?}");
    assert!(report.reads_after_writes >= 5 * report.writes, "{report:?}");
    assert!(report.cross_instance_reads >= 20, "{report:?}");
    assert!(report.etags_checked >= 500, "{report:?}");
    assert!(
        report.cache_hits > 0 && report.cache_misses > 0,
        "{report:?}"
    );
}
