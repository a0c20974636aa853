use crate::ports::RepositoryError;

/// One invalid input field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a use case could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The named stock (or cache key) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input breaks a rule; each field says which.
    #[error("the request is invalid: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The database cannot be reached or is overloaded; retrying later may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] RepositoryError),
    /// The cache could not be reached for an administrative operation.
    #[error("the cache is unavailable: {0}")]
    CacheUnavailable(String),
    /// This instance serves as much of something as it may (live-quote streams), or is
    /// shutting down; retrying later, perhaps on another instance, may succeed.
    #[error("{0}")]
    Overloaded(String),
    /// Anything else: a bug or a broken invariant, logged in full and answered as 500.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The words of every answer about a ticker that no stock has (`no stock has the ticker
/// AAPL`): in problem bodies, logs and the OpenAPI document alike.
pub const NO_STOCK_HAS_THE_TICKER: &str = "no stock has the ticker";

impl AppError {
    /// The answer when no stock has the ticker.
    pub fn unknown_ticker(ticker: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{NO_STOCK_HAS_THE_TICKER} {ticker}"))
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<RepositoryError> for AppError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::NotFound(ticker) => Self::unknown_ticker(ticker),
            unavailable @ RepositoryError::Unavailable(_) => Self::Unavailable(unavailable),
            RepositoryError::Internal(e) => Self::Internal(e.into()),
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(error: serde_json::Error) -> Self {
        Self::Internal(Box::new(error))
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}
