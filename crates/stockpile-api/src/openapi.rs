//! The OpenAPI 3.1 document served at `/api-docs/openapi.json`: generated from the handlers'
//! annotations, then completed with what annotations cannot say well (the admin security
//! scheme, the enumerations' allowed values taken from the domain itself, and the two
//! documentation paths, which are served by Swagger UI rather than by a handler of ours).

use stockpile_application::views::{
    HistoryBar, Leaderboard, LeaderboardEntry, PriceHistory, QuoteBatch, StockDetail, StockList,
    StockSummary, TopMovers,
};
use stockpile_application::FieldError;
use stockpile_domain::{Interval, MoverMetric, Period, SortField, SortOrder};
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDocument, RefOr, Schema};
use utoipa::{Modify, OpenApi};

use crate::body::{PriceBarBody, PriceUploadBody, StockProfileBody};
use crate::handlers::cache_admin::{CacheStatusView, Deleted, InvalidateBody};
use crate::handlers::operations::{Liveness, ReadinessView};
use crate::handlers::writes::UpsertedBars;
use crate::handlers::{cache_admin, operations, reads, writes};
use crate::problem::Problem;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";

struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stockpile",
        description = "Stock-market data over HTTP: a ticker universe, daily price bars, the latest quote, top movers and performance leaderboards, with cache-aside reads. Every error is application/problem+json (RFC 9457)."
    ),
    paths(
        reads::list_stocks,
        reads::list_stocks_trailing_slash,
        reads::stock_detail,
        reads::price_history,
        reads::top_movers,
        reads::leaderboard,
        reads::quotes,
        writes::put_stock,
        writes::upload_prices,
        writes::delete_stock,
        cache_admin::cache_status,
        cache_admin::invalidate,
        cache_admin::delete_key,
        cache_admin::clear,
        operations::health,
        operations::ready,
        operations::metrics,
    ),
    components(schemas(
        Problem,
        FieldError,
        StockSummary,
        StockDetail,
        StockList,
        HistoryBar,
        PriceHistory,
        TopMovers,
        LeaderboardEntry,
        Leaderboard,
        QuoteBatch,
        StockProfileBody,
        PriceUploadBody,
        PriceBarBody,
        UpsertedBars,
        CacheStatusView,
        InvalidateBody,
        Deleted,
        ReadinessView,
        Liveness,
    )),
    modifiers(&AdminSecurity),
    tags(
        (name = "stocks", description = "Cached reads of stocks and their prices."),
        (name = "rankings", description = "Cached top movers and leaderboards."),
        (name = "admin", description = "Writes; need `Authorization: Bearer <ADMIN_TOKEN>`."),
        (name = "cache", description = "Cache status (public) and administration (admin)."),
        (name = "operations", description = "Health, readiness, metrics and documentation."),
    )
)]
struct ApiDoc;

/// A string schema limited to the listed values, with its default.
fn enumeration(values: &[&'static str], default: &'static str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(Some(default.into()))
        .into()
}

/// Gives the enumerated query parameters their allowed values, from the domain's own lists
/// so the document cannot drift from what the handlers accept.
fn describe_enumerations(doc: &mut OpenApiDocument) {
    let sort: Vec<_> = SortField::ALL.iter().map(|s| s.as_str()).collect();
    let order: Vec<_> = SortOrder::ALL.iter().map(|s| s.as_str()).collect();
    let metric: Vec<_> = MoverMetric::ALL.iter().map(|s| s.as_str()).collect();
    let period: Vec<_> = Period::ALL.iter().map(|s| s.as_str()).collect();
    let interval: Vec<_> = Interval::ALL.iter().map(|s| s.as_str()).collect();
    let schemas = [
        ("sort", enumeration(&sort, SortField::default().as_str())),
        ("order", enumeration(&order, SortOrder::default().as_str())),
        (
            "metric",
            enumeration(&metric, MoverMetric::default().as_str()),
        ),
        ("period", enumeration(&period, Period::default().as_str())),
        (
            "interval",
            enumeration(&interval, Interval::default().as_str()),
        ),
    ];
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let Some((_, schema)) = schemas.iter().find(|(n, _)| *n == parameter.name) {
                    parameter.schema = Some(schema.clone());
                }
            }
        }
    }
}

/// The two paths Swagger UI serves.
fn describe_documentation(doc: &mut OpenApiDocument) {
    let openapi = OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("openapi_document"))
        .summary(Some("This OpenAPI 3.1 document."))
        .response(
            "200",
            ResponseBuilder::new().description("The document.").content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                    .build(),
            ),
        )
        .build();
    doc.paths
        .add_path_operation(OPENAPI_PATH, vec![HttpMethod::Get], openapi);
    let swagger = OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("swagger_ui"))
        .summary(Some(
            "Swagger UI over this document, served by the binary itself.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The Swagger UI page.")
                .content(
                    "text/html",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                ),
        )
        .build();
    doc.paths
        .add_path_operation("/docs/", vec![HttpMethod::Get], swagger);
}

/// The OpenAPI document of the whole HTTP contract.
pub fn openapi() -> OpenApiDocument {
    let mut doc = ApiDoc::openapi();
    describe_enumerations(&mut doc);
    describe_documentation(&mut doc);
    doc
}
