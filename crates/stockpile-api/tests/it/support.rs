//! Building the app around the real `Stockpile` service, sending requests, reading answers.
//!
//! The service runs over a `MockStockRepository` and the shared [`FakeCache`]. stockpile-application
//! does not export its `MockStockService`, and `StockService` cannot be implemented outside
//! that crate because `HistoryRequest` is not exported either; going through the real service
//! also checks the handlers against the real cache-aside behaviour. A repository mock without
//! an expectation for a method panics when that method is called, failing the test:
//! [`untouched`] is how a test says "this input never reaches the use cases".

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use stockpile_api::{
    app, AdminToken, ApiState, ClientLimits, HttpMetrics, DEFAULT_STREAM_HEARTBEAT,
};
use stockpile_application::cache_aside::CachePolicy;
use stockpile_application::metrics::CacheMetrics;
use stockpile_application::ports::{
    DetailRecord, MockCache, MockStockRepository, StockPage, StockRecord,
};
use stockpile_application::{ServiceSettings, StockService, Stockpile};
use stockpile_domain::{ListQuery, Quote, Ticker};
use stockpile_test_support::bar_of_units;
pub use stockpile_test_support::{CacheMode, FakeCache};

/// The admin token configured by [`Admin::On`].
pub const TOKEN: &str = "integration-test-admin-token-0123456789";

/// Whether the app has an admin token configured.
#[derive(Debug, Clone, Copy)]
pub enum Admin {
    On,
    Off,
}

/// The real service over `repository`, a working fake cache and the default policy.
pub fn service(repository: MockStockRepository) -> Stockpile {
    service_with(
        repository,
        Arc::new(FakeCache::new(CacheMode::Working, "memory")),
        Arc::new(CacheMetrics::default()),
        CachePolicy::default(),
    )
}

pub fn service_with(
    repository: MockStockRepository,
    cache: Arc<FakeCache>,
    metrics: Arc<CacheMetrics>,
    cache_policy: CachePolicy,
) -> Stockpile {
    Stockpile::new(
        Arc::new(repository),
        cache,
        metrics,
        ServiceSettings {
            cache_policy,
            ..ServiceSettings::default()
        },
    )
}

/// A repository answering one list query `times` times with an empty page.
pub fn lists(query: ListQuery, times: usize) -> MockStockRepository {
    let mut repository = MockStockRepository::new();
    repository
        .expect_list()
        .with(mockall::predicate::eq(query))
        .times(times)
        .returning(|_| {
            Ok(StockPage {
                items: Vec::new(),
                total: 0,
            })
        });
    repository
}

/// A service whose repository and cache panic on any use.
pub fn untouched() -> Stockpile {
    Stockpile::new(
        Arc::new(MockStockRepository::new()),
        Arc::new(MockCache::new()),
        Arc::new(CacheMetrics::default()),
        ServiceSettings::default(),
    )
}

pub fn state(service: impl StockService + 'static, admin: Admin) -> ApiState {
    ApiState {
        service: Arc::new(service),
        admin_token: match admin {
            Admin::On => Some(AdminToken::new(TOKEN.to_owned())),
            Admin::Off => None,
        },
        limits: ClientLimits::default(),
        stream_heartbeat: DEFAULT_STREAM_HEARTBEAT,
    }
}

/// The initialised app, for tests that send several requests to one instance.
pub async fn init(
    service: impl StockService + 'static,
    admin: Admin,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(app(state(service, admin), Arc::new(HttpMetrics::default()))).await
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Checks the answer is a problem+json of this status and returns the problem.
    pub fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.header("content-type"), "application/problem+json");
        assert_eq!(self.header("x-content-type-options"), "nosniff");
        let problem = self.json();
        assert_eq!(problem["status"], status);
        assert!(problem["title"].is_string(), "{problem}");
        assert!(problem["detail"].is_string(), "{problem}");
        assert!(problem["type"].is_string(), "{problem}");
        problem
    }

    /// The `field`s of a validation problem (400).
    pub fn invalid_fields(&self) -> Vec<String> {
        let problem = self.problem(400);
        problem["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors in {problem}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub async fn send_to<S, B>(app: &S, req: TestRequest) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends one request to a fresh app around `service`.
pub async fn send(service: impl StockService + 'static, admin: Admin, req: TestRequest) -> Reply {
    let app = init(service, admin).await;
    send_to(&app, req).await
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A stock with a quote as the repository holds it.
pub fn record(ticker: &str) -> StockRecord {
    let bar = |day, open, high, low, close, volume| {
        bar_of_units(date(2025, 11, day), open, high, low, close, volume)
    };
    let latest = bar(21, 1_900_000, 1_920_000, 1_880_000, 1_910_000, 1_000);
    let previous = bar(20, 1_850_000, 1_900_000, 1_840_000, 1_890_000, 900);
    StockRecord {
        ticker: Ticker::parse(ticker).unwrap(),
        name: "Apple Inc.".to_owned(),
        exchange: "NASDAQ".to_owned(),
        sector: "Information Technology".to_owned(),
        industry: None,
        currency: "USD".to_owned(),
        market_cap: Some(3_000_000_000_000),
        updated_at: DateTime::<Utc>::from_timestamp(1_763_700_000, 0).unwrap(),
        quote: Some(Quote::derive(&latest, Some(&previous))),
    }
}

/// The detail of [`record`].
pub fn detail_record(ticker: &str) -> DetailRecord {
    DetailRecord {
        stock: record(ticker),
        fifty_two_week_high: None,
        fifty_two_week_low: None,
        recent_volume: (1_900, 2),
    }
}

/// `Authorization` with the configured token.
pub fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}
