//! Adapters of Stockpile's ports: where the use cases meet the outside world.
//!
//! - The repository adapter implements `StockRepository` on sea-orm, over SQLite (the embedded
//!   default) or PostgreSQL.
//! - The cache adapters implement `Cache`: Redis ([`RedisCache`]), this process's memory
//!   ([`MemoryCache`]), Redis with memory standing in while it is away ([`FallbackCache`]),
//!   and none at all ([`NullCache`]); [`build_cache`] picks one from [`CacheSettings`].
//! - [`RedisQuoteEvents`] implements `QuoteEvents`: quote changes between instances over
//!   Redis pub/sub.
//! - [`redaction`] hides the passwords of connection URLs wherever they could be shown.
//!
//! Invariants: driver errors are translated into the ports' errors here and never leak out;
//! no cache adapter reads, lists or deletes a key outside its prefix, and none sends `KEYS`,
//! `FLUSHDB` or `FLUSHALL`; nothing here logs or reports a password.

pub mod cache;
pub use cache::{
    build_cache, CacheBackendKind, CacheSettings, FallbackCache, MemoryCache, NullCache,
    RedisAddresses, RedisCache, RedisQuoteEvents, RedisServers, RedisSettings,
};

pub mod redaction;

pub mod repository;
pub use repository::{DatabaseOptions, SeaOrmStockRepository};
