//! The ports the use cases need: a store of stocks and bars, and a cache of answers.

mod cache;
mod repository;

#[cfg(any(test, feature = "mocks"))]
pub use cache::MockCache;
pub use cache::{
    Cache, CacheBackend, CacheError, CacheFaults, CacheState, CacheStatus, RedisTopology,
};
#[cfg(any(test, feature = "mocks"))]
pub use repository::MockStockRepository;
pub use repository::{
    DetailRecord, PeriodReturnRecord, RepositoryError, StockPage, StockRecord, StockRepository,
    UpsertOutcome,
};
