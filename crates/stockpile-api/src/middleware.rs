//! The one middleware every request passes: it gives the request an id, turns any error
//! response that is not already JSON (actix's own, such as an extractor's refusal) into
//! problem+json, adds the headers every response carries, counts the request for `/metrics`
//! and logs it once.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpRequest, HttpResponse};
use tracing::Instrument;

use crate::conditional::X_CACHE;
use crate::http_metrics::HttpMetrics;
use crate::problem::{Problem, PROBLEM_JSON};

/// The header carrying a request's correlation id, echoed or generated.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-supplied request id echoed; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The longest request target (path and query string) taken; longer ones are 414. No request
/// of the API needs more than a few hundred bytes, and long targets only bloat logs and keys.
pub const MAX_TARGET_BYTES: usize = 4 * 1024;

/// The most header bytes (names and values) a request may carry; more is 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The route template of the resource that took a request, put there by the resource (as its
/// `app_data`) so that labelling the request costs no second walk of the router:
/// `HttpRequest::match_pattern` matches the path against every route again, which showed in the
/// hit path's profile. A request without one (no resource took it) falls back to that walk.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// The refusal of a request whose target or headers are over the limits, before routing.
fn oversized(req: &ServiceRequest) -> Option<HttpResponse> {
    let target = req
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let (status, detail) = if target > MAX_TARGET_BYTES {
        (
            StatusCode::URI_TOO_LONG,
            format!("the path and query string are {target} bytes; at most {MAX_TARGET_BYTES} are taken"),
        )
    } else if headers > MAX_HEADER_BYTES {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the headers are {headers} bytes; at most {MAX_HEADER_BYTES} are taken"),
        )
    } else {
        return None;
    };
    Some(Problem::new(status, detail).respond(&mut HttpResponse::build(status)))
}

/// The client's `X-Request-Id` when it is short, visible ASCII (so it cannot forge log lines
/// or bloat them), else a fresh UUID v4.
fn request_id(req: &ServiceRequest) -> HeaderValue {
    req.headers()
        .get(&X_REQUEST_ID)
        .filter(|v| {
            let bytes = v.as_bytes();
            (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
                && bytes.iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(fresh_request_id)
}

/// A UUID v4 from the thread's CSPRNG: `Uuid::new_v4` asks the kernel (`getrandom`) on every
/// call, a system call per request that showed in the hit path's profile.
fn fresh_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut text))
        .unwrap_or(HeaderValue::from_static("invalid-request-id"))
}

/// The method as a metrics label; arbitrary extension methods collapse into one label so
/// clients cannot grow the metrics without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.eq_ignore_ascii_case(PROBLEM_JSON)
        })
}

/// What a problem made from a foreign error response says.
fn detail_of(status: StatusCode, method: &Method, error: Option<&Error>) -> String {
    match (status, error) {
        (StatusCode::NOT_FOUND, _) => "there is nothing at this path".to_owned(),
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            format!("the method {method} is not allowed at this path")
        }
        // Client errors describe the client's input, so actix's message is safe to pass on.
        (s, Some(e)) if s.is_client_error() => e.to_string(),
        (s, _) if s.is_server_error() => "an internal error occurred".to_owned(),
        (s, _) => s.canonical_reason().unwrap_or("error").to_owned(),
    }
}

/// Rebuilds an error response that is not JSON as problem+json, keeping its other headers.
/// JSON error responses are ours (problem+json) or deliberate (readiness' 503 body).
fn into_problem<B>(res: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(res.headers()) {
        return res.map_into_left_body();
    }
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            error = ?res.response().error(),
            "a handler answered a server error without a problem body"
        );
    }
    let detail = detail_of(status, res.request().method(), res.response().error());
    let mut problem = Problem::new(status, detail).respond(&mut HttpResponse::build(status));
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().append(name.clone(), value.clone());
        }
    }
    res.into_response(problem).map_into_right_body()
}

/// See the module documentation.
pub async fn observe<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, Error> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let metrics = req
        .app_data::<web::Data<HttpMetrics>>()
        .map(|data| data.clone().into_inner());
    let span = tracing::info_span!(
        "http_request",
        request_id = %String::from_utf8_lossy(request_id.as_bytes()),
        method = %req.method(),
    );
    let request_method = req.method().clone();
    let method = method_label(&request_method);
    let res = if let Some(refusal) = oversized(&req) {
        req.into_response(refusal).map_into_right_body()
    } else {
        match next.call(req).instrument(span.clone()).await {
            Ok(res) => into_problem(res),
            Err(error) => {
                // Handlers turn their errors into responses; only a failing middleware lands here.
                // The request went with it (cloning it earlier would stop the router from
                // recording path parameters), so answer through an error that renders as a
                // problem with the common headers.
                let status = error.as_response_error().status_code();
                let detail = detail_of(status, &request_method, Some(&error));
                let mut problem =
                    Problem::new(status, detail).respond(&mut HttpResponse::build(status));
                let headers = problem.headers_mut();
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                headers.insert(X_REQUEST_ID, request_id);
                if let Some(metrics) = metrics {
                    metrics.observe(
                        method,
                        Cow::Borrowed("unmatched"),
                        status.as_u16(),
                        started.elapsed(),
                    );
                }
                span.in_scope(|| tracing::error!(%error, status = status.as_u16(), "request failed in a middleware"));
                return Err(InternalError::from_response(error.to_string(), problem).into());
            }
        }
    };
    Ok(finish(
        res,
        request_id,
        metrics.as_deref(),
        method,
        started,
        &span,
    ))
}

/// Adds the headers every response carries, counts the request and logs it.
fn finish<B>(
    mut res: ServiceResponse<B>,
    request_id: HeaderValue,
    metrics: Option<&HttpMetrics>,
    method: &'static str,
    started: Instant,
    span: &tracing::Span,
) -> ServiceResponse<B> {
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(X_REQUEST_ID, request_id);

    let elapsed = started.elapsed();
    let route: Cow<'static, str> = match res.request().app_data::<RouteTemplate>() {
        Some(template) => Cow::Borrowed(template.0),
        None => res
            .request()
            .match_pattern()
            .map_or(Cow::Borrowed("unmatched"), Cow::Owned),
    };
    let status = res.status().as_u16();
    if let Some(metrics) = metrics {
        metrics.observe(method, route.clone(), status, elapsed);
    }
    let cache = res
        .headers()
        .get(&X_CACHE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // One event per request; headers are never logged, so neither is `Authorization`.
    span.in_scope(|| {
        tracing::info!(
            route = %route,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            cache,
            "request answered"
        );
    });
    res
}

/// The answer for paths no route takes.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let status = StatusCode::NOT_FOUND;
    Problem::new(status, detail_of(status, req.method(), None))
        .respond(&mut HttpResponse::build(status))
}

/// The answer for a known path with a method it does not take; `allow` lists those it does.
pub fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::ALLOW, allow));
    Problem::new(status, detail_of(status, req.method(), None)).respond(&mut builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn request_ids_are_echoed_only_when_safe() {
        let req = TestRequest::default()
            .insert_header((X_REQUEST_ID, "abc-123"))
            .to_srv_request();
        assert_eq!(request_id(&req), "abc-123");
        let req = TestRequest::default()
            .insert_header((X_REQUEST_ID, "has space"))
            .to_srv_request();
        assert_eq!(request_id(&req).len(), 36);
        let req = TestRequest::default()
            .insert_header((X_REQUEST_ID, "x".repeat(129)))
            .to_srv_request();
        assert_eq!(request_id(&req).len(), 36);
    }

    #[test]
    fn fresh_request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<_> = (0..1000)
            .map(|_| {
                let id = fresh_request_id();
                let uuid = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
                assert_eq!(uuid.get_version(), Some(uuid::Version::Random));
                id
            })
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_label(&custom), "OTHER");
    }
}
