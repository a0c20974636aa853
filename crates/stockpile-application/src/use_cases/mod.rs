//! The use cases of API.md, one role trait a module, each implemented for [`Stockpile`]:
//! the cached reads, the writes, the live quotes, cache administration and operations. Handlers name the
//! role they need; [`StockService`] is all of them, what the HTTP layer holds.

mod cache_admin;
mod operations;
mod reads;
mod streams;
mod writes;

pub use self::cache_admin::CacheAdministration;
pub use self::operations::{DependencyHealth, Operations, Readiness, ReadinessVerdict};
pub use self::reads::{HistoryRequest, StockReads, MAX_QUOTE_TICKERS};
pub use self::streams::{QuoteStream, QuoteStreams, StreamCounters};
pub use self::writes::StockWrites;

#[cfg(doc)]
use crate::Stockpile;

/// Everything Stockpile does.
pub trait StockService:
    StockReads + StockWrites + QuoteStreams + CacheAdministration + Operations
{
}

impl<T: StockReads + StockWrites + QuoteStreams + CacheAdministration + Operations> StockService
    for T
{
}

#[cfg(test)]
mod tests;
