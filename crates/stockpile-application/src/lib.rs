//! Stockpile's use cases and the ports they need.
//!
//! Inbound, handlers call the role traits of [`use_cases`] ([`StockService`] is all of them),
//! implemented by [`Stockpile`]; outbound, the use cases reach the database through
//! [`ports::StockRepository`] and the cache through [`ports::Cache`]. Every read and write goes
//! through [`cache_aside`]: a read's answer is the serialised response body, so a hit costs no
//! database work and no serialisation; a write removes the entries it makes stale before it
//! returns, then tells the live-quote streams of every instance ([`live_quotes`] in this
//! process, [`ports::QuoteEvents`] to the others) what it left of the ticker's quote.
//!
//! Nothing here knows about HTTP, SQL or Redis (the OpenAPI schemas of the bodies are derived
//! only with the `openapi` feature, which the HTTP layer turns on).

pub mod cache_aside;
pub mod cache_keys;
mod error;
pub mod live_quotes;
pub mod metrics;
pub mod ports;
mod service;
pub mod use_cases;
pub mod views;

pub use error::{AppError, FieldError, NO_STOCK_HAS_THE_TICKER};
pub use service::{ServiceSettings, Stockpile};
pub use use_cases::{
    CacheAdministration, DependencyHealth, HistoryRequest, Operations, QuoteStream, QuoteStreams,
    Readiness, ReadinessVerdict, StockReads, StockService, StockWrites, StreamCounters,
    MAX_QUOTE_TICKERS,
};
