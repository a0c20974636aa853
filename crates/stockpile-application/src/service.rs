//! [`Stockpile`], the one implementation of every use case: the ports it reaches and the
//! cache-aside layer every read and write goes through. The use cases themselves live in
//! [`crate::use_cases`], one role a module.

use std::sync::Arc;

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::cache_aside::{CacheAside, CachePolicy};
use crate::live_quotes::LiveQuotes;
use crate::metrics::CacheMetrics;
use crate::ports::{Cache, QuoteEvents, StockRepository};

/// What the service needs to know beyond its ports.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSettings {
    pub cache_policy: CachePolicy,
    /// The most live-quote streams open at once (`STREAM_MAX_CLIENTS`).
    pub max_streams: usize,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            cache_policy: CachePolicy::default(),
            max_streams: 10_000,
        }
    }
}

/// Stockpile over a repository and a cache.
pub struct Stockpile {
    pub(crate) repository: Arc<dyn StockRepository>,
    /// Every read and every write of the repository goes through it.
    pub(crate) cache_aside: CacheAside,
    /// This process's live-quote streams.
    pub(crate) live: Arc<LiveQuotes>,
    /// How quote changes reach the other instances; `None`: this process is alone.
    pub(crate) quote_events: Option<Arc<dyn QuoteEvents>>,
    /// Delivers the other instances' changes to this process's streams.
    relay: Option<JoinHandle<()>>,
}

impl Stockpile {
    pub fn new(
        repository: Arc<dyn StockRepository>,
        cache: Arc<dyn Cache>,
        metrics: Arc<CacheMetrics>,
        settings: ServiceSettings,
    ) -> Self {
        Self {
            repository,
            cache_aside: CacheAside::new(cache, metrics, settings.cache_policy),
            live: Arc::new(LiveQuotes::new(settings.max_streams)),
            quote_events: None,
            relay: None,
        }
    }

    /// The same, telling the other instances of its quote changes through `events` and
    /// delivering theirs to its streams.
    ///
    /// # Panics
    /// Outside a Tokio runtime: the relay is a task of its own.
    #[must_use]
    pub fn with_quote_events(mut self, events: Arc<dyn QuoteEvents>) -> Self {
        let mut changes = events.subscribe();
        let live = Arc::downgrade(&self.live);
        self.relay = Some(tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                let Some(live) = live.upgrade() else {
                    return;
                };
                live.deliver(&change);
            }
        }));
        self.quote_events = Some(events);
        self
    }
}

impl Drop for Stockpile {
    fn drop(&mut self) {
        if let Some(relay) = &self.relay {
            relay.abort();
        }
    }
}
