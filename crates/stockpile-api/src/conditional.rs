//! Turning a cached read into its HTTP answer: the stored body bytes as they are or in the
//! coding the request prefers ([`crate::compression`]), the cache headers the contract names,
//! and `304 Not Modified` for an `If-None-Match` naming any representation of the body.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::BytesMut;
use stockpile_application::cache_aside::{CacheOutcome, CachedResponse};

use crate::compression::{self, every_representation_etag};

/// The header saying how a read was answered (`HIT`, `MISS`, `BYPASS`, `STALE`).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// True when an `If-None-Match` value matches the ETag: `*`, or any listed tag equal to it
/// under the weak comparison RFC 9110 prescribes for `If-None-Match` (a `W/` prefix ignored).
fn matches_any(if_none_match: &str, etag: &str) -> bool {
    let strip_weak = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).to_owned();
    let etag = strip_weak(etag);
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || strip_weak(tag) == etag)
}

/// True when `If-None-Match` names the ETag of any representation of the body.
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| every_representation_etag(etag).any(|tag| matches_any(v, &tag)))
}

fn cache_control(cached: &CachedResponse) -> HeaderValue {
    match cached.outcome {
        // Written with `itoa` into one buffer that becomes the value: `format!` and a copy
        // into the header were a visible share of a small hit.
        CacheOutcome::Hit | CacheOutcome::Miss => {
            const PREFIX: &[u8] = b"public, max-age=";
            let mut seconds = itoa::Buffer::new();
            let seconds = seconds.format(cached.max_age).as_bytes();
            let mut value = BytesMut::with_capacity(PREFIX.len() + seconds.len());
            value.extend_from_slice(PREFIX);
            value.extend_from_slice(seconds);
            HeaderValue::from_maybe_shared(value.freeze())
                .unwrap_or(HeaderValue::from_static("no-cache"))
        }
        // The answer was not stored, so nobody downstream should reuse it unchecked.
        CacheOutcome::Bypass => HeaderValue::from_static("no-cache"),
        CacheOutcome::Stale => HeaderValue::from_static("public, max-age=0"),
    }
}

/// How a read was answered, as `X-Cache` says it.
fn x_cache(outcome: CacheOutcome) -> HeaderValue {
    HeaderValue::from_static(match outcome {
        CacheOutcome::Hit => "HIT",
        CacheOutcome::Miss => "MISS",
        CacheOutcome::Bypass => "BYPASS",
        CacheOutcome::Stale => "STALE",
    })
}

/// The answer of a cached read: 200 with the body, or 304 with the same validators.
///
/// The headers go straight into the response's map as ready values, most of them static:
/// through the builder each was parsed and checked again from text on every hit.
pub async fn respond(req: &HttpRequest, cached: CachedResponse) -> HttpResponse {
    let coding = compression::chosen(req.headers(), &cached.body);
    let mut response = if not_modified(req, &cached.etag) {
        HttpResponse::new(StatusCode::NOT_MODIFIED)
    } else {
        let body = match coding {
            Some(coding) => compression::compressed(&cached.etag, &cached.body, coding).await,
            None => cached.body.clone(),
        };
        let mut response = HttpResponse::with_body(StatusCode::OK, body).map_into_boxed_body();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(coding) = coding {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(coding.token()),
            );
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(X_CACHE, x_cache(cached.outcome));
    headers.insert(header::CACHE_CONTROL, cache_control(&cached));
    let etag = compression::representation_etag(&cached.etag, coding);
    // An ETag is quoted hex with an optional coding suffix, always a valid header value.
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if cached.outcome == CacheOutcome::Stale {
        headers.insert(header::AGE, HeaderValue::from(cached.age.unwrap_or(0)));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_star_and_weak_tags() {
        let etag = "\"abc\"";
        assert!(matches_any("\"abc\"", etag));
        assert!(matches_any("\"x\", \"abc\"", etag));
        assert!(matches_any("W/\"abc\"", etag));
        assert!(matches_any("*", etag));
        assert!(!matches_any("\"abcd\"", etag));
        assert!(!matches_any("abc", etag));
        assert!(!matches_any("", etag));
    }
}
