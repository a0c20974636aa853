//! Quote changes between instances over Redis pub/sub ([`RedisQuoteEvents`]), on the channel
//! `<prefix>__quotes`, and their messages: one type, one encoder, one parser.
//!
//! On the wire a payload is `<origin> quote <TICKER> <summary JSON>` or
//! `<origin> removed <TICKER>`; the origin names the sending instance, which skips its own
//! messages (it delivered the change to its streams itself).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use stockpile_application::ports::{CacheError, QuoteChange, QuoteEvents};
use stockpile_domain::Ticker;
use tokio::sync::mpsc;

use super::redis::{instance_token, RedisCache};
use super::RedisSettings;

/// The first wait before subscribing again after the subscription dropped; doubled per
/// failed attempt up to [`RESUBSCRIBE_MAX_BACKOFF`].
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How many received changes wait for this process's streams before the subscriber stops
/// reading Redis (which buffers them in turn).
const RECEIVED_BACKLOG: usize = 1024;

/// How long publishing is skipped after a `PUBLISH` failed: a slow or unreachable Redis then
/// costs one write a command timeout, not every write (the cache itself stops asking Redis at
/// its first failure, until its probe finds it back).
const PUBLISH_PAUSE: Duration = Duration::from_secs(1);

/// A [`QuoteChange`] and the instance that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QuoteMessage {
    origin: String,
    change: QuoteChange,
}

impl QuoteMessage {
    fn encode(&self) -> Vec<u8> {
        let Self { origin, change } = self;
        match &change.summary {
            Some(summary) => {
                let mut payload = format!("{origin} quote {} ", change.ticker).into_bytes();
                payload.extend_from_slice(summary);
                payload
            }
            None => format!("{origin} removed {}", change.ticker).into_bytes(),
        }
    }

    /// The message a payload encodes; `None` for anything [`QuoteMessage::encode`] cannot
    /// have written.
    fn parse(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let (origin, rest) = text.split_once(' ')?;
        if origin.is_empty() {
            return None;
        }
        let (ticker, summary) = match rest.split_once(' ')? {
            ("quote", rest) => {
                let (ticker, summary) = rest.split_once(' ')?;
                (ticker, Some(Bytes::copy_from_slice(summary.as_bytes())))
            }
            ("removed", ticker) => (ticker, None),
            _ => return None,
        };
        Some(Self {
            origin: origin.to_owned(),
            change: QuoteChange {
                ticker: Ticker::parse(ticker)
                    .ok()
                    .filter(|t| t.as_str() == ticker)?,
                summary,
            },
        })
    }
}

/// Quote changes over the Redis the cache uses, through a client of its own (its pool opens
/// connections on first use; subscribers hold one pub/sub connection each).
#[derive(Debug, Clone)]
pub struct RedisQuoteEvents {
    redis: Arc<RedisCache>,
    /// Tells this instance's messages from the others'.
    origin: Arc<str>,
    /// Until when publishing is skipped after a failure; see [`PUBLISH_PAUSE`].
    paused_until: Arc<Mutex<Option<Instant>>>,
}

impl RedisQuoteEvents {
    /// Quote changes over the Redis `settings` name; nothing is opened yet.
    ///
    /// # Panics
    /// Outside a Tokio runtime (see [`RedisCache::new`]).
    pub fn new(settings: &RedisSettings) -> Self {
        Self {
            redis: Arc::new(RedisCache::new(settings)),
            origin: instance_token().into(),
            paused_until: Arc::default(),
        }
    }
}

#[async_trait]
impl QuoteEvents for RedisQuoteEvents {
    /// Skipped, as unavailable, for [`PUBLISH_PAUSE`] after a failure.
    async fn publish(&self, change: &QuoteChange) -> Result<(), CacheError> {
        let paused = || {
            self.paused_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if paused().is_some_and(|until| Instant::now() < until) {
            return Err(CacheError::Unavailable(
                "a PUBLISH failed a moment ago; changes stay on this instance for now".into(),
            ));
        }
        let message = QuoteMessage {
            origin: self.origin.to_string(),
            change: change.clone(),
        };
        let published = self.redis.publish_quote(&message.encode()).await;
        *paused() = published.is_err().then(|| Instant::now() + PUBLISH_PAUSE);
        published
    }

    /// A task of its own subscribes (again, with a backoff from 50 ms to 2 s, whenever the
    /// subscription drops) and hands the others' changes over until the stream is dropped.
    fn subscribe(&self) -> BoxStream<'static, QuoteChange> {
        let (sender, received) = mpsc::channel(RECEIVED_BACKLOG);
        tokio::spawn(relay(self.clone(), sender));
        futures::stream::unfold(received, |mut received| async move {
            received.recv().await.map(|change| (change, received))
        })
        .boxed()
    }
}

/// Forwards the other instances' changes to `sender` until its receiver is dropped.
async fn relay(events: RedisQuoteEvents, sender: mpsc::Sender<QuoteChange>) {
    let mut backoff = RESUBSCRIBE_BACKOFF;
    loop {
        let subscribed = tokio::select! {
            subscribed = events.redis.subscribe_quotes() => subscribed,
            () = sender.closed() => return,
        };
        let pubsub = match subscribed {
            Ok(pubsub) => {
                backoff = RESUBSCRIBE_BACKOFF;
                pubsub
            }
            Err(error) => {
                tracing::debug!(%error, "could not subscribe to quote changes yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RESUBSCRIBE_MAX_BACKOFF);
                continue;
            }
        };
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                () = sender.closed() => return,
            };
            let Some(message) = message else { break };
            match QuoteMessage::parse(message.get_payload_bytes()) {
                Some(message) if *message.origin == *events.origin => {}
                Some(message) => {
                    if sender.send(message.change).await.is_err() {
                        return;
                    }
                }
                None => tracing::warn!(
                    payload = %String::from_utf8_lossy(message.get_payload_bytes()),
                    "not a quote change; ignored"
                ),
            }
        }
        tracing::warn!("the quote-change subscription dropped; subscribing again");
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn message(ticker: &str, summary: Option<&str>) -> QuoteMessage {
        QuoteMessage {
            origin: "1a-2b-0".to_owned(),
            change: QuoteChange {
                ticker: Ticker::parse(ticker).unwrap(),
                summary: summary.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            },
        }
    }

    #[test]
    fn the_wire_format_is_the_one_every_instance_speaks() {
        let cases = [
            (
                r#"1a-2b-0 quote BRK.B {"ticker":"BRK.B","name":"A B"}"#,
                message("BRK.B", Some(r#"{"ticker":"BRK.B","name":"A B"}"#)),
            ),
            ("1a-2b-0 removed AAPL", message("AAPL", None)),
        ];
        for (wire, message) in cases {
            assert_eq!(message.encode(), wire.as_bytes());
            assert_eq!(QuoteMessage::parse(wire.as_bytes()), Some(message));
        }
    }

    #[test]
    fn garbage_is_rejected_not_misread() {
        for payload in [
            &b""[..],
            b"origin",
            b" quote AAPL {}",
            b"origin quote AAPL",
            b"origin quote aapl {}",
            b"origin quote !! {}",
            b"origin removed",
            b"origin removed AAPL extra",
            b"origin key gen:market",
            b"\xff quote AAPL {}",
        ] {
            assert_eq!(
                QuoteMessage::parse(payload),
                None,
                "{:?} was read as a message",
                String::from_utf8_lossy(payload)
            );
        }
    }

    proptest! {
        #[test]
        fn a_payload_reads_as_a_message_only_if_it_encodes_one(payload in any::<Vec<u8>>()) {
            if let Some(message) = QuoteMessage::parse(&payload) {
                prop_assert_eq!(message.encode(), payload);
            }
        }
    }
}
