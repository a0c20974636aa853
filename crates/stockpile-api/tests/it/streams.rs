//! `GET /api/stream/quotes`: refusals before the stream, its headers, its first events, the
//! events of writes, heartbeats, the most streams, slow consumers and shutdown.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use stockpile_api::{app, ApiState, HttpMetrics, DEFAULT_STREAM_HEARTBEAT};
use stockpile_application::metrics::CacheMetrics;
use stockpile_application::ports::{MockStockRepository, StockRecord};
use stockpile_application::{QuoteStreams, ServiceSettings, StockService, Stockpile};

use stockpile_test_support::{parse_sse_event, take_sse_block};

use crate::support::{
    bearer, record, send, send_to, state, untouched, Admin, CacheMode, FakeCache,
};

const STREAM: &str = "/api/stream/quotes";

/// A repository whose stocks are `stocks` (shared, so a test can change them) and that takes
/// every upload and delete.
fn repository_of(stocks: Arc<Mutex<Vec<StockRecord>>>) -> MockStockRepository {
    let mut repository = MockStockRepository::new();
    let known = Arc::clone(&stocks);
    repository.expect_summaries().returning(move |tickers| {
        let known = known.lock().unwrap();
        Ok(known
            .iter()
            .filter(|s| tickers.contains(&s.ticker))
            .cloned()
            .collect())
    });
    repository
        .expect_upsert_bars()
        .returning(|_, bars| Ok(bars.len() as u64));
    repository.expect_delete_stock().returning(move |ticker| {
        stocks.lock().unwrap().retain(|s| &s.ticker != ticker);
        Ok(())
    });
    repository
}

fn service_of(stocks: &Arc<Mutex<Vec<StockRecord>>>, max_streams: usize) -> Arc<Stockpile> {
    Arc::new(Stockpile::new(
        Arc::new(repository_of(Arc::clone(stocks))),
        Arc::new(FakeCache::new(CacheMode::Working, "memory")),
        Arc::new(CacheMetrics::default()),
        ServiceSettings {
            max_streams,
            ..ServiceSettings::default()
        },
    ))
}

fn stocks(names: &[&str]) -> Arc<Mutex<Vec<StockRecord>>> {
    Arc::new(Mutex::new(names.iter().map(|n| record(n)).collect()))
}

async fn app_over(
    service: &Arc<Stockpile>,
    heartbeat: Duration,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    let state = ApiState {
        service: Arc::clone(service) as Arc<dyn StockService>,
        stream_heartbeat: heartbeat,
        ..state(untouched(), Admin::On)
    };
    test::init_service(app(state, Arc::new(HttpMetrics::default()))).await
}

/// An open stream's body, read event by event.
struct Events<B> {
    body: Pin<Box<B>>,
    buffer: Vec<u8>,
}

impl<B: MessageBody> Events<B> {
    fn of(response: ServiceResponse<B>) -> Self {
        Self {
            body: Box::pin(response.into_body()),
            buffer: Vec::new(),
        }
    }

    /// The next block (an event or a comment, up to its blank line); `None` when the body
    /// ended. Fails the test after five seconds without one.
    async fn next(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(block) = take_sse_block(&mut self.buffer) {
                    return Some(block);
                }
                let chunk = futures::future::poll_fn(|cx| self.body.as_mut().poll_next(cx)).await;
                match chunk {
                    Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                    Some(Err(_)) => panic!("the stream's body failed"),
                    None => return None,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event within 5 s; buffered {:?}", self.buffer))
    }

    /// The next block, which must be an event: (id, name, data).
    async fn event(&mut self) -> (u64, String, serde_json::Value) {
        let block = self.next().await.expect("an event, not the end");
        let event = parse_sse_event(&block).unwrap_or_else(|| panic!("not an event: {block:?}"));
        (
            event.id,
            event.name,
            serde_json::from_str(&event.data).unwrap(),
        )
    }
}

/// A stream request for `tickers`.
fn watch(tickers: &str) -> TestRequest {
    TestRequest::get().uri(&format!("{STREAM}?tickers={tickers}"))
}

fn upload(ticker: &str) -> TestRequest {
    TestRequest::post()
        .uri(&format!("/api/stocks/{ticker}/prices"))
        .insert_header(bearer())
        .insert_header(("content-type", "application/json"))
        .set_payload(
            r#"{"bars":[{"date":"2025-01-02","open":1,"high":2,"low":1,"close":2,"volume":5}]}"#,
        )
}

#[actix_web::test]
async fn a_bad_watchlist_is_refused_with_400_before_any_stream() {
    let hundred_and_one: Vec<String> = (0..101).map(|n| format!("T{n}")).collect();
    for query in [
        String::new(),
        "?tickers=".to_owned(),
        "?tickers=AAPL,,MSFT".to_owned(),
        "?tickers=AA%20PL".to_owned(),
        "?tickers=AAPL&tickers=MSFT".to_owned(),
        format!("?tickers={}", hundred_and_one.join(",")),
    ] {
        let reply = send(
            untouched(),
            Admin::Off,
            TestRequest::get().uri(&format!("{STREAM}{query}")),
        )
        .await;
        assert_eq!(reply.invalid_fields(), ["tickers"], "{query}");
    }
}

#[actix_web::test]
async fn a_stream_opens_with_one_quote_per_known_ticker_in_order_never_compressed() {
    let stocks = stocks(&["AAPL", "MSFT"]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    let request =
        watch("msft,ZZZZ,aapl").insert_header(("accept-encoding", "gzip, deflate, br, zstd"));
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    assert_eq!(headers.get("cache-control").unwrap(), "no-cache");
    assert_eq!(headers.get("x-accel-buffering").unwrap(), "no");
    assert!(headers.get("content-encoding").is_none(), "{headers:?}");
    let mut events = Events::of(response);
    let (id, name, msft) = events.event().await;
    assert_eq!(
        (id, name.as_str(), msft["ticker"].as_str()),
        (1, "quote", Some("MSFT"))
    );
    let (id, _, aapl) = events.event().await;
    assert_eq!((id, aapl["ticker"].as_str()), (2, Some("AAPL")));

    // The data are the batch's entries, byte for byte.
    let batch = send_to(
        &app,
        TestRequest::get().uri("/api/quotes?tickers=MSFT,AAPL"),
    )
    .await;
    assert_eq!(batch.header("x-cache"), "HIT");
    assert_eq!(batch.json()["items"], serde_json::json!([msft, aapl]));
    assert_eq!(service.stream_counters().open, 1);
    drop(events);
    assert_eq!(service.stream_counters().open, 0);
}

#[actix_web::test]
async fn writes_reach_the_stream_as_quote_and_removed_events_with_increasing_ids() {
    let stocks = stocks(&["AAPL"]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    let request = watch("AAPL,MSFT").insert_header(("last-event-id", "41"));
    let response = test::call_service(&app, request.to_request()).await;
    let mut events = Events::of(response);
    assert_eq!(
        events.event().await.0,
        1,
        "Last-Event-ID starts nothing over"
    );

    stocks.lock().unwrap().push(record("MSFT"));
    assert_eq!(send_to(&app, upload("MSFT")).await.status, 200);
    let (id, name, quote) = events.event().await;
    assert_eq!(
        (id, name.as_str(), quote["ticker"].as_str()),
        (2, "quote", Some("MSFT"))
    );

    let deleted = send_to(
        &app,
        TestRequest::delete()
            .uri("/api/stocks/AAPL")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(deleted.status, 204);
    let (id, name, removed) = events.event().await;
    assert_eq!((id, name.as_str()), (3, "removed"));
    assert_eq!(removed, serde_json::json!({"ticker": "AAPL"}));

    let metrics = send_to(&app, TestRequest::get().uri("/metrics")).await;
    let page = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(page.contains("stockpile_stream_clients 1\n"), "{page}");
    assert!(page.contains("stockpile_stream_events_total 3\n"), "{page}");
}

#[actix_web::test]
async fn head_answers_the_headers_of_a_stream_and_leaves_none_open() {
    let stocks = stocks(&["AAPL"]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    let head = send_to(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(&format!("{STREAM}?tickers=AAPL")),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), "text/event-stream");
    assert_eq!(head.header("cache-control"), "no-cache");
    assert!(head.body.is_empty());
    assert_eq!(service.stream_counters().open, 0);
    let bad = send_to(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(&format!("{STREAM}?tickers=")),
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[actix_web::test]
async fn a_quiet_stream_gets_keep_alive_comments() {
    let stocks = stocks(&[]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, Duration::from_millis(50)).await;
    let response = test::call_service(&app, watch("ZZZZ").to_request()).await;
    let mut events = Events::of(response);
    for _ in 0..2 {
        assert_eq!(events.next().await.as_deref(), Some(": keep-alive\n\n"));
    }
}

#[actix_web::test]
async fn past_the_most_streams_a_new_one_is_refused_with_503_and_retry_after() {
    let stocks = stocks(&["AAPL"]);
    let service = service_of(&stocks, 1);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    let request = || watch("AAPL");
    let open = test::call_service(&app, request().to_request()).await;
    assert_eq!(open.status(), 200);
    let refused = send_to(&app, request()).await;
    refused.problem(503);
    assert!(refused.header("retry-after").parse::<u64>().unwrap() > 0);
    drop(open);
    assert_eq!(
        test::call_service(&app, request().to_request())
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected_and_slows_no_write_or_stream() {
    let stocks = stocks(&["AAPL"]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    let open = || test::call_service(&app, watch("AAPL").to_request());
    let mut stalled = Events::of(open().await);
    let mut reading = Events::of(open().await);
    assert_eq!(reading.event().await.0, 1);
    let backlog = stockpile_application::live_quotes::STREAM_BACKLOG;
    for n in 0..backlog + 10 {
        let started = std::time::Instant::now();
        assert_eq!(send_to(&app, upload("AAPL")).await.status, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(reading.event().await.0, n as u64 + 2);
    }
    assert_eq!(
        service.stream_counters().open,
        1,
        "the stalled stream is gone"
    );
    // What the stalled stream held is still written, then it ends.
    let mut held = 0;
    while stalled.next().await.is_some() {
        held += 1;
    }
    assert_eq!(held, 1 + backlog);
}

#[actix_web::test]
async fn shutdown_ends_every_stream_cleanly_and_refuses_new_ones() {
    let stocks = stocks(&["AAPL"]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    let request = || watch("AAPL");
    let mut events = Events::of(test::call_service(&app, request().to_request()).await);
    assert_eq!(events.event().await.0, 1);
    service.end_quote_streams();
    assert_eq!(events.next().await, None);
    send_to(&app, request()).await.problem(503);
}

#[actix_web::test]
async fn a_reconnect_gets_the_first_events_again() {
    let stocks = stocks(&["AAPL"]);
    let service = service_of(&stocks, 10);
    let app = app_over(&service, DEFAULT_STREAM_HEARTBEAT).await;
    for _ in 0..2 {
        let request = watch("AAPL").insert_header(("last-event-id", "1"));
        let response = test::call_service(&app, request.to_request()).await;
        let (id, name, quote) = Events::of(response).event().await;
        assert_eq!(
            (id, name.as_str(), quote["ticker"].as_str()),
            (1, "quote", Some("AAPL"))
        );
    }
}
