//! Three instances sharing one PostgreSQL database and one Redis: 3 × 200 concurrent requests
//! for one cold key cause one database load across the fleet, not one per instance.

use stockpile::Settings;

use crate::support::{shared_redis_settings, TestApp, TestDatabase};

const REQUESTS_PER_INSTANCE: usize = 200;

fn instance_settings(database: &TestDatabase, prefix: &str) -> Settings {
    let mut settings = shared_redis_settings(database, prefix);
    // Three servers and 600 clients share this test's two worker threads, so a command can
    // wait past the default 100 ms for a thread rather than for Redis; a timed-out command
    // switches its instance to memory, whose lease is always granted. That is the fallback
    // at work, not what this test measures.
    settings.redis.command_timeout_ms = 1000;
    settings
}

/// The instance's `stockpile_cache_loads_total{family="leaderboard"}`, 0 when absent.
async fn leaderboard_loads(app: &TestApp) -> u64 {
    let metrics = app
        .get("/metrics")
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    metrics
        .lines()
        .find(|l| {
            l.starts_with("stockpile_cache_loads_total{") && l.contains("family=\"leaderboard\"")
        })
        .map_or(0, |line| {
            line.rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("not a counter: {line}")) as u64
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_cold_requests_on_three_instances_cause_one_load() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let prefix = format!("e2e-fleet-{}:", uuid::Uuid::new_v4().simple());
    let settings: Vec<_> = (0..3)
        .map(|_| instance_settings(&database, &prefix))
        .collect();
    let mut settings = settings.into_iter();
    let mut next = || settings.next().unwrap_or_else(|| unreachable!());
    let a = TestApp::spawn_with(next(), database, 10, 300).await;
    // B and C share A's database, which A's test database drops at the end; their own are
    // SQLite files that are never created.
    let b = TestApp::spawn_with(next(), TestDatabase::sqlite(), 0, 0).await;
    let c = TestApp::spawn_with(next(), TestDatabase::sqlite(), 0, 0).await;
    let fleet = [&a, &b, &c];

    if !crate::support::all_on_redis_or_skip(&fleet).await {
        return;
    }

    let path = "/api/stocks/leaderboard/top?period=1y&limit=7";
    let requests: Vec<_> = fleet
        .iter()
        .flat_map(|app| {
            (0..REQUESTS_PER_INSTANCE).map(|_| {
                let request = app.client.get(format!("{}{path}", app.base));
                tokio::spawn(async move {
                    let response = request
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
                    let status = response.status().as_u16();
                    let body = response
                        .bytes()
                        .await
                        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
                    (status, body)
                })
            })
        })
        .collect();
    assert_eq!(requests.len(), 3 * REQUESTS_PER_INSTANCE);
    let started = std::time::Instant::now();
    let mut first_body = None;
    for request in requests {
        let (status, body) = request.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let first = first_body.get_or_insert_with(|| body.clone());
        assert_eq!(*first, body, "every instance answers the same body");
    }

    eprintln!(
        "{} cold requests on three instances answered in {:?}",
        3 * REQUESTS_PER_INSTANCE,
        started.elapsed()
    );
    for app in fleet {
        let status = app.json("/api/cache/status").await;
        assert_eq!(
            status["backend"], "redis",
            "an instance left Redis: {status}"
        );
    }
    let mut loads = Vec::new();
    for app in fleet {
        loads.push(leaderboard_loads(app).await);
    }
    assert_eq!(
        loads.iter().sum::<u64>(),
        1,
        "loads per instance across the fleet: {loads:?}"
    );

    // Nothing left behind in the shared Redis.
    let cleared = a
        .admin(reqwest::Method::DELETE, "/api/cache")
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE /api/cache: {e}"));
    assert_eq!(cleared.status(), 200);
}
