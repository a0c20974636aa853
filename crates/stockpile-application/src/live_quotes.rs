//! The in-process fan-out of live quotes: which open stream watches which ticker, and the
//! delivery of each change to them.
//!
//! - Each stream has a bounded backlog ([`STREAM_BACKLOG`] events). Delivery never waits: a
//!   stream whose backlog is full is dropped from the registry at once (its subscription
//!   then ends after what it holds, and its [`Stalled`] fires for the HTTP layer to close the
//!   connection), so a client that stops reading never slows a write or another stream.
//! - An event is made once per change ([`LiveEvent`]: its data are shared bytes), however
//!   many streams watch the ticker.
//! - At most `max_streams` are open at once; [`LiveQuotes::close`] ends them all (shutdown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use stockpile_domain::Ticker;
use tokio::sync::{mpsc, oneshot};

use crate::ports::QuoteChange;
use crate::views::{json_body, RemovedTicker};

/// How many events a stream may hold that its client has not taken yet.
pub const STREAM_BACKLOG: usize = 64;

/// What a stream tells its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEventKind {
    /// The ticker's `StockSummary`.
    Quote,
    /// No stock has the ticker any more: `{"ticker": ...}`.
    Removed,
}

/// One event of a stream; cloning it shares its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    pub kind: LiveEventKind,
    /// JSON on one line.
    pub data: Bytes,
}

impl LiveEvent {
    pub(crate) fn quote(summary: Bytes) -> Self {
        Self {
            kind: LiveEventKind::Quote,
            data: summary,
        }
    }

    /// The event of a change: its summary, or the ticker's removal.
    fn of(change: &QuoteChange) -> Self {
        match &change.summary {
            Some(summary) => Self::quote(summary.clone()),
            None => Self {
                kind: LiveEventKind::Removed,
                data: json_body(&RemovedTicker {
                    ticker: change.ticker.to_string(),
                })
                // A struct of one string always serialises.
                .unwrap_or_default(),
            },
        }
    }
}

/// Why no stream was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} live-quote streams are open, the most this instance serves; retry later")]
    Full(usize),
    #[error("the server is shutting down")]
    ShuttingDown,
}

type StreamId = u64;

#[derive(Debug, Default)]
struct Registry {
    watchers: HashMap<Ticker, Vec<(StreamId, mpsc::Sender<LiveEvent>)>>,
    tickers_of: HashMap<StreamId, Vec<Ticker>>,
    /// What tells each stream's [`Stalled`] that its backlog overflowed.
    stall_alarms: HashMap<StreamId, oneshot::Sender<()>>,
    closed: bool,
}

impl Registry {
    fn remove(&mut self, stream: StreamId) {
        self.stall_alarms.remove(&stream);
        for ticker in self.tickers_of.remove(&stream).unwrap_or_default() {
            if let Some(watchers) = self.watchers.get_mut(&ticker) {
                watchers.retain(|(id, _)| *id != stream);
                if watchers.is_empty() {
                    self.watchers.remove(&ticker);
                }
            }
        }
    }
}

/// The open streams of this process.
#[derive(Debug)]
pub struct LiveQuotes {
    max_streams: usize,
    /// A `std::sync::Mutex`: held for map updates and non-blocking sends only, never across
    /// an `.await`.
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    events_sent: AtomicU64,
}

impl LiveQuotes {
    pub fn new(max_streams: usize) -> Self {
        Self {
            max_streams,
            registry: Mutex::default(),
            next_id: AtomicU64::new(0),
            events_sent: AtomicU64::new(0),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A poisoned lock only means another thread panicked mid-update; the maps stay usable.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new stream watching `tickers`, registered before anything is read for it so that
    /// no change is missed between its first events and the next.
    ///
    /// # Errors
    /// [`Refused`] when `max_streams` are open, or after [`LiveQuotes::close`].
    pub(crate) fn open(self: &Arc<Self>, tickers: &[Ticker]) -> Result<Subscription, Refused> {
        let (sender, events) = mpsc::channel(STREAM_BACKLOG);
        let (stall_alarm, stalled) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut registry = self.registry();
        if registry.closed {
            return Err(Refused::ShuttingDown);
        }
        if registry.tickers_of.len() >= self.max_streams {
            return Err(Refused::Full(self.max_streams));
        }
        for ticker in tickers {
            registry
                .watchers
                .entry(ticker.clone())
                .or_default()
                .push((id, sender.clone()));
        }
        registry.tickers_of.insert(id, tickers.to_vec());
        registry.stall_alarms.insert(id, stall_alarm);
        Ok(Subscription {
            id,
            events,
            stalled: Some(stalled),
            live: Arc::downgrade(self),
        })
    }

    /// Hands `change` to every stream watching its ticker, without waiting; a stream whose
    /// backlog is full is dropped, and its [`Stalled`] fires.
    pub fn deliver(&self, change: &QuoteChange) {
        let mut registry = self.registry();
        let Some(watchers) = registry.watchers.get(&change.ticker) else {
            return;
        };
        let event = LiveEvent::of(change);
        let mut dropped = Vec::new();
        for (id, sender) in watchers {
            match sender.try_send(event.clone()) {
                Ok(()) => {
                    self.events_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(
                        stream = id,
                        backlog = STREAM_BACKLOG,
                        "a live-quote client stopped reading; disconnecting it"
                    );
                    dropped.push((*id, true));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => dropped.push((*id, false)),
            }
        }
        for (id, stalled) in dropped {
            if let Some(alarm) = registry.stall_alarms.remove(&id).filter(|_| stalled) {
                // Its receiver may be gone already: then nobody is left to disconnect.
                let _ = alarm.send(());
            }
            registry.remove(id);
        }
    }

    /// Counts events a stream sent that no delivery counted (its first ones).
    pub(crate) fn sent(&self, events: usize) {
        self.events_sent
            .fetch_add(u64::try_from(events).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Ends every open stream (after what each holds) and refuses new ones: shutdown.
    pub fn close(&self) {
        let mut registry = self.registry();
        registry.closed = true;
        registry.watchers.clear();
        registry.tickers_of.clear();
        registry.stall_alarms.clear();
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        self.registry().tickers_of.len()
    }

    /// How many events the streams were given since the process started.
    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(Ordering::Relaxed)
    }
}

/// One stream's registration and backlog; dropping it closes the stream.
#[derive(Debug)]
pub struct Subscription {
    id: StreamId,
    events: mpsc::Receiver<LiveEvent>,
    /// Until [`Subscription::stalled`] takes it.
    stalled: Option<oneshot::Receiver<()>>,
    live: Weak<LiveQuotes>,
}

/// Whether a stream was dropped because its client stopped reading: the stream's body is no
/// longer polled then (the HTTP server waits for the socket to drain first), so whoever holds
/// the connection must close it, or the client would hold it for as long as it likes.
#[derive(Debug)]
pub struct Stalled(oneshot::Receiver<()>);

impl Stalled {
    /// True once the stream's backlog overflowed; false once it ended otherwise (its
    /// subscription dropped, or shutdown), and never both.
    pub async fn wait(self) -> bool {
        self.0.await.is_ok()
    }
}

impl Subscription {
    /// What tells whether this stream is dropped for a full backlog; a second call gets one
    /// that never says so.
    pub fn stalled(&mut self) -> Stalled {
        Stalled(self.stalled.take().unwrap_or_else(|| oneshot::channel().1))
    }

    /// The next change of a watched ticker; `None` once the stream is over (its backlog
    /// overflowed, or the server is shutting down).
    pub async fn next(&mut self) -> Option<LiveEvent> {
        self.events.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(live) = self.live.upgrade() {
            live.registry().remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticker(name: &str) -> Ticker {
        Ticker::parse(name).unwrap()
    }

    fn change(name: &str, summary: Option<&'static str>) -> QuoteChange {
        QuoteChange {
            ticker: ticker(name),
            summary: summary.map(|s| Bytes::from_static(s.as_bytes())),
        }
    }

    #[tokio::test]
    async fn a_change_reaches_the_streams_of_its_ticker_only() {
        let live = Arc::new(LiveQuotes::new(10));
        let mut aapl = live.open(&[ticker("AAPL"), ticker("MSFT")]).unwrap();
        let mut msft = live.open(&[ticker("MSFT")]).unwrap();
        live.deliver(&change("AAPL", Some("{\"a\":1}")));
        live.deliver(&change("MSFT", None));
        assert_eq!(aapl.next().await.unwrap().data.as_ref(), b"{\"a\":1}");
        let removed = aapl.next().await.unwrap();
        assert_eq!(removed.kind, LiveEventKind::Removed);
        assert_eq!(removed.data.as_ref(), br#"{"ticker":"MSFT"}"#);
        assert_eq!(msft.next().await.unwrap(), removed);
        assert!(msft.events.try_recv().is_err());
        assert_eq!(live.events_sent(), 3);
    }

    #[tokio::test]
    async fn streams_for_one_ticker_share_one_event() {
        let live = Arc::new(LiveQuotes::new(10));
        let mut first = live.open(&[ticker("AAPL")]).unwrap();
        let mut second = live.open(&[ticker("AAPL")]).unwrap();
        live.deliver(&change("AAPL", Some("{}")));
        let (a, b) = (first.next().await.unwrap(), second.next().await.unwrap());
        assert_eq!(a.data.as_ptr(), b.data.as_ptr());
    }

    #[tokio::test]
    async fn a_full_backlog_drops_that_stream_and_no_other() {
        let live = Arc::new(LiveQuotes::new(10));
        let mut stalled = live.open(&[ticker("AAPL")]).unwrap();
        let mut reading = live.open(&[ticker("AAPL")]).unwrap();
        for _ in 0..=STREAM_BACKLOG {
            live.deliver(&change("AAPL", Some("{}")));
            assert!(reading.next().await.is_some());
        }
        assert_eq!(live.open_streams(), 1);
        for _ in 0..STREAM_BACKLOG {
            assert!(stalled.next().await.is_some());
        }
        assert_eq!(stalled.next().await, None, "the stalled stream ends");
        live.deliver(&change("AAPL", Some("{}")));
        assert!(reading.next().await.is_some());
    }

    #[tokio::test]
    async fn stalled_says_whether_a_full_backlog_ended_the_stream() {
        let live = Arc::new(LiveQuotes::new(10));
        let mut overflowing = live.open(&[ticker("AAPL")]).unwrap();
        let mut left = live.open(&[ticker("AAPL")]).unwrap();
        let mut shut = live.open(&[ticker("MSFT")]).unwrap();
        let (overflowed, gone, closed) = (overflowing.stalled(), left.stalled(), shut.stalled());
        drop(left);
        assert!(!gone.wait().await, "a client that left did not stall");
        for _ in 0..=STREAM_BACKLOG {
            live.deliver(&change("AAPL", Some("{}")));
        }
        assert!(overflowed.wait().await);
        live.close();
        assert!(!closed.wait().await, "shutdown is not a stall");
        assert!(!overflowing.stalled().wait().await, "taken once");
    }

    #[tokio::test]
    async fn streams_are_bounded_and_closed_at_shutdown() {
        let live = Arc::new(LiveQuotes::new(2));
        let first = live.open(&[ticker("A")]).unwrap();
        let mut second = live.open(&[ticker("B")]).unwrap();
        assert_eq!(live.open(&[ticker("C")]).unwrap_err(), Refused::Full(2));
        drop(first);
        assert_eq!(live.open_streams(), 1);
        let _third = live.open(&[ticker("C")]).unwrap();
        live.close();
        assert_eq!(second.next().await, None);
        assert_eq!(
            live.open(&[ticker("D")]).unwrap_err(),
            Refused::ShuttingDown
        );
        assert_eq!(live.open_streams(), 0);
    }
}
