//! Answers actix itself would give are problem+json too.

use crate::support::untouched;
use actix_web::test::TestRequest;

use crate::support::{send, Admin};

#[actix_web::test]
async fn unmatched_paths_are_404_problems() {
    for uri in [
        "/nope",
        "/api/stocks/AAPL/news",
        "/health/",
        "/docs/no-such-asset.js",
    ] {
        let reply = send(untouched(), Admin::Off, TestRequest::get().uri(uri)).await;
        reply.problem(404);
        assert!(reply.headers.contains_key("x-request-id"));
    }
}

#[actix_web::test]
async fn wrong_methods_are_405_problems() {
    let cases = [
        (TestRequest::post().uri("/api/stocks"), "GET, HEAD"),
        (
            TestRequest::patch().uri("/api/stocks/AAPL"),
            "GET, HEAD, PUT, DELETE",
        ),
        (
            TestRequest::post().uri("/api/stocks/top"),
            "GET, HEAD, PUT, DELETE",
        ),
        (TestRequest::get().uri("/api/stocks/AAPL/prices"), "POST"),
        (TestRequest::get().uri("/api/cache"), "DELETE"),
        (TestRequest::delete().uri("/health"), "GET, HEAD"),
    ];
    for (req, allow) in cases {
        let reply = send(untouched(), Admin::Off, req).await;
        reply.problem(405);
        assert_eq!(reply.header("allow"), allow);
    }
}

#[actix_web::test]
async fn oversized_targets_and_headers_are_refused_before_routing() {
    let limit = stockpile_api::MAX_TARGET_BYTES;
    // Just at the limit is taken (the unknown parameter is ignored, as API.md says) ...
    let at_limit = format!("/health?pad={}", "a".repeat(limit - "/health?pad=".len()));
    let reply = send(untouched(), Admin::Off, TestRequest::get().uri(&at_limit)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // ... one byte more is a 414, on any path, and never reaches the service.
    let over = format!("/api/stocks?q={}", "a".repeat(limit));
    let problem = send(untouched(), Admin::Off, TestRequest::get().uri(&over))
        .await
        .problem(414);
    assert!(
        problem["detail"].as_str().unwrap().contains("at most 4096"),
        "{problem}"
    );

    let big_header = "v".repeat(stockpile_api::MAX_HEADER_BYTES);
    let reply = send(
        untouched(),
        Admin::Off,
        TestRequest::get()
            .uri("/health")
            .insert_header(("x-padding", big_header)),
    )
    .await;
    reply.problem(431);
    assert!(reply.headers.contains_key("x-request-id"));
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
}
