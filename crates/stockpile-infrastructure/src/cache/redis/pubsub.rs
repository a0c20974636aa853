//! The channels between instances: invalidations (what became stale) and quote changes (for
//! the live-quote streams). What the messages say is [`crate::cache::invalidation`]'s and
//! [`crate::cache::quote_events`]'s business; this module only carries them.

use bb8_redis::redis::{self, aio::PubSub};
use stockpile_application::ports::CacheError;

use super::RedisCache;

impl RedisCache {
    /// The pub/sub channel of invalidations, under the prefix.
    pub(crate) fn invalidation_channel(&self) -> String {
        format!("{}__invalidate", self.key_prefix)
    }

    /// Publishes `messages` on the invalidation channel, in order, in one round trip.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn publish_invalidations(
        &self,
        messages: &[String],
    ) -> Result<(), CacheError> {
        let channel = self.invalidation_channel();
        let mut pipeline = redis::pipe();
        for message in messages {
            pipeline.cmd("PUBLISH").arg(&channel).arg(message).ignore();
        }
        self.connections.run::<()>(&pipeline).await
    }

    /// A dedicated pub/sub connection subscribed to the invalidation channel, within the
    /// connect and command timeouts.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time or refuses.
    pub(crate) async fn subscribe_invalidations(&self) -> Result<PubSub, CacheError> {
        self.connections
            .subscribe(&self.invalidation_channel())
            .await
    }
}

impl RedisCache {
    /// The pub/sub channel of quote changes, under the prefix.
    fn quote_channel(&self) -> String {
        format!("{}__quotes", self.key_prefix)
    }

    /// Publishes one quote change, within the command timeout.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn publish_quote(&self, payload: &[u8]) -> Result<(), CacheError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.quote_channel()).arg(payload);
        self.connections.run::<()>(&publish).await
    }

    /// A dedicated pub/sub connection subscribed to the quote changes.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time or refuses.
    pub(crate) async fn subscribe_quotes(&self) -> Result<PubSub, CacheError> {
        self.connections.subscribe(&self.quote_channel()).await
    }
}
