//! The OpenAPI document and Swagger UI.

use std::collections::BTreeSet;

use crate::support::untouched;
use actix_web::test::TestRequest;

use crate::support::{send, Admin};

/// Every path of API.md.
const CONTRACT_PATHS: [&str; 17] = [
    "/api/stocks",
    "/api/stocks/",
    "/api/stocks/{ticker}",
    "/api/stocks/{ticker}/history",
    "/api/stocks/{ticker}/prices",
    "/api/stocks/top",
    "/api/stocks/leaderboard/top",
    "/api/quotes",
    "/api/cache/status",
    "/api/cache/invalidate",
    "/api/cache/key/{key}",
    "/api/cache",
    "/health",
    "/health/ready",
    "/metrics",
    "/api-docs/openapi.json",
    "/docs/",
];

#[actix_web::test]
async fn the_document_lists_exactly_the_contract_paths() {
    let reply = send(
        untouched(),
        Admin::Off,
        TestRequest::get().uri("/api-docs/openapi.json"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").starts_with("application/json"));
    let doc = reply.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let served: BTreeSet<_> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let expected: BTreeSet<_> = CONTRACT_PATHS.iter().map(|p| p.to_string()).collect();
    assert_eq!(served, expected);
    assert_eq!(doc, serde_json::to_value(stockpile_api::openapi()).unwrap());
}

#[actix_web::test]
async fn the_document_describes_methods_parameters_bodies_and_errors() {
    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/stocks/{ticker}", "get"),
        ("/api/stocks/{ticker}", "put"),
        ("/api/stocks/{ticker}", "delete"),
        ("/api/stocks/{ticker}/prices", "post"),
        ("/api/quotes", "get"),
        ("/api/cache/invalidate", "post"),
        ("/api/cache/key/{key}", "delete"),
        ("/api/cache", "delete"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    let list_params = paths["/api/stocks"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let sort = list_params.iter().find(|p| p["name"] == "sort").unwrap();
    assert_eq!(
        sort["schema"]["enum"],
        serde_json::json!([
            "ticker",
            "name",
            "market_cap",
            "price",
            "change_percent",
            "volume"
        ])
    );
    let tickers = &paths["/api/quotes"]["get"]["parameters"][0];
    assert_eq!(
        (&tickers["name"], &tickers["required"]),
        (&"tickers".into(), &true.into())
    );
    assert!(
        paths["/api/quotes"]["get"]["responses"]["400"]["content"]["application/problem+json"]
            .is_object()
    );
    assert!(
        paths["/api/stocks/{ticker}/prices"]["post"]["requestBody"]["content"]["application/json"]
            .is_object()
    );
    assert!(
        paths["/api/stocks/{ticker}"]["get"]["responses"]["404"]["content"]
            ["application/problem+json"]
            .is_object()
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Problem",
        "FieldError",
        "StockDetail",
        "StockList",
        "PriceHistory",
        "Leaderboard",
        "QuoteBatch",
        "Readiness",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}

#[actix_web::test]
async fn swagger_ui_is_served_locally() {
    let reply = send(untouched(), Admin::Off, TestRequest::get().uri("/docs/")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").starts_with("text/html"));
    assert!(std::str::from_utf8(&reply.body)
        .unwrap()
        .contains("swagger"));

    let reply = send(untouched(), Admin::Off, TestRequest::get().uri("/docs")).await;
    assert!(reply.status.is_redirection());
    assert_eq!(reply.header("location"), "/docs/");
}

/// `docs/openapi.json` is what the server serves: `cargo xtask openapi` rewrites it.
#[test]
fn the_committed_document_is_the_served_document() {
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json"))
            .expect("docs/openapi.json is JSON");
    let served = serde_json::to_value(stockpile_api::openapi()).expect("the document serialises");
    assert!(
        committed == served,
        "docs/openapi.json is out of date: run `cargo xtask openapi` and commit it"
    );
}
