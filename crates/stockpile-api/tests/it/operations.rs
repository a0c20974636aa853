//! Liveness, readiness and metrics.

use std::sync::Arc;

use actix_web::test::TestRequest;
use stockpile_application::cache_aside::CachePolicy;
use stockpile_application::cache_keys::KeyFamily;
use stockpile_application::metrics::{CacheEvent, CacheMetrics};
use stockpile_application::ports::{MockStockRepository, RepositoryError};

use crate::support::{
    detail_record, init, send, send_to, service_with, untouched, Admin, CacheMode, FakeCache,
};

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

#[actix_web::test]
async fn liveness_is_ok() {
    let reply = send(untouched(), Admin::Off, get("/health")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"status": "ok"}));
}

fn pinged(database_up: bool) -> stockpile_application::Stockpile {
    let mut repository = MockStockRepository::new();
    repository.expect_ping().returning(move || {
        if database_up {
            Ok(())
        } else {
            Err(RepositoryError::Unavailable("connection refused".into()))
        }
    });
    service_with(
        repository,
        Arc::new(FakeCache::new(CacheMode::Working, "memory")),
        Arc::new(CacheMetrics::default()),
        CachePolicy::default(),
    )
}

#[actix_web::test]
async fn readiness_is_200_when_the_database_answers_else_503_with_the_same_shape() {
    let reply = send(pinged(true), Admin::Off, get("/health/ready")).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["status"], "up");
    assert_eq!(body["cache"]["backend"], "memory");

    let reply = send(pinged(false), Admin::Off, get("/health/ready")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), "application/json");
    let body = reply.json();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"]["status"], "down");
}

#[actix_web::test]
async fn metrics_label_routes_by_template() {
    let metrics = Arc::new(CacheMetrics::default());
    metrics.record(KeyFamily::Leaderboard, CacheEvent::Load);
    let mut repository = MockStockRepository::new();
    repository
        .expect_detail()
        .returning(|t| Ok(Some(detail_record(t.as_str()))));
    let service = service_with(
        repository,
        Arc::new(FakeCache::new(CacheMode::Working, "memory")),
        Arc::clone(&metrics),
        CachePolicy::default(),
    );
    let app = init(service, Admin::Off).await;
    send_to(&app, get("/api/stocks/AAPL")).await;
    send_to(&app, get("/api/stocks/AAPL")).await;
    send_to(&app, get("/api/stocks/MSFT")).await;
    send_to(&app, get("/no/such/path")).await;
    send_to(&app, TestRequest::post().uri("/api/stocks")).await;
    let reply = send_to(&app, get("/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    let page = std::str::from_utf8(&reply.body).unwrap();

    let expected = [
        r#"stockpile_http_requests_total{method="GET",route="/api/stocks/{ticker}",status="200"} 3"#,
        r#"stockpile_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"stockpile_http_requests_total{method="POST",route="/api/stocks",status="405"} 1"#,
        r#"stockpile_http_request_duration_seconds_count{method="GET",route="/api/stocks/{ticker}"} 3"#,
        r#"stockpile_http_request_duration_seconds_bucket{method="GET",route="/api/stocks/{ticker}",le="+Inf"} 3"#,
        "# TYPE stockpile_http_request_duration_seconds histogram",
        r#"stockpile_cache_hits_total{family="detail"} 1"#,
        r#"stockpile_cache_misses_total{family="detail"} 2"#,
        r#"stockpile_cache_loads_total{family="leaderboard"} 1"#,
        r#"stockpile_cache_backend{backend="memory"} 1"#,
        r#"stockpile_cache_backend{backend="redis"} 0"#,
        r#"stockpile_cache_backend{backend="none"} 0"#,
    ];
    for line in expected {
        assert!(page.lines().any(|l| l == line), "{line} not in\n{page}");
    }
    assert!(!page.contains("AAPL"), "raw paths never become labels");
    for name in ["hits", "misses", "errors", "loads"] {
        for family in ["list", "detail", "history", "top", "leaderboard"] {
            let series = format!("stockpile_cache_{name}_total{{family=\"{family}\"}} ");
            assert!(page.contains(&series), "{series}");
        }
    }
}
