//! The invalidation channel: where instances tell each other what became stale. What the
//! messages say is [`crate::cache::invalidation`]'s business; this module only carries them.

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
