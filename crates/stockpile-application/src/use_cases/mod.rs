//! The use cases of API.md, one role trait a module, each implemented for [`Stockpile`]:
//! the cached reads, the writes, cache administration and operations. Handlers name the
//! role they need; [`StockService`] is all of them, what the HTTP layer holds.

mod cache_admin;
mod operations;
mod reads;
mod writes;

pub use self::cache_admin::CacheAdministration;
pub use self::operations::{DependencyHealth, Operations, Readiness, ReadinessVerdict};
pub use self::reads::{HistoryRequest, StockReads, MAX_QUOTE_TICKERS};
pub use self::writes::StockWrites;

#[cfg(doc)]
use crate::Stockpile;

/// Everything Stockpile does.
pub trait StockService: StockReads + StockWrites + CacheAdministration + Operations {}

impl<T: StockReads + StockWrites + CacheAdministration + Operations> StockService for T {}

#[cfg(test)]
mod tests;
