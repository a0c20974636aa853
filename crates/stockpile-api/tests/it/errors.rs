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
        (TestRequest::post().uri("/api/stocks"), "GET"),
        (
            TestRequest::patch().uri("/api/stocks/AAPL"),
            "GET, PUT, DELETE",
        ),
        (
            TestRequest::post().uri("/api/stocks/top"),
            "GET, PUT, DELETE",
        ),
        (TestRequest::get().uri("/api/stocks/AAPL/prices"), "POST"),
        (TestRequest::get().uri("/api/cache"), "DELETE"),
        (TestRequest::delete().uri("/health"), "GET"),
    ];
    for (req, allow) in cases {
        let reply = send(untouched(), Admin::Off, req).await;
        reply.problem(405);
        assert_eq!(reply.header("allow"), allow);
    }
}
