//! Where Redis is and how long the service waits for it.

use std::fmt;
use std::time::Duration;

use crate::redaction::redact_url;

/// Where Redis is and how long the service waits for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db`; the password never appears in `Debug` or errors.
    pub url: String,
    /// The namespace of every key, `stockpile:` by default.
    pub key_prefix: String,
    /// Connections kept open. Each is multiplexed, so a few serve many concurrent requests.
    pub pool_size: u32,
    /// The longest wait for a connection; kept short so that a dead Redis costs one short
    /// wait before the service falls back, rather than one per request.
    pub connect_timeout: Duration,
    /// The longest wait for any one command, after which it counts as unavailable.
    pub command_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            key_prefix: "stockpile:".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_millis(100),
            command_timeout: Duration::from_millis(100),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}
