//! Where Redis is and how long the service waits for it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::redaction::redact_url;

/// Where Redis is and how long the service waits for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// The standalone server, `redis://` or `rediss://` (TLS) `[user:password@]host:port/db`;
    /// the password never appears in `Debug` or errors. Unused by the other topologies.
    pub url: String,
    /// How the servers are found: the one at `url`, through Sentinels, or as a Cluster.
    pub servers: RedisServers,
    /// The user of Sentinel-managed and Cluster nodes (`REDIS_USERNAME`).
    pub username: Option<String>,
    /// Their password (`REDIS_PASSWORD`); never in `Debug` output, logs or errors.
    pub password: Option<String>,
    /// TLS to Sentinels, Sentinel-managed and Cluster nodes (`REDIS_TLS`); a standalone server
    /// speaks TLS when `url` is `rediss://`.
    pub tls: bool,
    /// The PEM file of the authority that signed the servers' certificates; `None`: the
    /// system's roots.
    pub tls_ca_file: Option<PathBuf>,
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

/// How the Redis servers are found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RedisServers {
    /// One server, at [`RedisSettings::url`].
    #[default]
    Standalone,
    /// Whichever master the Sentinels name `master`, found again after every failover.
    Sentinel {
        sentinels: RedisAddresses,
        master: String,
    },
    /// A Redis Cluster, discovered from any of these seed nodes.
    Cluster { seeds: RedisAddresses },
}

/// A non-empty list of `host:port`, written comma-separated (`REDIS_SENTINELS`,
/// `REDIS_CLUSTER_NODES`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedisAddresses(Vec<(String, u16)>);

impl RedisAddresses {
    pub fn iter(&self) -> impl Iterator<Item = (&str, u16)> {
        self.0.iter().map(|(host, port)| (host.as_str(), *port))
    }
}

impl FromStr for RedisAddresses {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        let addresses = list
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(|address| {
                address
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                    .filter(|(host, port)| !host.is_empty() && *port > 0)
                    .map(|(host, port)| (host.to_owned(), port))
                    .ok_or_else(|| format!("`{address}` is not HOST:PORT"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if addresses.is_empty() {
            return Err("no HOST:PORT given".to_owned());
        }
        Ok(Self(addresses))
    }
}

impl TryFrom<String> for RedisAddresses {
    type Error = String;

    fn try_from(list: String) -> Result<Self, String> {
        list.parse()
    }
}

impl From<RedisAddresses> for String {
    fn from(addresses: RedisAddresses) -> Self {
        addresses.to_string()
    }
}

impl fmt::Display for RedisAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listed: Vec<String> = self
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        f.write_str(&listed.join(","))
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            servers: RedisServers::Standalone,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
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
            .field("servers", &self.servers)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}
