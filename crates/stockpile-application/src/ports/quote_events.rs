use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use stockpile_domain::Ticker;

use super::CacheError;

/// What a write left of one ticker's quote, as the live-quote streams of every instance show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteChange {
    pub ticker: Ticker,
    /// The ticker's `StockSummary` as JSON on one line, the body of its quote entry; `None`
    /// when no stock has the ticker any more (it was deleted).
    pub summary: Option<Bytes>,
}

/// Carries quote changes between the instances sharing a cache (Redis: pub/sub).
///
/// The change carries the summary itself, read once by the instance that took the write, so
/// that no receiving instance has to read it again (through a first tier that may not have
/// applied the write's invalidation yet: two channels are not ordered with each other).
///
/// # Contract
/// - [`QuoteEvents::publish`] MUST NOT wait longer than the backend's command timeout.
/// - [`QuoteEvents::subscribe`] answers every change the *other* instances publish while it
///   can reach the backend (this instance delivers its own changes itself); it MUST
///   subscribe again by itself when the backend comes back, and end only when the adapter
///   is dropped.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait QuoteEvents: Send + Sync {
    /// Tells the other instances of `change`.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when the backend did not take it in time.
    async fn publish(&self, change: &QuoteChange) -> Result<(), CacheError>;

    /// The changes the other instances publish from now on.
    fn subscribe(&self) -> BoxStream<'static, QuoteChange>;
}
