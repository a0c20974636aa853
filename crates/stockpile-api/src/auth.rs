//! Admin authentication: `Authorization: Bearer <ADMIN_TOKEN>`, checked by an extractor that
//! never touches the body, so a handler taking [`Admin`] first answers 401/403 before it could
//! answer 413 or 415.

use std::fmt;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;
use crate::ApiState;

/// The bearer token of the admin endpoints. Its `Debug` never shows it, so it can sit in
/// structures that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// Constant-time in the token's content, so response timing does not reveal how many
    /// leading bytes a guess got right. (The length may leak; it is not the secret.)
    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Proof that the request carries the configured admin token.
#[derive(Debug)]
pub struct Admin;

/// The token of a well-formed `Authorization: Bearer <token>` header: the scheme
/// (case-insensitive, as RFC 9110 says of auth schemes), one space, then one token with no
/// whitespace. Anything else is `None`.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.chars().any(|c| c.is_whitespace() || c.is_control());
    well_formed.then_some(token)
}

fn authenticate(req: &HttpRequest) -> Result<Admin, ApiError> {
    let configured = req
        .app_data::<web::Data<ApiState>>()
        .and_then(|state| state.admin_token.as_ref());
    let Some(expected) = configured else {
        // Switched off: every admin request is refused, whatever it carries.
        return Err(ApiError::Forbidden(
            "admin endpoints are switched off: no ADMIN_TOKEN is configured",
        ));
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated(
            "this endpoint needs an Authorization: Bearer <token> header",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthenticated(
            "the Authorization header must be 'Bearer' followed by one token",
        ))?;
    if expected.matches(token) {
        Ok(Admin)
    } else {
        Err(ApiError::Forbidden("the token is not valid"))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = AdminToken::new("s3cret-s3cret".into());
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(token)), "Some([redacted])");
    }

    #[test]
    fn only_one_bearer_token_is_well_formed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        for malformed in [
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer a b",
            "Bearer a\tb",
            "Basic abc",
            "abc",
            "",
        ] {
            assert_eq!(bearer_token(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn tokens_compare_by_content() {
        let token = AdminToken::new("abc".into());
        assert!(token.matches("abc"));
        assert!(!token.matches("abd"));
        assert!(!token.matches("ab"));
        assert!(!token.matches(""));
    }
}
