//! Every error answer is `application/problem+json` (RFC 9457). [`ApiError`] is the one error
//! type of the HTTP layer: handlers return it, and it maps [`AppError`] to a status exactly once.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;
use stockpile_application::{AppError, FieldError};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// How long a client should wait before retrying when the database is unavailable or the
/// instance serves as many streams as it may.
const RETRY_AFTER_SECONDS: u64 = 5;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status code and `title` carry the meaning, so there is no
    /// per-problem documentation page to point at.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: String,
    /// The HTTP reason phrase of `status`.
    #[schema(example = "Bad Request")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong with this request, in a sentence.
    #[schema(example = "the request is invalid")]
    pub detail: String,
    /// The invalid inputs, on validation errors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }

    /// The response carrying this problem, with the given status.
    pub fn respond(&self, builder: &mut HttpResponseBuilder) -> HttpResponse {
        match serde_json::to_vec(self) {
            Ok(body) => builder
                .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
                .body(body),
            // Serialising strings and numbers cannot fail; answer something valid regardless.
            Err(_) => builder
                .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
                .body(r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#),
        }
    }
}

/// Why the HTTP layer refuses or fails a request. The message is the problem's `detail`, so
/// it must never carry internals: causes stay in `Internal`'s source, for the log.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: a parameter, a path segment or a body field.
    #[error("the request is invalid; see errors")]
    Invalid(Vec<FieldError>),
    /// A body that is not JSON, or not the expected shape.
    #[error("{0}")]
    MalformedBody(String),
    /// No usable `Authorization` header.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Admin endpoints switched off, or the wrong token.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be sent as application/json")]
    UnsupportedMediaType,
    /// The body did not arrive in time; the number is the limit in seconds.
    #[error("the request body did not arrive within {0} s; send it at once")]
    BodyTimeout(u64),
    /// The database is down or overloaded: worth retrying.
    #[error("the database is unavailable; retry after the time in Retry-After")]
    Unavailable,
    /// The cache could not be reached for an administrative operation.
    #[error("the cache is unavailable")]
    CacheUnavailable,
    /// This instance serves as much as it may (live-quote streams), or is shutting down.
    #[error("{0}")]
    Overloaded(String),
    /// A bug or broken invariant. The cause is logged when the response is built, never sent.
    #[error("an internal error occurred")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    fn problem(&self) -> Problem {
        let mut problem = Problem::new(self.status_code(), self.to_string());
        if let Self::Invalid(errors) = self {
            problem.errors = Some(errors.clone());
        }
        problem
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound(what) => Self::NotFound(what),
            AppError::Invalid(errors) => Self::Invalid(errors),
            AppError::Unavailable(cause) => {
                // Not a bug, but operators want to see it; the client only learns "retry".
                tracing::warn!(error.cause_chain = ?cause, "the database is unavailable");
                Self::Unavailable
            }
            AppError::CacheUnavailable(cause) => {
                tracing::warn!(error.cause = %cause, "the cache is unavailable");
                Self::CacheUnavailable
            }
            AppError::Overloaded(why) => Self::Overloaded(why),
            AppError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid(_) | Self::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable | Self::CacheUnavailable | Self::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            // The whole chain goes to the log, inside the request's span; the body stays generic.
            tracing::error!(error.cause_chain = ?cause, "internal error");
        }
        let mut builder = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthenticated(_) => {
                builder
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::Unavailable | Self::Overloaded(_) => {
                builder.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        self.problem().respond(&mut builder)
    }
}
