//! The admin writes: body handling, domain conversion and answers.

use actix_web::test::TestRequest;
use mockall::predicate::eq;
use stockpile_application::ports::{MockStockRepository, RepositoryError, UpsertOutcome};
use stockpile_domain::Ticker;

use crate::support::{bearer, date, detail_record, send, service, untouched, Admin};

const PROFILE: &str = r#"{"name":"Apple Inc.","exchange":"NASDAQ","sector":"Information Technology","industry":"Consumer Electronics","market_cap":3000000000000}"#;

fn put(uri: &str, body: &str) -> TestRequest {
    TestRequest::put()
        .uri(uri)
        .insert_header(bearer())
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

fn post(uri: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(bearer())
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

fn bars_body(bars: &[&str]) -> String {
    format!(r#"{{"bars":[{}]}}"#, bars.join(","))
}

const BAR: &str =
    r#"{"date":"2025-01-02","open":10.0,"high":12.5,"low":9.5,"close":11.25,"volume":1000}"#;

#[actix_web::test]
async fn put_creates_with_201_and_updates_with_200() {
    for (created, status) in [(true, 201), (false, 200)] {
        let mut repository = MockStockRepository::new();
        repository
            .expect_upsert_stock()
            .withf(|ticker, profile| {
                ticker.as_str() == "AAPL"
                    && profile.name() == "Apple Inc."
                    && profile.currency().as_str() == "USD"
                    && profile.market_cap() == Some(3_000_000_000_000)
            })
            .times(1)
            .returning(move |_, _| {
                Ok(if created {
                    UpsertOutcome::Created
                } else {
                    UpsertOutcome::Updated
                })
            });
        repository
            .expect_detail()
            .times(1)
            .returning(|t| Ok(Some(detail_record(t.as_str()))));
        let reply = send(
            service(repository),
            Admin::On,
            put("/api/stocks/aapl", PROFILE),
        )
        .await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.header("content-type"), "application/json");
        let body = reply.json();
        assert_eq!(body["ticker"], "AAPL");
        assert!(body.get("updated_at").is_some());
        if created {
            assert_eq!(reply.header("location"), "/api/stocks/AAPL");
        }
    }
}

#[actix_web::test]
async fn reserved_and_malformed_tickers_cannot_be_written() {
    for uri in [
        "/api/stocks/TOP",
        "/api/stocks/top",
        "/api/stocks/Top",
        "/api/stocks/A_B",
    ] {
        let reply = send(untouched(), Admin::On, put(uri, PROFILE)).await;
        assert_eq!(reply.invalid_fields(), ["ticker"], "PUT {uri}");
    }
    let reply = send(
        untouched(),
        Admin::On,
        post("/api/stocks/top/prices", &bars_body(&[BAR])),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["ticker"]);
    let reply = send(
        untouched(),
        Admin::On,
        TestRequest::delete()
            .uri("/api/stocks/top")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["ticker"]);
}

#[actix_web::test]
async fn invalid_profile_fields_are_each_named() {
    let body =
        r#"{"name":"","exchange":"NASDAQ","sector":"Tech","currency":"usd","market_cap":-1}"#;
    let reply = send(untouched(), Admin::On, put("/api/stocks/AAPL", body)).await;
    assert_eq!(reply.invalid_fields(), ["name", "currency", "market_cap"]);
}

/// Found by schemathesis: PostgreSQL cannot store a NUL in text and the write failed as a 500;
/// the profile is refused before it reaches the service, on every backend alike.
#[actix_web::test]
async fn a_nul_in_a_profile_field_is_400_and_never_reaches_the_service() {
    for field in ["name", "exchange", "sector", "industry"] {
        let mut profile: serde_json::Value = serde_json::from_str(PROFILE).unwrap();
        profile[field] = "Apple\u{0}Inc.".into();
        let body = profile.to_string();
        assert!(body.contains("\\u0000"), "{body}");
        let reply = send(untouched(), Admin::On, put("/api/stocks/AAPL", &body)).await;
        assert_eq!(reply.invalid_fields(), [field], "{body}");
    }
}

#[actix_web::test]
async fn bodies_that_are_not_the_expected_json_are_400() {
    let cases = [
        ("malformed", r#"{"name": "#.to_owned()),
        ("unknown field", PROFILE.replace('}', r#","ceo":"Tim"}"#)),
        ("missing field", r#"{"name":"Apple"}"#.to_owned()),
        (
            "market_cap as a float",
            PROFILE.replace("3000000000000", "3e12"),
        ),
        ("not an object", "[]".to_owned()),
        ("empty", String::new()),
    ];
    for (what, body) in cases {
        let reply = send(untouched(), Admin::On, put("/api/stocks/AAPL", &body)).await;
        reply.problem(400);
        assert!(
            !reply.json()["detail"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }
}

/// Issue 14: a missing field, an unknown field, a field given twice and a value of the wrong
/// JSON type are each an entry of `errors` naming the field, in every body; malformed JSON
/// stays a plain 400 without `errors`.
#[actix_web::test]
async fn body_errors_name_their_field() {
    let cases: [(&str, TestRequest, &[&str]); 8] = [
        (
            "missing",
            put("/api/stocks/AAPL", r#"{"exchange":"X","sector":"Y"}"#),
            &["name"],
        ),
        (
            "unknown",
            put(
                "/api/stocks/AAPL",
                r#"{"name": "x", "exchange": "X", "sector": "Y", "foo": 1}"#,
            ),
            &["foo"],
        ),
        (
            "wrong type",
            put(
                "/api/stocks/AAPL",
                &PROFILE.replace("3000000000000", "3e12"),
            ),
            &["market_cap"],
        ),
        (
            "given twice",
            put(
                "/api/stocks/AAPL",
                &PROFILE.replace("\"market_cap\"", "\"name\":\"Apple\",\"market_cap\""),
            ),
            &["name"],
        ),
        (
            "a bar's volume as a float",
            post(
                "/api/stocks/AAPL/prices",
                &bars_body(&[BAR, BAR, BAR, &BAR.replace("1000}", "1e3}")]),
            ),
            &["bars[3].volume"],
        ),
        (
            "a bar's field missing and another unknown",
            post(
                "/api/stocks/AAPL/prices",
                &bars_body(&[&BAR.replace("\"date\":\"2025-01-02\",", "\"day\":1,")]),
            ),
            &["bars[0].date", "bars[0].day"],
        ),
        (
            "the bars missing",
            post("/api/stocks/AAPL/prices", r#"{"bar":[]}"#),
            &["bars", "bar"],
        ),
        (
            "the bars not an array",
            post("/api/stocks/AAPL/prices", r#"{"bars":"none"}"#),
            &["bars"],
        ),
    ];
    for (what, request, fields) in cases {
        let reply = send(untouched(), Admin::On, request).await;
        assert_eq!(reply.invalid_fields(), fields, "{what}");
        let problem = reply.json();
        for error in problem["errors"].as_array().unwrap() {
            assert!(
                !error["message"].as_str().unwrap().is_empty(),
                "{what}: {problem}"
            );
        }
    }
    for body in [r#"{"name": "#, "", "[]", "{}}"] {
        let reply = send(untouched(), Admin::On, put("/api/stocks/AAPL", body)).await;
        let problem = reply.problem(400);
        assert!(problem.get("errors").is_none(), "{body:?}: {problem}");
    }
}

#[actix_web::test]
async fn uploads_convert_every_bar() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_upsert_bars()
        .withf(|ticker, bars| {
            ticker == &Ticker::parse("MSFT").unwrap()
                && bars.len() == 2
                && bars[0].date() == date(2025, 1, 2)
                && bars[0].close().units() == 112_500
                // 1.00005 rounds half-to-even to 1.0000.
                && bars[1].open().units() == 10_000
                && bars[1].volume() == 0
        })
        .times(1)
        .returning(|_, bars| Ok(bars.len() as u64));
    let stockpile = service(repository);
    let second = r#"{"date":"2025-01-03","open":1.00005,"high":2,"low":1,"close":1.5,"volume":0}"#;
    let reply = send(
        stockpile,
        Admin::On,
        post("/api/stocks/msft/prices", &bars_body(&[BAR, second])),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"upserted": 2}));
}

#[actix_web::test]
async fn bad_bars_are_400_and_never_reach_the_service() {
    let volume_exp = BAR.replace("1000}", "1e3}");
    let volume_float = BAR.replace("1000}", "100.0}");
    let volume_string = BAR.replace("1000}", "\"1000\"}");
    let zero_price = BAR.replace("\"open\":10.0", "\"open\":0.00004");
    let inverted = BAR.replace("\"low\":9.5", "\"low\":11.0");
    let bad_date = BAR.replace("2025-01-02", "2025-01-32");
    let extra = BAR.replace("}", ",\"adj_close\":11}");
    let cases: [(&str, String); 7] = [
        ("volume 1e3", bars_body(&[BAR, &volume_exp])),
        ("volume 100.0", bars_body(&[&volume_float])),
        ("volume as text", bars_body(&[&volume_string])),
        ("a price rounding to 0", bars_body(&[&zero_price])),
        ("low above open", bars_body(&[&inverted])),
        ("an impossible date", bars_body(&[&bad_date])),
        ("an unknown bar field", bars_body(&[&extra])),
    ];
    for (what, body) in cases {
        let reply = send(
            untouched(),
            Admin::On,
            post("/api/stocks/AAPL/prices", &body),
        )
        .await;
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        reply.problem(400);
    }
    let reply = send(
        untouched(),
        Admin::On,
        post(
            "/api/stocks/AAPL/prices",
            &bars_body(&[BAR, &zero_price, &inverted]),
        ),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["bars[1].open", "bars[2].low"]);
    let reply = send(
        untouched(),
        Admin::On,
        post("/api/stocks/AAPL/prices", r#"{"bars":[],"source":"x"}"#),
    )
    .await;
    reply.problem(400);
}

#[actix_web::test]
async fn an_upload_for_an_unknown_ticker_is_404() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_upsert_bars()
        .times(1)
        .returning(|t, _| Err(RepositoryError::NotFound(t.clone())));
    let reply = send(
        service(repository),
        Admin::On,
        post("/api/stocks/NOPE/prices", &bars_body(&[BAR])),
    )
    .await;
    reply.problem(404);
}

#[actix_web::test]
async fn the_service_rules_on_batches_come_back_as_400() {
    // Duplicate and future dates are the use case's rules, checked before the repository.
    let future = BAR.replace("2025-01-02", "2999-01-02");
    let cases: [(&[&str], &[&str]); 3] = [
        (&[BAR, BAR], &["bars[1].date"]),
        (&[&future], &["bars[0].date"]),
        (&[], &["bars"]),
    ];
    for (bars, fields) in cases {
        let reply = send(
            untouched(),
            Admin::On,
            post("/api/stocks/AAPL/prices", &bars_body(bars)),
        )
        .await;
        assert_eq!(reply.invalid_fields(), fields);
    }
}

#[actix_web::test]
async fn bodies_must_be_json_and_at_most_one_mebibyte() {
    let no_type = TestRequest::put()
        .uri("/api/stocks/AAPL")
        .insert_header(bearer())
        .set_payload(PROFILE);
    let reply = send(untouched(), Admin::On, no_type).await;
    reply.problem(415);
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
    ] {
        let wrong_type = TestRequest::put()
            .uri("/api/stocks/AAPL")
            .insert_header(bearer())
            .insert_header(("content-type", content_type))
            .set_payload(PROFILE);
        let reply = send(untouched(), Admin::On, wrong_type).await;
        reply.problem(415);
    }

    let mut repository = MockStockRepository::new();
    repository
        .expect_upsert_stock()
        .times(1)
        .returning(|_, _| Ok(UpsertOutcome::Updated));
    repository
        .expect_detail()
        .returning(|t| Ok(Some(detail_record(t.as_str()))));
    let stockpile = service(repository);
    let with_charset = put("/api/stocks/AAPL", PROFILE)
        .insert_header(("content-type", "application/json; charset=utf-8"));
    assert_eq!(send(stockpile, Admin::On, with_charset).await.status, 200);

    let huge = format!(
        r#"{{"name":"{}"}}"#,
        "x".repeat(stockpile_api::MAX_BODY_BYTES)
    );
    let reply = send(untouched(), Admin::On, put("/api/stocks/AAPL", &huge)).await;
    reply.problem(413);
}

#[actix_web::test]
async fn delete_answers_204_or_404() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_delete_stock()
        .with(eq(Ticker::parse("AAPL").unwrap()))
        .times(1)
        .returning(|_| Ok(()));
    let stockpile = service(repository);
    let reply = send(
        stockpile,
        Admin::On,
        TestRequest::delete()
            .uri("/api/stocks/aapl")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());

    let mut repository = MockStockRepository::new();
    repository
        .expect_delete_stock()
        .times(1)
        .returning(|t| Err(RepositoryError::NotFound(t.clone())));
    let stockpile = service(repository);
    let reply = send(
        stockpile,
        Admin::On,
        TestRequest::delete()
            .uri("/api/stocks/NOPE")
            .insert_header(bearer()),
    )
    .await;
    reply.problem(404);
}
