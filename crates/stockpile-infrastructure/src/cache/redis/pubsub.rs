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

    /// Publishes `message` on the invalidation channel; returns how many subscribers got it.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn publish_invalidation(&self, message: &str) -> Result<u64, CacheError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.invalidation_channel()).arg(message);
        self.connections.run(&publish).await
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
