//! The OpenAPI document and Swagger UI.

use std::collections::BTreeSet;

use crate::support::untouched;
use actix_web::test::TestRequest;
use serde_json::Value;

use crate::support::{bearer, lists, send, service, Admin};

/// Every path of API.md.
const CONTRACT_PATHS: [&str; 18] = [
    "/api/stocks",
    "/api/stocks/",
    "/api/stocks/{ticker}",
    "/api/stocks/{ticker}/history",
    "/api/stocks/{ticker}/prices",
    "/api/stocks/top",
    "/api/stocks/leaderboard/top",
    "/api/quotes",
    "/api/stream/quotes",
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
async fn the_document_describes_the_live_quote_stream_as_server_sent_events() {
    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let operation = &doc["paths"]["/api/stream/quotes"]["get"];
    let responses = &operation["responses"];
    assert!(
        responses["200"]["content"]["text/event-stream"].is_object(),
        "{operation}"
    );
    for status in ["400", "503"] {
        assert!(
            responses[status]["content"]["application/problem+json"].is_object(),
            "{status}: {operation}"
        );
    }
    let parameters = operation["parameters"].as_array().unwrap();
    assert!(parameters
        .iter()
        .any(|p| p["name"] == "tickers" && p["in"] == "query" && p["required"] == true));
    assert!(doc["components"]["schemas"]["RemovedTicker"].is_object());
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

    // Its configuration points it at the document.
    let initializer = send(
        untouched(),
        Admin::Off,
        TestRequest::get().uri("/docs/swagger-initializer.js"),
    )
    .await;
    assert!(std::str::from_utf8(&initializer.body)
        .unwrap()
        .contains(&format!("\"url\": \"{}\"", stockpile_api::OPENAPI_PATH)));

    let reply = send(untouched(), Admin::Off, TestRequest::get().uri("/docs")).await;
    assert!(reply.status.is_redirection());
    assert_eq!(reply.header("location"), "/docs/");
}

/// `HEAD` is answered wherever `GET` is (API.md), the documentation included.
#[actix_web::test]
async fn the_documentation_answers_head_as_get() {
    for path in [
        "/docs/",
        "/docs/swagger-initializer.js",
        "/api-docs/openapi.json",
    ] {
        let get = send(untouched(), Admin::Off, TestRequest::get().uri(path)).await;
        let head = send(
            untouched(),
            Admin::Off,
            TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(path),
        )
        .await;
        assert_eq!(
            (get.status.as_u16(), head.status.as_u16()),
            (200, 200),
            "{path}"
        );
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
    }
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

/// The limits the document states are the ones the server applies: each is read from the
/// domain's constant here, and the server is checked against the same numbers.
#[actix_web::test]
async fn the_document_states_the_limits_the_server_applies() {
    use stockpile_domain::{Currency, StockProfile, Ticker, MAX_BARS_PER_UPLOAD};

    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let profile = &schemas["StockProfileBody"]["properties"];
    for (field, limit) in [
        ("name", StockProfile::NAME),
        ("exchange", StockProfile::EXCHANGE),
        ("sector", StockProfile::SECTOR),
        ("industry", StockProfile::INDUSTRY),
    ] {
        assert_eq!(profile[field]["maxLength"], limit.max, "{field}");
        let min = profile[field]["minLength"].as_u64().unwrap_or(0);
        assert_eq!(min, limit.min as u64, "{field}");
        let at = |chars: usize| {
            let text = "a".repeat(chars);
            let pick = |f: &str| {
                if f == field {
                    text.clone()
                } else {
                    "a".to_owned()
                }
            };
            StockProfile::new(
                pick("name"),
                pick("exchange"),
                pick("sector"),
                Some(pick("industry")),
                None,
                None,
            )
            .is_ok()
        };
        assert!(at(limit.max), "{field} at its maximum");
        assert!(!at(limit.max + 1), "{field} past its maximum");
        assert!(at(limit.min), "{field} at its minimum");
        if limit.min > 0 {
            assert!(!at(limit.min - 1), "{field} under its minimum");
        }
    }
    assert_eq!(profile["currency"]["pattern"], Currency::PATTERN);
    assert!(Currency::parse("EUR").is_ok() && Currency::parse("eur").is_err());

    for (path, method) in [
        ("/api/stocks/{ticker}", "put"),
        ("/api/stocks/{ticker}/prices", "post"),
        ("/api/cache/invalidate", "post"),
    ] {
        let too_large = &doc["paths"][path][method]["responses"]["413"]["description"];
        let mib = stockpile_api::MAX_BODY_BYTES / (1024 * 1024);
        assert_eq!(
            too_large,
            &format!("The body is over {mib} MiB."),
            "{method} {path}"
        );
    }

    let bars = &schemas["PriceUploadBody"]["properties"]["bars"];
    assert_eq!(bars["minItems"], 1);
    assert_eq!(bars["maxItems"], MAX_BARS_PER_UPLOAD);

    for (path, method) in [
        ("/api/stocks/{ticker}", "get"),
        ("/api/stocks/{ticker}", "put"),
        ("/api/stocks/{ticker}", "delete"),
        ("/api/stocks/{ticker}/history", "get"),
        ("/api/stocks/{ticker}/prices", "post"),
    ] {
        let parameters = doc["paths"][path][method]["parameters"].as_array().unwrap();
        let ticker = parameters.iter().find(|p| p["name"] == "ticker").unwrap();
        assert_eq!(ticker["in"], "path", "{method} {path}");
        assert_eq!(
            ticker["schema"]["pattern"],
            Ticker::PATTERN,
            "{method} {path}"
        );
        let not_found = &doc["paths"][path][method]["responses"]["404"]["description"];
        if method != "put" {
            assert_eq!(not_found, "No stock has the ticker.", "{method} {path}");
        }
    }
}

/// The server refuses an upload one bar over the document's `maxItems`, and takes one at it.
#[actix_web::test]
async fn an_upload_past_the_documented_bar_limit_is_refused() {
    use stockpile_domain::MAX_BARS_PER_UPLOAD;

    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let max = doc["components"]["schemas"]["PriceUploadBody"]["properties"]["bars"]["maxItems"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(max, MAX_BARS_PER_UPLOAD);
    let bar = r#"{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1}"#;
    let body = format!(r#"{{"bars":[{}]}}"#, vec![bar; max + 1].join(","));
    let request = |body: String| {
        TestRequest::post()
            .uri("/api/stocks/AAPL/prices")
            .insert_header(crate::support::bearer())
            .insert_header(("content-type", "application/json"))
            .set_payload(body)
    };
    let reply = send(untouched(), Admin::On, request(body)).await;
    assert_eq!(reply.invalid_fields(), ["bars"]);
}

/// The query parameter `name` of `GET path` in the document.
fn query_parameter<'d>(doc: &'d Value, path: &str, name: &str) -> &'d Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("GET {path} has no parameter {name}"))
}

/// The bounds the document gives the list's `page` and `q` are the ones the server applies,
/// tried on both sides.
#[actix_web::test]
async fn the_document_states_the_list_parameters_the_server_takes() {
    use stockpile_domain::{ListQuery, PageRequest, MAX_QUERY_LEN};

    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let page = &query_parameter(&doc, "/api/stocks", "page")["schema"];
    assert_eq!(
        (&page["minimum"], &page["format"]),
        (&1.into(), &"int64".into())
    );
    // The list echoes the page it was asked for, so its `page` has the same range.
    assert_eq!(
        &doc["components"]["schemas"]["StockList"]["properties"]["page"],
        page
    );
    let max_page = page["maximum"].as_u64().unwrap();
    let at_max = ListQuery {
        page: PageRequest {
            page: u32::try_from(max_page).unwrap(),
            ..PageRequest::default()
        },
        ..ListQuery::default()
    };
    let get = |uri: String| TestRequest::get().uri(&uri);
    let reply = send(
        service(lists(at_max, 1)),
        Admin::Off,
        get(format!("/api/stocks?page={max_page}")),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["page"], max_page);
    let reply = send(
        untouched(),
        Admin::Off,
        get(format!("/api/stocks?page={}", max_page + 1)),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["page"]);

    // `tickers`: the ticker's own pattern, repeated after commas up to the batch's limit (the
    // parser's unit tests take every list the pattern allows).
    let tickers = &query_parameter(&doc, "/api/quotes", "tickers")["schema"]["pattern"];
    let one = stockpile_domain::Ticker::PATTERN
        .trim_start_matches('^')
        .trim_end_matches('$');
    let batch = stockpile_application::MAX_QUOTE_TICKERS - 1;
    assert_eq!(tickers, &format!("^{one}(,{one}){{0,{batch}}}$"));

    // `q` counts the text searched: lower-cased, `İ` is two characters.
    let q = query_parameter(&doc, "/api/stocks", "q");
    let max_len = q["schema"]["maxLength"].as_u64().unwrap() as usize;
    assert_eq!(max_len, MAX_QUERY_LEN);
    assert!(
        q["description"].as_str().unwrap().contains("lower-cased"),
        "{q}"
    );
    let dotted_capital = "%C4%B0";
    let reply = send(
        untouched(),
        Admin::Off,
        get(format!("/api/stocks?q={}", dotted_capital.repeat(max_len))),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["q"]);
    let half = ListQuery {
        search: Some("i\u{307}".repeat(max_len / 2)),
        ..ListQuery::default()
    };
    let reply = send(
        service(lists(half, 1)),
        Admin::Off,
        get(format!(
            "/api/stocks?q={}",
            dotted_capital.repeat(max_len / 2)
        )),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// The history span, the prices' bounds and the integer `market_cap` the document states are
/// the ones the server applies.
#[actix_web::test]
async fn the_document_states_the_history_span_and_the_price_bounds() {
    use stockpile_domain::{Price, PriceField, MAX_HISTORY_SPAN_DAYS};

    let doc = serde_json::to_value(stockpile_api::openapi()).unwrap();
    let history = "/api/stocks/{ticker}/history";
    for name in ["from", "to"] {
        let description = query_parameter(&doc, history, name)["description"]
            .as_str()
            .unwrap();
        assert!(
            description.contains(&format!("over {MAX_HISTORY_SPAN_DAYS} days")),
            "{name}: {description}"
        );
    }
    let too_long = format!(
        "/api/stocks/AAPL/history?from=2000-01-01&to={}",
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()
            + chrono::Days::new(MAX_HISTORY_SPAN_DAYS as u64 + 1)
    );
    let reply = send(untouched(), Admin::Off, TestRequest::get().uri(&too_long)).await;
    assert_eq!(reply.invalid_fields(), ["to"]);

    let schemas = &doc["components"]["schemas"];
    let bar = &schemas["PriceBarBody"]["properties"];
    let upload = |price: f64| {
        let body = serde_json::json!({"bars": [{"date": "2025-01-02", "open": price,
            "high": price, "low": price, "close": price, "volume": 1}]});
        TestRequest::post()
            .uri("/api/stocks/AAPL/prices")
            .insert_header(bearer())
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string())
    };
    let every_price: Vec<String> = PriceField::ALL
        .iter()
        .map(|field| format!("bars[0].{}", field.as_str()))
        .collect();
    for field in PriceField::ALL {
        let price = &bar[field.as_str()];
        let above = price["exclusiveMinimum"].as_f64().unwrap();
        let max = price["maximum"].as_f64().unwrap();
        assert_eq!((above, max), (Price::ROUNDS_TO_ZERO, Price::MAX as f64));
        assert!(Price::from_f64(above * 1.2).is_ok() && Price::from_f64(max).is_ok());
        for refused in [above, max + 1.0] {
            let reply = send(untouched(), Admin::On, upload(refused)).await;
            assert_eq!(reply.invalid_fields(), every_price, "{refused}");
        }
    }

    for market_cap in [
        &schemas["StockProfileBody"]["properties"]["market_cap"],
        &schemas["StockSummary"]["properties"]["market_cap"],
    ] {
        assert_eq!(market_cap["type"], serde_json::json!(["integer", "null"]));
        assert_eq!(market_cap["format"], "int64");
    }
    // JSON Schema counts `11137.0` as an integer; the server does not, and the document says so.
    for integer in [
        &schemas["StockProfileBody"]["properties"]["market_cap"],
        &bar["volume"],
    ] {
        assert_eq!(integer["minimum"], 0);
        assert!(
            integer["description"].as_str().unwrap().contains("`100.0`"),
            "{integer}"
        );
    }
    let profile = r#"{"name":"Apple","exchange":"NASDAQ","sector":"Tech","market_cap":11137.0}"#;
    let reply = send(
        untouched(),
        Admin::On,
        TestRequest::put()
            .uri("/api/stocks/AAPL")
            .insert_header(bearer())
            .insert_header(("content-type", "application/json"))
            .set_payload(profile),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["market_cap"]);
}
