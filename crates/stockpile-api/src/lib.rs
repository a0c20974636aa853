//! Stockpile's HTTP interface: actix-web handlers over [`StockService`], problem+json errors,
//! `/metrics`, the OpenAPI document and Swagger UI.
//!
//! Invariants:
//! - Every error answer is `application/problem+json`, actix's own 404/405 included
//!   ([`middleware`] rewrites any error response that is not JSON).
//! - Every response carries `X-Content-Type-Options: nosniff` and an `X-Request-Id`.
//! - Cached reads write the stored body bytes as they are: no re-serialisation, so the
//!   `ETag` always describes exactly the bytes sent.
//! - Admin authentication runs as an extractor before anything reads the body, so 401/403
//!   come before 413/415.
//! - Nothing here knows about SQL or Redis; this crate depends on the application crate only.
//! - Cached reads are compressed once per body and coding ([`compression`]), never per hit;
//!   other answers (errors, writes, operations) are small and sent as they are.

// Unit tests may unwrap: a panic there is a failed assertion, not a crashed request.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod auth;
mod body;
mod compression;
mod conditional;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod http_metrics;
mod middleware;
mod openapi;
mod params;
mod problem;

use std::fmt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{guard, web, App, HttpRequest, HttpServer, Resource, Route};
use stockpile_application::StockService;

pub use auth::AdminToken;
pub use body::MAX_BODY_BYTES;
pub use http_metrics::HttpMetrics;
pub use middleware::{MAX_HEADER_BYTES, MAX_TARGET_BYTES};
pub use openapi::{openapi, OPENAPI_PATH};
pub use problem::{Problem, PROBLEM_JSON};

use handlers::documentation::{self, Documentation};
use handlers::{cache_admin, operations, reads, streams, writes};

/// What the handlers need: the use cases, when admin endpoints are on their token, the
/// limits on what clients may send, and how often a quiet live-quote stream says it is alive.
#[derive(Clone)]
pub struct ApiState {
    pub service: Arc<dyn StockService>,
    /// `None` switches the admin endpoints off: they answer 403.
    pub admin_token: Option<AdminToken>,
    pub limits: ClientLimits,
    /// After this long without an event a stream gets a keep-alive comment
    /// (`STREAM_HEARTBEAT_S`).
    pub stream_heartbeat: Duration,
}

/// The default of [`ApiState::stream_heartbeat`]: well inside the idle timeouts of proxies
/// (nginx's 60 s read timeout).
pub const DEFAULT_STREAM_HEARTBEAT: Duration = Duration::from_secs(15);

/// How long and how much a client may take, so that slow or greedy clients cannot keep the
/// server from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// How long a client may take to send a request's head (method, path and headers) after it
    /// connects or after its previous request; a slow-loris connection is dropped at this point.
    pub request_head_timeout: Duration,
    /// How long a client may take to send a request body once its head arrived: 408 after it.
    /// A 1 MiB body takes 10 s at 100 KiB/s.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection stays open between requests (`HTTP_KEEP_ALIVE_S`):
    /// longer than the 60 s idle timeout of common load balancers, so that none of them reuses
    /// a connection the server is closing at that moment. Zero switches keep-alive off.
    pub keep_alive: Duration,
    /// Open connections per worker thread; past it the server accepts no more until some
    /// close, which keeps a connection flood from exhausting the process's file descriptors
    /// (two per connection: its own and the handle that can close a stalled live-quote client's).
    pub max_connections_per_worker: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            request_head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            keep_alive: Duration::from_secs(75),
            max_connections_per_worker: 4_096,
        }
    }
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("admin_token", &self.admin_token)
            .field("limits", &self.limits)
            .field("stream_heartbeat", &self.stream_heartbeat)
            .finish_non_exhaustive()
    }
}

/// How long in-flight requests get to finish after SIGINT/SIGTERM before workers stop.
const SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// How long a closing connection may take to shut down cleanly.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A resource at `path` that labels its requests with the route template for `/metrics` and
/// the log (see [`middleware::RouteTemplate`]).
fn labelled(path: &'static str) -> Resource {
    web::resource(path).app_data(middleware::RouteTemplate(path))
}

/// `GET`, and `HEAD` with it: API.md answers `HEAD` wherever `GET` is (actix sends the same
/// status and headers without the body).
fn get_or_head() -> impl guard::Guard {
    guard::Any(guard::Get()).or(guard::Head())
}

/// A resource answering each listed method with its route, and any other method with 405
/// and an `Allow` header built from the same list, so the two cannot drift apart.
fn resource(path: &'static str, routes: Vec<(Method, Route)>) -> Resource {
    with_routes(labelled(path), routes, Vec::new())
}

/// Adds `allowed` (listed in `Allow`) and `refused` (answered, but only ever to refuse the
/// request more precisely than a 405 would, so not listed) to `resource`; any other method
/// gets 405.
fn with_routes(
    resource: Resource,
    allowed: Vec<(Method, Route)>,
    refused: Vec<(Method, Route)>,
) -> Resource {
    let allow = allowed
        .iter()
        .flat_map(|(method, _)| {
            let head = (*method == Method::GET).then_some(Method::HEAD.as_str());
            std::iter::once(method.as_str()).chain(head)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let resource =
        allowed
            .into_iter()
            .chain(refused)
            .fold(resource, |resource, (method, route)| {
                if method == Method::GET {
                    resource.route(route.guard(get_or_head()))
                } else {
                    resource.route(route.method(method))
                }
            });
    resource.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move { middleware::method_not_allowed(&req, &allow) }
    }))
}

/// `/api/stocks/top`: the top movers, a fixed path (matched without the regular expression a
/// `{ticker}` segment costs). PUT and DELETE are answered as the writes under `{ticker}` answer
/// the route word: authenticated, then refused (400, API.md). They never succeed there, so
/// `Allow` lists GET and HEAD only.
fn top_movers() -> Resource {
    with_routes(
        labelled("/api/stocks/top"),
        vec![(Method::GET, web::to(reads::top_movers))],
        vec![
            (Method::PUT, web::to(writes::refuse_top)),
            (Method::DELETE, web::to(writes::refuse_top)),
        ],
    )
}

/// Registers every route. actix tries them in this order, each costing a match: the hottest
/// first (`/health` for the load balancers' probes, then a stock's detail, the dashboards'
/// most frequent read); `/api/stocks/top` comes before `/api/stocks/{ticker}` so that `top` is
/// a route, not a ticker (`leaderboard/top` has two segments and cannot be taken for one).
fn routes(cfg: &mut web::ServiceConfig) {
    use Method as M;
    let get_only = |path, route| resource(path, vec![(M::GET, route)]);
    let docs = web::Data::new(Documentation::new());
    cfg.service(get_only("/health", web::to(operations::health)))
        .service(top_movers())
        .service(resource(
            "/api/stocks/{ticker}",
            vec![
                (M::GET, web::to(reads::stock_detail)),
                (M::PUT, web::to(writes::put_stock)),
                (M::DELETE, web::to(writes::delete_stock)),
            ],
        ))
        .service(get_only("/health/ready", web::to(operations::ready)))
        .service(get_only("/metrics", web::to(operations::metrics)))
        .service(get_only("/api/stocks", web::to(reads::list_stocks)))
        .service(get_only("/api/quotes", web::to(reads::quotes)))
        .service(get_only(
            "/api/stream/quotes",
            web::to(streams::quote_stream),
        ))
        .service(get_only(
            "/api/stocks/",
            web::to(reads::list_stocks_trailing_slash),
        ))
        .service(get_only(
            "/api/stocks/leaderboard/top",
            web::to(reads::leaderboard),
        ))
        .service(get_only(
            "/api/stocks/{ticker}/history",
            web::to(reads::price_history),
        ))
        .service(resource(
            "/api/stocks/{ticker}/prices",
            vec![(M::POST, web::to(writes::upload_prices))],
        ))
        .service(get_only(
            "/api/cache/status",
            web::to(cache_admin::cache_status),
        ))
        .service(resource(
            "/api/cache/invalidate",
            vec![(M::POST, web::to(cache_admin::invalidate))],
        ))
        .service(resource(
            "/api/cache/key/{key}",
            vec![(M::DELETE, web::to(cache_admin::delete_key))],
        ))
        .service(resource(
            "/api/cache",
            vec![(M::DELETE, web::to(cache_admin::clear))],
        ))
        .service(
            get_only(OPENAPI_PATH, web::to(documentation::openapi_document)).app_data(docs.clone()),
        )
        .service(get_only("/docs", web::to(documentation::redirect)))
        .service(get_only("/docs/{file:.*}", web::to(documentation::swagger_ui)).app_data(docs));
}

/// The complete application: routes, the problem+json fallback and the observing middleware.
/// [`serve`] builds one per worker; tests drive it with `actix_web::test::init_service`.
///
/// `http_metrics` is shared by every worker of one server, so `/metrics` counts them all.
pub fn app(
    state: ApiState,
    http_metrics: Arc<HttpMetrics>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::Data::from(http_metrics))
        .configure(routes)
        .default_service(web::to(middleware::not_found))
        .wrap(actix_web::middleware::from_fn(middleware::observe))
}

/// Starts the HTTP server on `listener` (port 0 works). The returned [`Server`] runs when
/// awaited; it stops gracefully on SIGINT/SIGTERM, finishing the requests in flight for up
/// to 30 seconds, and ending the live-quote streams at once so that they do not hold it.
///
/// # Errors
/// When the listener cannot be taken over by the server.
///
/// # Panics
/// Outside a Tokio runtime.
pub fn serve(listener: TcpListener, state: ApiState) -> std::io::Result<Server> {
    let service = Arc::clone(&state.service);
    tokio::spawn(async move {
        stopping().await;
        service.end_quote_streams();
    });
    let http_metrics = Arc::new(HttpMetrics::default());
    let limits = state.limits;
    let server = HttpServer::new(move || app(state.clone(), Arc::clone(&http_metrics)))
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .client_request_timeout(limits.request_head_timeout)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .keep_alive(limits.keep_alive)
        .max_connections(limits.max_connections_per_worker)
        .on_connect(handlers::streams::keep_socket)
        .listen(listener)?
        .run();
    Ok(server)
}

/// Resolves when the process is asked to stop (SIGINT, or SIGTERM on Unix), as actix's own
/// graceful shutdown is.
async fn stopping() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
