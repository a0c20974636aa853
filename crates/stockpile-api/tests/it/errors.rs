//! Answers actix itself would give are problem+json too.

use std::collections::BTreeSet;

use crate::support::untouched;
use actix_web::http::Method;
use actix_web::test::TestRequest;

use crate::support::{init, send, send_to, Admin};

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
        // A write there is refused as a ticker (400), but never taken: not in `Allow`.
        (TestRequest::post().uri("/api/stocks/top"), "GET, HEAD"),
        (
            TestRequest::post().uri("/api/stocks/leaderboard/top"),
            "GET, HEAD",
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

/// Every path of the document answers a method it does not take (`TRACE` included) with 405,
/// and its `Allow` lists exactly the methods the document gives it, with HEAD beside GET.
#[actix_web::test]
async fn every_documented_path_refuses_other_methods_with_its_documented_allow() {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let app = init(untouched(), Admin::Off).await;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let mut documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|key| METHODS.contains(&key.as_str()))
            .map(|method| method.to_uppercase())
            .collect();
        if documented.contains("GET") {
            documented.insert("HEAD".to_owned());
        }
        let path = template
            .replace("{ticker}", "AAPL")
            .replace("{key}", "stocks:detail:AAPL");
        for method in [Method::TRACE, Method::PATCH, Method::OPTIONS] {
            let request = TestRequest::default().method(method.clone()).uri(&path);
            let reply = send_to(&app, request).await;
            reply.problem(405);
            let allowed: BTreeSet<String> = reply
                .header("allow")
                .split(", ")
                .map(str::to_owned)
                .collect();
            assert_eq!(allowed, documented, "{method} {path}");
        }
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
