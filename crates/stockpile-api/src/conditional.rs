//! Turning a cached read into its HTTP answer: the stored body bytes as they are or in the
//! coding the request prefers ([`crate::compression`]), the cache headers the contract names,
//! and `304 Not Modified` for an `If-None-Match` naming any representation of the body.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
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

fn cache_control(cached: &CachedResponse) -> String {
    match cached.outcome {
        CacheOutcome::Hit | CacheOutcome::Miss => format!("public, max-age={}", cached.max_age),
        // The answer was not stored, so nobody downstream should reuse it unchecked.
        CacheOutcome::Bypass => "no-cache".to_owned(),
        CacheOutcome::Stale => "public, max-age=0".to_owned(),
    }
}

/// How a read was answered, as `X-Cache` says it.
fn x_cache(outcome: CacheOutcome) -> &'static str {
    match outcome {
        CacheOutcome::Hit => "HIT",
        CacheOutcome::Miss => "MISS",
        CacheOutcome::Bypass => "BYPASS",
        CacheOutcome::Stale => "STALE",
    }
}

/// The answer of a cached read: 200 with the body, or 304 with the same validators.
pub async fn respond(req: &HttpRequest, cached: CachedResponse) -> HttpResponse {
    let coding = compression::chosen(req.headers(), &cached.body);
    let not_modified = not_modified(req, &cached.etag);
    let mut builder = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((X_CACHE, HeaderValue::from_static(x_cache(cached.outcome))))
        .insert_header((header::CACHE_CONTROL, cache_control(&cached)))
        .insert_header((
            header::ETAG,
            compression::representation_etag(&cached.etag, coding).as_ref(),
        ))
        .insert_header((header::VARY, "Accept-Encoding"));
    if cached.outcome == CacheOutcome::Stale {
        builder.insert_header((header::AGE, cached.age.unwrap_or(0)));
    }
    if not_modified {
        return builder.finish();
    }
    builder.insert_header((header::CONTENT_TYPE, "application/json"));
    match coding {
        Some(coding) => builder
            .insert_header((header::CONTENT_ENCODING, coding.token()))
            .body(compression::compressed(&cached.etag, &cached.body, coding).await),
        None => builder.body(cached.body),
    }
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
