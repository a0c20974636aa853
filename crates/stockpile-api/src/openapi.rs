//! The OpenAPI 3.1 document served at `/api-docs/openapi.json`: generated from the handlers'
//! annotations, then completed with what annotations cannot say well (the admin security
//! scheme, the two documentation paths, which serve this document and Swagger UI's files)
//! or cannot take from the code (utoipa's attributes take literals only):
//! the query parameters' allowed values and limits, the ticker's pattern, the prices' bounds and
//! the bodies' limits, each read from the domain's own constant so the document cannot drift
//! from what the server applies.

use std::collections::BTreeMap;

use stockpile_application::views::{
    HistoryBar, Leaderboard, LeaderboardEntry, PriceHistory, QuoteBatch, RemovedTicker,
    StockDetail, StockList, StockSummary, TopMovers,
};
use stockpile_application::{FieldError, MAX_QUOTE_TICKERS, NO_STOCK_HAS_THE_TICKER};
use stockpile_domain::{
    Currency, Interval, MoverMetric, PageRequest, Period, Price, PriceField, SortField, SortOrder,
    StockProfile, TextLimit, Ticker, MAX_BARS_PER_UPLOAD, MAX_HISTORY_SPAN_DAYS, MAX_LIMIT,
    MAX_PAGE, MAX_PAGE_SIZE, MAX_QUERY_LEN,
};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDocument, Ref, RefOr, Required, Schema};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

use crate::body::{
    InvalidateBody, PriceBarBody, PriceUploadBody, StockProfileBody, JSON_INTEGER, MAX_BODY_BYTES,
};
use crate::handlers::cache_admin::{CacheStatusView, Deleted};
use crate::handlers::operations::{Liveness, ReadinessView};
use crate::handlers::writes::UpsertedBars;
use crate::handlers::{cache_admin, operations, reads, streams, writes};
use crate::middleware::MAX_TARGET_BYTES;
use crate::params::DEFAULT_LIMIT;
use crate::problem::{Problem, PROBLEM_JSON};

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
        streams::quote_stream,
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
        RemovedTicker,
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

/// The `{ticker}` path segment of every route that has one, described once from the domain.
pub(crate) struct TickerPath;

impl IntoParams for TickerPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(Ticker::PATTERN));
        vec![ParameterBuilder::new()
            .name("ticker")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(format!(
                "1–{} characters, case-insensitive (normalised to upper case).",
                Ticker::MAX_LEN
            )))
            .schema(Some(schema))
            .example(Some("AAPL".into()))
            .build()]
    }
}

/// The description of the 404 of a route with a `{ticker}`: the words its problem's
/// `detail` uses, as a sentence.
pub(crate) fn unknown_ticker() -> String {
    let mut words = NO_STOCK_HAS_THE_TICKER.chars();
    let first = words.next().map(|c| c.to_ascii_uppercase());
    first.into_iter().chain(words).chain(['.']).collect()
}

/// A problem+json answer with its description, as the handlers' own error responses are.
fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// The 503 of every operation that reaches the database, described once.
pub(crate) struct DatabaseUnavailable;

impl IntoResponses for DatabaseUnavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "503".to_owned(),
            problem_response(
                "The database is unavailable (or known to be failing: answered at once), and \
                 nothing cached could stand in; `Retry-After` says when to try again.",
            ),
        )])
    }
}

/// The refusals of every admin endpoint (401, 403), described once.
pub(crate) struct AdminRefusals;

impl IntoResponses for AdminRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("401", "Missing or malformed `Authorization` header."),
            ("403", "Wrong token, or admin endpoints switched off."),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), problem_response(description)))
        .collect()
    }
}

/// The refusals of every request body before it is read (408, 413, 415), described once;
/// the 413 from [`MAX_BODY_BYTES`] itself.
pub(crate) struct BodyRefusals;

impl IntoResponses for BodyRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let too_large = format!("The body is over {} MiB.", MAX_BODY_BYTES / (1024 * 1024));
        [
            (
                "408",
                "The body did not arrive within the body timeout (15 s).",
            ),
            ("413", too_large.as_str()),
            ("415", "The body is not `application/json`."),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), problem_response(description)))
        .collect()
    }
}

/// The object schema of a component, for [`describe_limits`].
fn object_schema<'d>(doc: &'d mut OpenApiDocument, name: &str) -> Option<&'d mut Object> {
    let components = doc.components.as_mut()?;
    match components.schemas.get_mut(name)? {
        RefOr::T(Schema::Object(object)) => Some(object),
        _ => None,
    }
}

/// Writes the bodies' limits into their schemas from the constants the server checks.
fn describe_limits(doc: &mut OpenApiDocument) {
    if let Some(profile) = object_schema(doc, "StockProfileBody") {
        let texts: [(&str, TextLimit); 4] = [
            ("name", StockProfile::NAME),
            ("exchange", StockProfile::EXCHANGE),
            ("sector", StockProfile::SECTOR),
            ("industry", StockProfile::INDUSTRY),
        ];
        for (field, limit) in texts {
            if let Some(RefOr::T(Schema::Object(text))) = profile.properties.get_mut(field) {
                text.min_length = (limit.min > 0).then_some(limit.min);
                text.max_length = Some(limit.max);
                text.description = Some(if limit.min > 0 {
                    format!("{}–{} characters.", limit.min, limit.max)
                } else {
                    format!("At most {} characters.", limit.max)
                });
            }
        }
        if let Some(RefOr::T(Schema::Object(currency))) = profile.properties.get_mut("currency") {
            currency.pattern = Some(Currency::PATTERN.to_owned());
        }
        describe_json_integer(profile, "market_cap");
    }
    if let Some(upload) = object_schema(doc, "PriceUploadBody") {
        if let Some(RefOr::T(Schema::Array(bars))) = upload.properties.get_mut("bars") {
            bars.min_items = Some(1);
            bars.max_items = Some(MAX_BARS_PER_UPLOAD);
            bars.description = Some(format!(
                "1–{MAX_BARS_PER_UPLOAD} bars, one per date, none after today (UTC)."
            ));
        }
    }
    if let Some(bar) = object_schema(doc, "PriceBarBody") {
        describe_json_integer(bar, "volume");
        for field in PriceField::ALL {
            if let Some(RefOr::T(Schema::Object(price))) = bar.properties.get_mut(field.as_str()) {
                // Above the largest number that rounds to zero, as `exclusiveMinimum` says it.
                price.exclusive_minimum = Some(Price::ROUNDS_TO_ZERO.into());
                price.maximum = Some(Price::MAX.into());
                price.description = Some(format!(
                    "More than 4 decimals are rounded half-to-even, and the rounded price must be \
                     above 0 and at most {}: a number up to {} rounds to 0 and is refused.",
                    Price::MAX,
                    Price::ROUNDS_TO_ZERO
                ));
            }
        }
    }
    // The list echoes the page asked for, so its `page` has the parameter's range.
    if let Some(list) = object_schema(doc, "StockList") {
        list.properties.insert("page".to_owned(), page_number());
    }
}

/// Says of an integer field of a body that it must be written as a JSON integer; its schema
/// (`type: integer`) alone would allow `100.0`.
fn describe_json_integer(body: &mut Object, field: &str) {
    if let Some(RefOr::T(Schema::Object(integer))) = body.properties.get_mut(field) {
        integer.description = Some(JSON_INTEGER.to_owned());
    }
}

/// A string schema limited to the listed values, with its default.
fn enumeration(values: impl Iterator<Item = &'static str>, default: &'static str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .default(Some(default.into()))
        .into()
}

/// [`enumeration`] of one of the domain's lower-case enumerations: its values and its default.
macro_rules! enumeration_of {
    ($kind:ty) => {
        enumeration(
            <$kind>::ALL.iter().map(|value| value.as_str()),
            <$kind>::default().as_str(),
        )
    };
}

/// An integer schema from `min` to `max` with its default; `int64` when `max` needs more
/// than `int32`.
fn integer_range(min: u32, max: u32, default: u32) -> RefOr<Schema> {
    let format = if i32::try_from(max).is_ok() {
        KnownFormat::Int32
    } else {
        KnownFormat::Int64
    };
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(format)))
        .minimum(Some(min))
        .maximum(Some(max))
        .default(Some(default.into()))
        .into()
}

/// The page number, as the `page` parameter takes it and the list echoes it.
fn page_number() -> RefOr<Schema> {
    integer_range(1, MAX_PAGE, PageRequest::default().page)
}

/// The pattern of `tickers`: 1 to [`MAX_QUOTE_TICKERS`] tickers separated by commas. Where a
/// ticker repeats it is stricter than the server, which counts it once, but never looser.
pub(crate) fn ticker_list_pattern() -> String {
    let one = Ticker::PATTERN
        .trim_start_matches('^')
        .trim_end_matches('$');
    format!("^{one}(,{one}){{0,{}}}$", MAX_QUOTE_TICKERS - 1)
}

/// A query parameter's schema and, where its rule needs words, its description.
struct QueryParameter {
    name: &'static str,
    schema: RefOr<Schema>,
    description: Option<String>,
}

/// The query parameters' schemas and rules, from the domain's own lists and constants so the
/// document cannot drift from what the handlers accept.
fn query_parameters() -> Vec<QueryParameter> {
    let PageRequest { page, page_size } = PageRequest::default();
    let date = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .into()
    };
    let span =
        format!("a range over {MAX_HISTORY_SPAN_DAYS} days (20 years), defaults applied, is a 400");
    let parameter = |name, schema, description: Option<String>| QueryParameter {
        name,
        schema,
        description,
    };
    vec![
        parameter("sort", enumeration_of!(SortField), None),
        parameter("order", enumeration_of!(SortOrder), None),
        parameter("metric", enumeration_of!(MoverMetric), None),
        parameter("period", enumeration_of!(Period), None),
        parameter("interval", enumeration_of!(Interval), None),
        parameter(
            "page",
            page_number(),
            Some(format!(
                "1-based page number, at most {MAX_PAGE}; default {page}."
            )),
        ),
        parameter(
            "page_size",
            integer_range(1, MAX_PAGE_SIZE, page_size),
            Some(format!(
                "Items per page, 1–{MAX_PAGE_SIZE}; default {page_size}."
            )),
        ),
        parameter(
            "limit",
            integer_range(1, MAX_LIMIT, DEFAULT_LIMIT),
            Some(format!("1–{MAX_LIMIT}; default {DEFAULT_LIMIT}.")),
        ),
        parameter(
            "q",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_QUERY_LEN))
                .into(),
            Some(format!(
                "Case-insensitive substring of the ticker or name; blank means none. At most \
                 {MAX_QUERY_LEN} characters once trimmed and lower-cased, which `İ` turns into \
                 two."
            )),
        ),
        parameter(
            "tickers",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(ticker_list_pattern()))
                .into(),
            None,
        ),
        parameter(
            "from",
            date(),
            Some(format!(
                "First date, inclusive (YYYY-MM-DD), not after `to`. Only `from`: up to the \
                 latest bar; {span}."
            )),
        ),
        parameter(
            "to",
            date(),
            Some(format!(
                "Last date, inclusive (YYYY-MM-DD). Only `to`: the 365 days ending at it; \
                 neither date: the 365 days ending at the latest bar; {span}."
            )),
        ),
    ]
}

/// Writes [`query_parameters`] into every operation that takes them.
fn describe_parameters(doc: &mut OpenApiDocument) {
    let described = query_parameters();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                let query = parameter.parameter_in == ParameterIn::Query;
                let Some(rule) = described.iter().find(|p| query && p.name == parameter.name)
                else {
                    continue;
                };
                parameter.schema = Some(rule.schema.clone());
                if rule.description.is_some() {
                    parameter.description.clone_from(&rule.description);
                }
            }
        }
    }
}

/// The two documentation paths: this document and Swagger UI over it.
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

/// The headers of every cached read's answer, described once (API.md, "Cached reads").
const CACHED_READ_HEADERS: &[(&str, &str)] = &[
    ("X-Cache", "`HIT`, `MISS`, `BYPASS` or `STALE`."),
    (
        "ETag",
        "Strong validator of the body; `\"…-br\"` or `\"…-gzip\"` for a compressed representation.",
    ),
    (
        "Cache-Control",
        "`public, max-age=N`; `no-cache` on `BYPASS`; `max-age=0` on `STALE`.",
    ),
    ("Age", "Seconds since the entry was stored; `STALE` only."),
    ("Vary", "`Accept-Encoding`, on every cached read."),
    (
        "Content-Encoding",
        "`br` or `gzip` when the request accepts one (`Accept-Encoding`, q-values honoured, `br` preferred among equals) and the body is at least 1,024 bytes.",
    ),
];

/// Every cached read (the GET operations tagged `stocks` or `rankings`) answers with the cache
/// headers and may answer 304.
fn describe_cached_reads(doc: &mut OpenApiDocument) {
    let cached_reads = doc
        .paths
        .paths
        .values_mut()
        .filter_map(|item| item.get.as_mut())
        .filter(|operation| {
            operation
                .tags
                .iter()
                .flatten()
                .any(|tag| tag == "stocks" || tag == "rankings")
        });
    for operation in cached_reads {
        let responses = &mut operation.responses.responses;
        if let Some(RefOr::T(ok)) = responses.get_mut("200") {
            for (name, description) in CACHED_READ_HEADERS {
                let mut header = Header::default();
                header.description = Some((*description).to_owned());
                ok.headers.insert((*name).to_owned(), header);
            }
        }
        responses.insert(
            "304".to_owned(),
            ResponseBuilder::new()
                .description(
                    "`If-None-Match` names the ETag of a representation of the current body; \
                     the same `ETag` (of the representation this request would get), \
                     `Cache-Control` and `X-Cache`, no body.",
                )
                .build()
                .into(),
        );
    }
}

/// The 414 every operation answers to a request target over [`MAX_TARGET_BYTES`], written
/// into each (the middleware refuses it before any route sees it).
fn describe_target_limit(doc: &mut OpenApiDocument) {
    let too_long = problem_response(&format!(
        "The path and query string are over {MAX_TARGET_BYTES} bytes."
    ));
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            operation
                .responses
                .responses
                .insert("414".to_owned(), too_long.clone());
        }
    }
}

/// The OpenAPI document of the whole HTTP contract.
pub fn openapi() -> OpenApiDocument {
    let mut doc = ApiDoc::openapi();
    describe_cached_reads(&mut doc);
    describe_parameters(&mut doc);
    describe_limits(&mut doc);
    describe_documentation(&mut doc);
    describe_target_limit(&mut doc);
    doc
}
