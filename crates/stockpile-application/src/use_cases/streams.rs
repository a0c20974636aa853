//! Live quotes: a stream of a watchlist's quotes, its first events read like a batch of
//! quotes and the later ones handed over by the writes (see [`crate::live_quotes`]).

use async_trait::async_trait;
use stockpile_domain::Ticker;

use super::reads::check_quote_tickers;
use crate::live_quotes::{LiveEvent, Subscription};
use crate::service::Stockpile;
use crate::AppError;

/// An open live-quote stream.
#[derive(Debug)]
pub struct QuoteStream {
    /// One `quote` per ticker that has a stock, in the order the tickers were given.
    pub first: Vec<LiveEvent>,
    /// The changes of the tickers from the moment the stream opened.
    pub changes: Subscription,
}

/// What the streams of this instance have done since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounters {
    pub open: usize,
    pub events_sent: u64,
}

/// The live quotes.
#[async_trait]
pub trait QuoteStreams: Send + Sync {
    /// Opens a stream of 1 to [`super::MAX_QUOTE_TICKERS`] distinct tickers.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a bad number of tickers, [`AppError::Overloaded`] while the
    /// most streams are open or the server is shutting down, and what a batch of quotes
    /// answers when the first events cannot be read.
    async fn open_quote_stream(&self, tickers: Vec<Ticker>) -> Result<QuoteStream, AppError>;

    /// Ends every open stream and refuses new ones: the server is shutting down.
    fn end_quote_streams(&self);

    fn stream_counters(&self) -> StreamCounters;
}

#[async_trait]
impl QuoteStreams for Stockpile {
    async fn open_quote_stream(&self, tickers: Vec<Ticker>) -> Result<QuoteStream, AppError> {
        check_quote_tickers(&tickers)?;
        // Registered before the read: a write committed after it reaches the stream.
        let changes = self
            .live
            .open(&tickers)
            .map_err(|refused| AppError::Overloaded(refused.to_string()))?;
        let first: Vec<LiveEvent> = self
            .quote_summaries(tickers)
            .await?
            .into_iter()
            .flatten()
            .map(LiveEvent::quote)
            .collect();
        self.live.sent(first.len());
        Ok(QuoteStream { first, changes })
    }

    fn end_quote_streams(&self) {
        self.live.close();
    }

    fn stream_counters(&self) -> StreamCounters {
        StreamCounters {
            open: self.live.open_streams(),
            events_sent: self.live.events_sent(),
        }
    }
}
