//! Stockpile's use cases and the ports they need.
//!
//! Inbound, handlers call [`StockService`]; outbound, the use cases reach the database through
//! [`ports::StockRepository`] and the cache through [`ports::Cache`]. Every read is cache-aside
//! ([`cache_aside`]): the answer is the serialised response body, so a hit costs no database
//! work and no serialisation. Every write removes the entries it makes stale before it returns.
//!
//! Nothing here knows about HTTP, SQL or Redis.

pub mod cache_aside;
pub mod cache_keys;
mod error;
pub mod metrics;
pub mod ports;
mod service;
pub mod use_cases;
pub mod views;

pub use error::{AppError, FieldError, NO_STOCK_HAS_THE_TICKER};
pub use service::{
    CacheReadiness, DependencyHealth, HistoryRequest, Readiness, ServiceSettings, StockService,
    Stockpile,
};
