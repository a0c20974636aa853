//! The ports the use cases need: a store of stocks and bars, a cache of answers, and the
//! channel on which instances tell each other of quote changes.

mod cache;
mod quote_events;
mod repository;

#[cfg(any(test, feature = "mocks"))]
pub use cache::MockCache;
pub use cache::{
    Cache, CacheBackend, CacheError, CacheFaults, CacheState, CacheStatus, Coherence, RedisTopology,
};
#[cfg(any(test, feature = "mocks"))]
pub use quote_events::MockQuoteEvents;
pub use quote_events::{QuoteChange, QuoteEvents};
#[cfg(any(test, feature = "mocks"))]
pub use repository::MockStockRepository;
pub use repository::{
    DetailRecord, PeriodReturnRecord, RepositoryError, StockPage, StockRecord, StockRepository,
    UpsertOutcome,
};
