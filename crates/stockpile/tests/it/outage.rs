//! A PostgreSQL outage as a client sees it: cached answers keep coming, expired ones come back
//! `STALE`, the rest (writes too) fail fast with 503 and `Retry-After` and change nothing, and
//! the service recovers by itself.

use std::time::{Duration, Instant};

use stockpile_test_support::FaultProxy;

use crate::support::{test_settings, TestApp, TestDatabase};

/// A server over `database` reached through a proxy, with two connections, the test's TTL and
/// three seeded stocks, and the paths of their details.
async fn served_through_a_proxy(database: TestDatabase) -> (TestApp, FaultProxy, [String; 3]) {
    let mut settings = test_settings(&database);
    let (proxy, proxied_url) =
        FaultProxy::in_front_of_database(settings.database.url.expose()).await;
    settings.database.url = serde_json::from_value(proxied_url.into()).unwrap();
    settings.database.max_connections = 2;
    settings.cache.ttl_default = TTL_SECONDS;
    let app = TestApp::spawn_with(settings, database, 3, 30).await;
    let list = app.json("/api/stocks").await;
    let detail = |i: usize| {
        format!(
            "/api/stocks/{}",
            list["items"][i]["ticker"].as_str().unwrap()
        )
    };
    let details = [detail(0), detail(1), detail(2)];
    (app, proxy, details)
}

/// The longest a request may take while the database is down. The pool waits out its acquire
/// timeout (`DatabaseOptions::acquire_timeout`, 3 s) for a connection before it gives up.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_secs(5);

/// `/health/ready` pings with a 900 ms deadline of its own.
const READINESS_BOUND: Duration = Duration::from_millis(1_500);

/// `CACHE_TTL_DEFAULT` in this test: 2 s (±10 % jitter) leaves a read warmed just before the
/// cut well inside its TTL on a slow machine, and still expires an entry quickly.
const TTL_SECONDS: u64 = 2;

/// How long a cold read may take once the database is known to be failing.
const REFUSAL_BOUND: Duration = Duration::from_secs(1);

/// `CACHE_SOFT_TIMEOUT_MS` in these tests (the default), and what a STALE answer may take
/// beyond it on a busy machine.
const SOFT_TIMEOUT: Duration = Duration::from_millis(250);
const SOFT_TIMEOUT_MARGIN: Duration = Duration::from_millis(750);

async fn assert_refused_at_once(app: &TestApp, cold: &str) {
    let (refused, took) = timed(app, cold).await;
    let retry_after = refused.headers().get("retry-after").cloned();
    let status = refused.status();
    let body = refused.text().await.unwrap();
    assert_eq!(status, 503, "{cold} while the database fails: {body}");
    assert!(retry_after.is_some(), "no Retry-After on {body}");
    assert!(
        took < REFUSAL_BOUND,
        "{cold} took {took:?} after the first failure"
    );
    eprintln!("outage: a cold read refused in {took:?}");
}

/// After the refusals: readiness reports the open breaker (its own ping takes up to 900 ms,
/// and a trial load may follow a second after the first failure, so it comes last).
async fn assert_readiness_reports_the_open_circuit(app: &TestApp) {
    let readiness: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(readiness["database"]["circuit"], "open", "{readiness}");
}

async fn timed(app: &TestApp, path: &str) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let response = app.get(path).await;
    (response, started.elapsed())
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_serves_hits_and_stale_entries_fails_fast_and_recovers_by_itself() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let (app, proxy, [expired, fresh, uncached]) = served_through_a_proxy(database).await;

    let first = app.get(&expired).await;
    assert_eq!(header(&first, "x-cache"), "MISS");
    let expired_body = first.bytes().await.unwrap();
    // Past the TTL with its largest jitter: the entry is now only good for stale-if-error.
    tokio::time::sleep(Duration::from_millis(TTL_SECONDS * 1_100 + 200)).await;
    assert_eq!(header(&app.get(&fresh).await, "x-cache"), "MISS");
    let warmed = Instant::now();

    proxy.cut().await;

    let (hit, took) = timed(&app, &fresh).await;
    assert!(
        warmed.elapsed() < Duration::from_millis(TTL_SECONDS * 900),
        "the machine was too slow for the HIT check to mean anything ({:?})",
        warmed.elapsed()
    );
    assert_eq!(
        (hit.status().as_u16(), header(&hit, "x-cache")),
        (200, "HIT")
    );
    assert!(took < Duration::from_millis(500), "a HIT took {took:?}");
    eprintln!("outage: HIT answered in {took:?}");

    let (ready, took) = timed(&app, "/health/ready").await;
    assert_eq!(ready.status(), 503);
    assert!(took < READINESS_BOUND, "/health/ready took {took:?}");
    let readiness: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(readiness["status"], "unavailable", "{readiness}");
    eprintln!("outage: /health/ready answered 503 in {took:?}");

    // The slow answers of the outage, side by side so the test waits for one timeout: a
    // STALE read, a 503 read and a write, which must fail as a whole and store nothing.
    let write = async {
        let started = Instant::now();
        let response = app
            .admin(reqwest::Method::PUT, "/api/stocks/OUTAGE")
            .json(&serde_json::json!({"name": "Outage Co", "exchange": "NYSE", "sector": "Energy"}))
            .send()
            .await
            .unwrap();
        (response, started.elapsed())
    };
    let (stale, failed, (written, write_took)) =
        tokio::join!(timed(&app, &expired), timed(&app, &uncached), write);
    let ((stale, stale_took), (failed, failed_took)) = (stale, failed);
    assert_eq!(written.status(), 503, "a write while the database is down");
    assert!(header(&written, "retry-after").parse::<u64>().unwrap() > 0);
    assert!(
        write_took < OUTAGE_ANSWER_BOUND,
        "the write took {write_took:?}"
    );
    eprintln!("outage: STALE answered in {stale_took:?}, 503 in {failed_took:?}");
    assert_eq!(
        (stale.status().as_u16(), header(&stale, "x-cache")),
        (200, "STALE")
    );
    assert!(header(&stale, "cache-control").contains("max-age=0"));
    let age: u64 = header(&stale, "age").parse().unwrap();
    assert!(age >= TTL_SECONDS, "Age {age} is younger than the TTL");
    assert!(
        stale_took < OUTAGE_ANSWER_BOUND,
        "STALE took {stale_took:?}"
    );
    assert_eq!(stale.bytes().await.unwrap(), expired_body);

    assert_eq!(failed.status(), 503);
    assert_eq!(header(&failed, "content-type"), "application/problem+json");
    assert!(header(&failed, "retry-after").parse::<u64>().unwrap() > 0);
    assert!(
        failed_took < OUTAGE_ANSWER_BOUND,
        "503 took {failed_took:?}"
    );
    let problem: serde_json::Value = failed.json().await.unwrap();
    assert_eq!(problem["status"], 503, "{problem}");

    // The database is known to be failing now: a cold read is refused at once.
    assert_refused_at_once(&app, "/api/stocks/ZZZZ").await;
    assert_readiness_reports_the_open_circuit(&app).await;

    proxy.restore().await;
    let restored = Instant::now();
    loop {
        if app.get("/health/ready").await.status() == 200 {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(5),
            "not ready again within 5 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "outage: ready again {:?} after the restore",
        restored.elapsed()
    );
    for path in [&expired, &uncached] {
        let response = app.get(path).await;
        assert_eq!(
            (response.status().as_u16(), header(&response, "x-cache")),
            (200, "MISS"),
            "{path} after the restore"
        );
    }
    assert_eq!(
        app.get("/api/stocks/OUTAGE").await.status(),
        404,
        "the write that failed during the outage left a stock behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_database_answers_stale_within_the_soft_timeout_and_refuses_cold_reads_fast()
{
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let (app, proxy, [expired, cold, _]) = served_through_a_proxy(database).await;
    let first = app.get(&expired).await;
    assert_eq!(header(&first, "x-cache"), "MISS");
    let expired_body = first.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(TTL_SECONDS * 1_100 + 200)).await;

    // Connections are accepted and nothing is answered.
    proxy.swallow();

    let (stale, took) = timed(&app, &expired).await;
    assert_eq!(
        (stale.status().as_u16(), header(&stale, "x-cache")),
        (200, "STALE")
    );
    assert!(
        took >= SOFT_TIMEOUT && took < SOFT_TIMEOUT + SOFT_TIMEOUT_MARGIN,
        "STALE took {took:?}, the soft timeout is {SOFT_TIMEOUT:?}"
    );
    assert_eq!(stale.bytes().await.unwrap(), expired_body);
    eprintln!("black hole: STALE answered in {took:?}");

    // The first cold read waits for the pool, fails, and opens the breaker; the next ones are
    // refused at once.
    let (failed, took) = timed(&app, &cold).await;
    assert_eq!(failed.status(), 503);
    assert!(took < OUTAGE_ANSWER_BOUND, "the first 503 took {took:?}");
    assert_refused_at_once(&app, &cold).await;
    assert_refused_at_once(&app, "/api/stocks/ZZZZ").await;
    assert_readiness_reports_the_open_circuit(&app).await;

    proxy.pass();
    let restored = Instant::now();
    loop {
        let response = app.get(&cold).await;
        if response.status() == 200 {
            assert_eq!(header(&response, "x-cache"), "MISS");
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(5),
            "cold reads still fail 5 s after the database answers again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "black hole: cold reads answered again {:?} after the database did",
        restored.elapsed()
    );
    let ready = app.json("/health/ready").await;
    assert_eq!(ready["database"]["circuit"], "closed", "{ready}");
}
