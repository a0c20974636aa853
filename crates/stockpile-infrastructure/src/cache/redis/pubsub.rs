//! The channels between instances: invalidations (what became stale) with their
//! confirmations, and quote changes (for the live-quote streams). What the messages say is [`crate::cache::invalidation`]'s and
//! [`crate::cache::quote_events`]'s business; this module only carries them.

use bb8_redis::redis::{self, aio::PubSub};
use futures::future::try_join_all;
use stockpile_application::ports::CacheError;

use super::connection::OnShard;
use super::topology::Shard;
use super::RedisCache;

impl RedisCache {
    /// The pub/sub channel of invalidations, under the prefix.
    pub(crate) fn invalidation_channel(&self) -> String {
        format!("{}__invalidate", self.key_prefix)
    }

    /// The pub/sub channel on which the cache named `origin` hears that its invalidations
    /// were applied.
    pub(crate) fn confirmation_channel(&self, origin: &str) -> String {
        format!("{}__invalidated:{origin}", self.key_prefix)
    }

    /// Publishes `payloads` on the invalidation channel, at `shard` (where this instance's
    /// own subscription listens, and so, normally, every instance's); returns how many
    /// subscribers received them, all payloads together.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn publish_invalidations(
        &self,
        payloads: &[String],
        shard: &Shard,
    ) -> Result<u64, CacheError> {
        let channel = self.invalidation_channel();
        // Concurrently: over a multiplexed connection they travel pipelined all the same.
        let receivers = try_join_all(payloads.iter().map(|payload| {
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(&channel).arg(payload);
            async move {
                match self.connections.run::<u64>(&OnShard(shard, &publish)).await {
                    // The subscriptions' node gone (a failover under way): any node still
                    // reaches every subscriber, though it counts only its own.
                    Err(_) if *shard != Shard::Whole => self.connections.run::<u64>(&publish).await,
                    published => published,
                }
            }
        }))
        .await?;
        Ok(receivers.into_iter().sum())
    }

    /// Tells the cache named `origin` that its invalidation payload `id` was applied here.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time.
    pub(crate) async fn confirm_invalidation(
        &self,
        origin: &str,
        id: u64,
    ) -> Result<(), CacheError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.confirmation_channel(origin)).arg(id);
        self.connections.run::<()>(&publish).await
    }

    /// A dedicated pub/sub connection subscribed to the invalidation channel and to the
    /// confirmations of `origin`'s own invalidations, within the connect and command
    /// timeouts, and the shard it listens on.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis does not answer in time or refuses.
    pub(crate) async fn subscribe_invalidations(
        &self,
        origin: &str,
    ) -> Result<(PubSub, Shard), CacheError> {
        let channels = [
            self.invalidation_channel(),
            self.confirmation_channel(origin),
        ];
        self.connections.subscribe(&channels).await
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
        let (pubsub, _) = self.connections.subscribe(&[self.quote_channel()]).await?;
        Ok(pubsub)
    }
}
