//! The admin authentication matrix of API.md, over every admin endpoint.

use crate::support::untouched;
use actix_web::http::Method;
use actix_web::test::TestRequest;

use crate::support::{send, Admin, TOKEN};

/// Every admin endpoint, with a body it would accept.
const ENDPOINTS: [(Method, &str, &str); 6] = [
    (
        Method::PUT,
        "/api/stocks/AAPL",
        r#"{"name":"A","exchange":"X","sector":"Y"}"#,
    ),
    (
        Method::POST,
        "/api/stocks/AAPL/prices",
        r#"{"bars":[{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1}]}"#,
    ),
    (Method::DELETE, "/api/stocks/AAPL", ""),
    (
        Method::POST,
        "/api/cache/invalidate",
        r#"{"pattern":"stocks:*"}"#,
    ),
    (Method::DELETE, "/api/cache/key/stocks:detail:AAPL", ""),
    (Method::DELETE, "/api/cache", ""),
];

fn request(method: &Method, uri: &str, body: &str, authorization: Option<&str>) -> TestRequest {
    let mut req = TestRequest::default()
        .method(method.clone())
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned());
    if let Some(value) = authorization {
        req = req.insert_header(("authorization", value));
    }
    req
}

/// Sends `authorization` to every admin endpoint and expects `status`; the service is never
/// reached (the mock has no expectations).
async fn check(admin: Admin, authorization: Option<&str>, status: u16) {
    for (method, uri, body) in &ENDPOINTS {
        let reply = send(
            untouched(),
            admin,
            request(method, uri, body, authorization),
        )
        .await;
        let problem = reply.problem(status);
        let challenge = reply.headers.get("www-authenticate");
        if status == 401 {
            assert_eq!(challenge.unwrap(), "Bearer", "{method} {uri}");
        } else {
            assert!(challenge.is_none(), "{method} {uri}");
        }
        assert!(
            !problem.to_string().contains(TOKEN),
            "the token never appears in an answer"
        );
    }
}

#[actix_web::test]
async fn without_a_configured_token_every_admin_request_is_403() {
    let right = format!("Bearer {TOKEN}");
    for authorization in [
        None,
        Some(right.as_str()),
        Some("Basic x"),
        Some("Bearer a b"),
    ] {
        check(Admin::Off, authorization, 403).await;
    }
}

#[actix_web::test]
async fn a_missing_or_malformed_header_is_401() {
    let lower = format!("bearer  {TOKEN}");
    for authorization in [
        None,
        Some("Basic x"),
        Some("Bearer a b"),
        Some("Bearer"),
        Some("Bearer "),
        Some(TOKEN),
        Some(lower.as_str()),
    ] {
        check(Admin::On, authorization, 401).await;
    }
}

#[actix_web::test]
async fn a_wrong_token_is_403() {
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    for authorization in ["Bearer wrong", prefix.as_str(), longer.as_str()] {
        check(Admin::On, Some(authorization), 403).await;
    }
}

#[actix_web::test]
async fn authentication_comes_before_the_body_is_judged() {
    let huge = "x".repeat(stockpile_api::MAX_BODY_BYTES + 1);
    for (admin, authorization, status) in [
        (Admin::On, None, 401),
        (Admin::On, Some("Bearer wrong"), 403),
        (Admin::Off, None, 403),
    ] {
        for content_type in ["application/json", "text/plain"] {
            let mut req = TestRequest::put()
                .uri("/api/stocks/AAPL")
                .insert_header(("content-type", content_type))
                .set_payload(huge.clone());
            if let Some(value) = authorization {
                req = req.insert_header(("authorization", value));
            }
            let reply = send(untouched(), admin, req).await;
            reply.problem(status);
        }
        // The reserved ticker is judged after authentication too.
        let mut req = TestRequest::put().uri("/api/stocks/TOP");
        if let Some(value) = authorization {
            req = req.insert_header(("authorization", value));
        }
        send(untouched(), admin, req).await.problem(status);
    }
}
