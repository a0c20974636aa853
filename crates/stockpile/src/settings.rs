//! Typed settings, layered by figment exactly as API.md's "Configuration" says: built-in
//! defaults, then a TOML file (`stockpile.toml` in the working directory, or the path in
//! `STOCKPILE_CONFIG`), then environment variables, each overriding the one before.
//!
//! [`Settings`] is a tree of sections, one per adapter (`http`, `database`, `cache`, `redis`,
//! `stream`, `admin`, `log`), and the composition root hands each adapter its own. The file and the
//! environment stay flat, one key per variable; [`FlatSettings`] moves each key into its
//! section, and the variables it knows are the tree's own fields ([`Settings::variables`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use stockpile_api::{ClientLimits, DEFAULT_STREAM_HEARTBEAT};
use stockpile_application::cache_aside::CachePolicy;
use stockpile_application::ServiceSettings;
pub use stockpile_infrastructure::CacheBackendKind;
use stockpile_infrastructure::{DatabaseOptions, RedisAddresses, RedisServers};

/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://stockpile.db?mode=rwc";
/// The Redis used when none is named.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// A secret that never appears in `Debug` output, logs or error messages.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

/// Accepts any scalar, so that a token of digits (which figment reads from the environment
/// as a number) is never refused with an error message that quotes it.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl serde::de::Visitor<'_> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        deserializer.deserialize_any(SecretVisitor)
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A connection URL whose password is redacted in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, safe to log.
    pub fn redacted(&self) -> String {
        redact_url_password(&self.0)
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The URL with its passwords hidden; see `stockpile_infrastructure::redaction`.
pub fn redact_url_password(url: &str) -> String {
    stockpile_infrastructure::redaction::redact_url(url)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The service's settings: one section per adapter, each handed to the adapter that needs it.
///
/// The variables are declared here and nowhere else: a field's serde name is its variable in
/// lower case, and [`Settings::variables`] reads them off the serialised defaults, so the file
/// and the environment accept exactly the fields of this tree.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `APP_ENV`: the whole service's, so it stands outside the sections.
    pub app_env: AppEnv,
    pub http: HttpSection,
    pub database: DatabaseSection,
    pub cache: CacheSection,
    pub redis: RedisSection,
    pub stream: StreamSection,
    pub admin: AdminSection,
    pub log: LogSection,
}

/// The HTTP server's section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(rename = "bind_addr")]
    pub bind_addr: String,
    /// Seconds; the default is the server's own ([`ClientLimits`]), `0` switches keep-alive off.
    #[serde(rename = "http_keep_alive_s")]
    pub keep_alive_s: u64,
}

impl HttpSection {
    /// The longest `HTTP_KEEP_ALIVE_S` accepted: an hour is far past any load balancer's idle
    /// timeout, and a bound keeps the server's timer arithmetic from overflowing.
    pub const MAX_KEEP_ALIVE_S: u64 = 3600;

    /// How long an idle keep-alive connection stays open (zero: keep-alive is off).
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_s)
    }

    fn check(&self) -> Result<(), SettingsError> {
        // Checked here, not at bind, so a typo stops the start before migrating and seeding,
        // with the line every other bad setting gets.
        let has_host_and_port = self
            .bind_addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_host_and_port {
            return Err(SettingsError::Invalid(format!(
                "BIND_ADDR must be HOST:PORT (127.0.0.1:8080; port 0 picks a free one), not `{}`",
                self.bind_addr
            )));
        }
        if self.keep_alive_s > Self::MAX_KEEP_ALIVE_S {
            return Err(SettingsError::Invalid(format!(
                "HTTP_KEEP_ALIVE_S must be at most {} seconds (0 switches keep-alive off), not {}",
                Self::MAX_KEEP_ALIVE_S,
                self.keep_alive_s
            )));
        }
        Ok(())
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            bind_addr: "127.0.0.1:8080".into(),
            keep_alive_s: ClientLimits::default().keep_alive.as_secs(),
        }
    }
}

/// The database's section, handed to the repository adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    #[serde(rename = "database_url")]
    pub url: ConnectionUrl,
    #[serde(rename = "database_max_connections")]
    pub max_connections: u32,
    /// How long a query waits for a database connection before the answer is a 503 (or a
    /// stale entry): the longest a request can hang on an unreachable database.
    #[serde(rename = "database_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// How long PostgreSQL may run one statement before cancelling it (a 503 for the request),
    /// so a hung query cannot hold a pooled connection forever.
    #[serde(rename = "database_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

impl DatabaseSection {
    /// True when the database is the embedded default SQLite file.
    pub fn is_embedded_default(&self) -> bool {
        self.url.expose() == DEFAULT_DATABASE_URL
    }

    /// True when the database is a SQLite file, the default or another.
    pub fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }

    /// The repository adapter's pool options.
    pub fn options(&self) -> DatabaseOptions {
        DatabaseOptions {
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            url: ConnectionUrl(DEFAULT_DATABASE_URL.into()),
            max_connections: 10,
            acquire_timeout_ms: 3000,
            statement_timeout_ms: 5000,
        }
    }
}

/// The cache's section: which backend, its keys, and how long entries live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    #[serde(rename = "cache_backend")]
    pub backend: CacheBackendKind,
    #[serde(rename = "cache_key_prefix")]
    pub key_prefix: String,
    #[serde(rename = "cache_ttl_default")]
    pub ttl_default: u64,
    #[serde(rename = "cache_ttl_scores")]
    pub ttl_scores: u64,
    #[serde(rename = "cache_stale_if_error")]
    pub stale_if_error: u64,
    /// Milliseconds a read with an expired entry at hand waits for the database before it
    /// answers that entry as stale.
    #[serde(rename = "cache_soft_timeout_ms")]
    pub soft_timeout_ms: u64,
    #[serde(rename = "cache_local_ttl")]
    pub local_ttl: u64,
    #[serde(rename = "cache_memory_max_bytes")]
    pub memory_max_bytes: u64,
}

impl CacheSection {
    /// The lifetimes the cache-aside layer gives its entries.
    pub fn policy(&self) -> CachePolicy {
        CachePolicy {
            ttl_default: Duration::from_secs(self.ttl_default),
            ttl_scores: Duration::from_secs(self.ttl_scores),
            stale_if_error: Duration::from_secs(self.stale_if_error),
            soft_timeout: Duration::from_millis(self.soft_timeout_ms),
        }
    }

    fn check(&self) -> Result<(), SettingsError> {
        if self.key_prefix.is_empty() {
            return Err(SettingsError::Invalid(
                "CACHE_KEY_PREFIX must not be empty".into(),
            ));
        }
        Ok(())
    }
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            backend: CacheBackendKind::Auto,
            key_prefix: "stockpile:".into(),
            ttl_default: 300,
            ttl_scores: 600,
            stale_if_error: 3600,
            soft_timeout_ms: 250,
            local_ttl: 5,
            memory_max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How Redis is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `None` when not set explicitly: production refuses `CACHE_BACKEND=redis` then.
    #[serde(rename = "redis_url")]
    pub url: Option<ConnectionUrl>,
    /// `false` keeps Redis out entirely: `auto` and `redis` become `memory`.
    #[serde(rename = "redis_enabled")]
    pub enabled: bool,
    #[serde(rename = "redis_pool_size")]
    pub pool_size: u32,
    #[serde(rename = "redis_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(rename = "redis_command_timeout_ms")]
    pub command_timeout_ms: u64,
    /// The Sentinels' `host:port` list; with `sentinel_master`, the Sentinel topology.
    #[serde(rename = "redis_sentinels")]
    pub sentinels: Option<RedisAddresses>,
    #[serde(rename = "redis_sentinel_master")]
    pub sentinel_master: Option<String>,
    /// Seed nodes of a Redis Cluster.
    #[serde(rename = "redis_cluster_nodes")]
    pub cluster_nodes: Option<RedisAddresses>,
    /// Credentials of Sentinel-managed and Cluster nodes.
    #[serde(rename = "redis_username")]
    pub username: Option<String>,
    #[serde(rename = "redis_password")]
    pub password: Option<Secret>,
    /// TLS to Sentinels and Sentinel-managed or Cluster nodes (standalone: `rediss://`).
    #[serde(rename = "redis_tls")]
    pub tls: bool,
    #[serde(rename = "redis_tls_ca_file")]
    pub tls_ca_file: Option<PathBuf>,
}

impl RedisSection {
    /// The Redis URL in force (the default when none is set).
    pub fn effective_url(&self) -> ConnectionUrl {
        self.url
            .clone()
            .unwrap_or_else(|| ConnectionUrl(DEFAULT_REDIS_URL.into()))
    }

    /// Whether any topology is named explicitly (`REDIS_URL`, `REDIS_SENTINELS` or
    /// `REDIS_CLUSTER_NODES`), rather than the default standalone address.
    pub fn is_named(&self) -> bool {
        self.url.is_some() || self.sentinels.is_some() || self.cluster_nodes.is_some()
    }

    /// How the servers are found: exactly one topology, or why the settings name none.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] when they name two, or half of the Sentinel one.
    pub fn servers(&self) -> Result<RedisServers, SettingsError> {
        let two = |other: &str| {
            SettingsError::Invalid(format!(
                "{other} and REDIS_CLUSTER_NODES name two Redis topologies; set exactly one"
            ))
        };
        let servers =
            match (&self.sentinels, &self.sentinel_master, &self.cluster_nodes) {
                (None, None, None) => RedisServers::Standalone,
                (Some(_), _, Some(_)) => return Err(two("REDIS_SENTINELS")),
                (_, Some(_), Some(_)) => return Err(two("REDIS_SENTINEL_MASTER")),
                (Some(sentinels), Some(master), None) => RedisServers::Sentinel {
                    sentinels: sentinels.clone(),
                    master: master.clone(),
                },
                (Some(_), None, None) => {
                    return Err(SettingsError::Invalid(
                        "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name of the master the \
                     Sentinels monitor"
                            .into(),
                    ))
                }
                (None, Some(_), None) => return Err(SettingsError::Invalid(
                    "REDIS_SENTINEL_MASTER needs REDIS_SENTINELS, the Sentinels' HOST:PORT list"
                        .into(),
                )),
                (None, None, Some(seeds)) => RedisServers::Cluster {
                    seeds: seeds.clone(),
                },
            };
        if self.url.is_some() && servers != RedisServers::Standalone {
            let other = if self.cluster_nodes.is_some() {
                "REDIS_CLUSTER_NODES"
            } else {
                "REDIS_SENTINELS"
            };
            return Err(SettingsError::Invalid(format!(
                "REDIS_URL and {other} name two Redis topologies; set exactly one"
            )));
        }
        Ok(servers)
    }

    fn check(&self) -> Result<(), SettingsError> {
        let standalone = self.servers()? == RedisServers::Standalone;
        let standalone_tls = self.effective_url().expose().starts_with("rediss://");
        if self.tls && standalone && !standalone_tls {
            return Err(SettingsError::Invalid(
                "REDIS_TLS=true applies to Sentinels and Cluster nodes; reach a standalone Redis \
                 over TLS with a rediss:// REDIS_URL"
                    .into(),
            ));
        }
        if let Some(file) = &self.tls_ca_file {
            if !(self.tls || standalone && standalone_tls) {
                return Err(SettingsError::Invalid(
                    "REDIS_TLS_CA_FILE is set but Redis is not reached over TLS; set REDIS_TLS=true \
                     (Sentinel, Cluster) or a rediss:// REDIS_URL"
                        .into(),
                ));
            }
            if let Err(e) = std::fs::File::open(file) {
                return Err(SettingsError::Invalid(format!(
                    "REDIS_TLS_CA_FILE {} cannot be read: {e}",
                    file.display()
                )));
            }
        }
        Ok(())
    }
}

impl Default for RedisSection {
    fn default() -> Self {
        Self {
            url: None,
            enabled: true,
            pool_size: 8,
            connect_timeout_ms: 100,
            command_timeout_ms: 100,
            sentinels: None,
            sentinel_master: None,
            cluster_nodes: None,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
        }
    }
}

/// The live-quote streams' section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    /// Open streams per instance; past it a new one is refused with 503.
    #[serde(rename = "stream_max_clients")]
    pub max_clients: usize,
    /// Seconds without an event after which a stream gets a keep-alive comment.
    #[serde(rename = "stream_heartbeat_s")]
    pub heartbeat_s: u64,
}

impl StreamSection {
    /// The longest `STREAM_HEARTBEAT_S` accepted: proxies cut streams idle for about a minute,
    /// so a longer heartbeat would not keep them open.
    pub const MAX_HEARTBEAT_S: u64 = 3600;

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_s)
    }

    fn check(&self) -> Result<(), SettingsError> {
        if !(1..=Self::MAX_HEARTBEAT_S).contains(&self.heartbeat_s) {
            return Err(SettingsError::Invalid(format!(
                "STREAM_HEARTBEAT_S must be 1 to {} seconds, not {}",
                Self::MAX_HEARTBEAT_S,
                self.heartbeat_s
            )));
        }
        Ok(())
    }
}

impl Default for StreamSection {
    fn default() -> Self {
        Self {
            max_clients: ServiceSettings::default().max_streams,
            heartbeat_s: DEFAULT_STREAM_HEARTBEAT.as_secs(),
        }
    }
}

/// The admin endpoints' section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Unset switches the admin endpoints off.
    #[serde(rename = "admin_token")]
    pub token: Option<Secret>,
}

impl AdminSection {
    fn check(&self) -> Result<(), SettingsError> {
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty() || t.expose().contains(char::is_whitespace))
        {
            return Err(SettingsError::Invalid(
                "ADMIN_TOKEN must be one word without spaces".into(),
            ));
        }
        Ok(())
    }
}

/// The log's section (`RUST_LOG`, the filter, is read by the subscriber itself).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `pretty` or `json`; unset: pretty on a terminal, json otherwise.
    #[serde(rename = "log_format")]
    pub format: Option<LogFormat>,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("refusing to start in production: {0}")]
    UnsafeForProduction(String),
}

impl From<figment::Error> for SettingsError {
    fn from(error: figment::Error) -> Self {
        // figment names the offending key and where it came from (file or environment).
        Self::Invalid(error.to_string())
    }
}

impl Settings {
    /// Defaults, then the TOML file, then the process environment.
    ///
    /// # Errors
    /// [`SettingsError`] for an unreadable or unknown setting, or an unsafe production setup.
    pub fn load() -> Result<Self, SettingsError> {
        let file = std::env::var_os("STOCKPILE_CONFIG")
            .map_or_else(|| PathBuf::from("stockpile.toml"), PathBuf::from);
        Self::from_figment(
            Self::defaults()
                .merge(FlatSettings::new(Toml::file(file)))
                .merge(FlatSettings::environment()),
        )
    }

    /// The built-in defaults, the first layer of every figment.
    pub fn defaults() -> Figment {
        Figment::from(Serialized::defaults(Self::default()))
    }

    /// The settings of one figment (tests layer their own providers).
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        let settings: Self = figment.extract()?;
        settings.check()?;
        Ok(settings)
    }

    /// Every variable the service reads, sorted by section and key: the keys of the serialised
    /// defaults, a section's under the section's name. Nothing else lists them.
    pub fn variables() -> Vec<Variable> {
        let tree = match Value::serialize(Self::default()) {
            Ok(Value::Dict(_, tree)) => tree,
            // The tree is a struct of structs and scalars: it always serialises to a dictionary.
            _ => unreachable!("the settings serialise to a dictionary"),
        };
        tree.into_iter()
            .flat_map(|(name, value)| match value {
                Value::Dict(_, section) => section
                    .into_keys()
                    .map(|key| Variable {
                        key,
                        section: Some(name.clone()),
                    })
                    .collect(),
                _ => vec![Variable {
                    key: name,
                    section: None,
                }],
            })
            .collect()
    }

    fn check(&self) -> Result<(), SettingsError> {
        if self.app_env == AppEnv::Production {
            if self.cache.backend == CacheBackendKind::Redis && !self.redis.is_named() {
                return Err(SettingsError::UnsafeForProduction(
                    "CACHE_BACKEND=redis needs REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES \
                     set explicitly"
                        .into(),
                ));
            }
            if self
                .admin
                .token
                .as_ref()
                .is_some_and(|t| t.expose().chars().count() < 32)
            {
                return Err(SettingsError::UnsafeForProduction(
                    "ADMIN_TOKEN is shorter than 32 characters; generate a longer one (e.g. openssl rand -hex 32)".into(),
                ));
            }
            // A SQLite file is one machine's: instances cannot share it, and no statement
            // timeout bounds its queries.
            if self.database.is_sqlite() {
                return Err(SettingsError::UnsafeForProduction(
                    "DATABASE_URL is a SQLite file; set it to your PostgreSQL database".into(),
                ));
            }
        }
        self.http.check()?;
        self.cache.check()?;
        self.redis.check()?;
        self.stream.check()?;
        self.admin.check()
    }
}

/// One variable of the settings: its key (the variable in lower case, as the TOML file writes
/// it) and the section it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    key: String,
    section: Option<String>,
}

impl Variable {
    /// The name in the environment: `CACHE_TTL_DEFAULT`.
    pub fn name(&self) -> String {
        self.key.to_ascii_uppercase()
    }

    /// The key in the TOML file: `cache_ttl_default`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Settings written flat, one key per variable, as the TOML file and the environment hold them,
/// moved into their sections of the tree.
///
/// A key that is no variable is an error naming it, except in the environment, which holds
/// every other program's variables too: there only the service's own are read.
pub struct FlatSettings<P> {
    provider: P,
    source: Source,
}

#[derive(Clone, Copy)]
enum Source {
    /// Lower-case keys, each of which must be a variable (the TOML file).
    Keys,
    /// The process environment: keys in any case, others ignored.
    Environment,
}

impl<P: Provider> FlatSettings<P> {
    /// Flat lower-case keys, an unknown one refused.
    pub fn new(provider: P) -> Self {
        Self {
            provider,
            source: Source::Keys,
        }
    }
}

impl FlatSettings<Env> {
    /// The process environment.
    pub fn environment() -> Self {
        Self {
            provider: Env::raw().map(|key| key.as_str().to_ascii_lowercase().into()),
            source: Source::Environment,
        }
    }
}

impl<P: Provider> Provider for FlatSettings<P> {
    /// The inner provider's, naming a key in an error as this source writes it, not by its
    /// place in the tree.
    fn metadata(&self) -> Metadata {
        let source = self.source;
        self.provider
            .metadata()
            .interpolater(move |_: &Profile, path: &[&str]| {
                let key = path.last().copied().unwrap_or_default();
                match source {
                    Source::Keys => key.to_owned(),
                    Source::Environment => key.to_ascii_uppercase(),
                }
            })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let variables = Settings::variables();
        let mut data = Map::new();
        for (profile, flat) in self.provider.data()? {
            let mut tree = Dict::new();
            for (key, value) in flat {
                let Some(variable) = variables.iter().find(|v| v.key == key) else {
                    if let Source::Environment = self.source {
                        continue;
                    }
                    let mut expected: Vec<String> =
                        variables.iter().map(|v| format!("`{}`", v.key)).collect();
                    expected.sort();
                    let mut error = figment::Error::from(format!(
                        "unknown setting: found `{key}`, expected one of {}",
                        expected.join(", ")
                    ));
                    error.metadata = Some(self.metadata());
                    error.profile = Some(profile);
                    error.path = vec![key];
                    return Err(error);
                };
                match &variable.section {
                    None => {
                        tree.insert(key, value);
                    }
                    Some(section) => {
                        if let Value::Dict(_, entries) = tree
                            .entry(section.clone())
                            .or_insert_with(|| Dict::new().into())
                        {
                            entries.insert(key, value);
                        }
                    }
                }
            }
            data.insert(profile, tree);
        }
        Ok(data)
    }
}

#[cfg(test)]
// figment's `Jail` closures return its own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail) -> Result<Settings, SettingsError> {
        let _ = jail;
        Settings::load()
    }

    #[test]
    fn defaults_match_the_contract() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert_eq!(s.http.bind_addr, "127.0.0.1:8080");
            assert_eq!(s.database.url.expose(), DEFAULT_DATABASE_URL);
            assert_eq!(s.cache.backend, CacheBackendKind::Auto);
            assert_eq!(s.redis.effective_url().expose(), DEFAULT_REDIS_URL);
            assert_eq!(
                (
                    s.cache.ttl_default,
                    s.cache.ttl_scores,
                    s.cache.stale_if_error,
                    s.cache.local_ttl,
                    s.cache.soft_timeout_ms
                ),
                (300, 600, 3600, 5, 250)
            );
            assert_eq!(s.cache.key_prefix, "stockpile:");
            assert!(s.admin.token.is_none());
            Ok(())
        });
    }

    #[test]
    fn the_environment_overrides_the_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "stockpile.toml",
                "bind_addr = \"0.0.0.0:9000\"\ncache_ttl_default = 60\n",
            )?;
            jail.set_env("CACHE_TTL_DEFAULT", "30");
            let s = load_in(jail).unwrap();
            assert_eq!(s.http.bind_addr, "0.0.0.0:9000");
            assert_eq!(s.cache.ttl_default, 30);
            Ok(())
        });
    }

    #[test]
    fn stockpile_config_names_another_file() {
        Jail::expect_with(|jail| {
            jail.create_file("other.toml", "cache_backend = \"memory\"\n")?;
            jail.set_env("STOCKPILE_CONFIG", "other.toml");
            assert_eq!(
                load_in(jail).unwrap().cache.backend,
                CacheBackendKind::Memory
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("stockpile.toml", "cache_ttl = 5\n")?;
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("cache_ttl"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn production_refuses_each_unsafe_setting_with_one_clear_line() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[
                    ("DATABASE_URL", "postgres://db/x"),
                    ("CACHE_BACKEND", "redis"),
                ],
                "REDIS_URL",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://db/x"),
                    ("ADMIN_TOKEN", "tiny-token"),
                ],
                "ADMIN_TOKEN",
            ),
            (&[], "DATABASE_URL"),
            (
                &[("DATABASE_URL", "sqlite://other.db?mode=rwc")],
                "DATABASE_URL",
            ),
        ];
        for (vars, names) in cases {
            Jail::expect_with(|jail| {
                jail.set_env("APP_ENV", "production");
                for (k, v) in vars {
                    jail.set_env(k, v);
                }
                let error = load_in(jail).unwrap_err().to_string();
                assert!(error.contains(names) && !error.contains('\n'), "{error}");
                assert!(
                    !error.contains("tiny-token"),
                    "the token must not be echoed: {error}"
                );
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            jail.set_env("APP_ENV", "production");
            jail.set_env("DATABASE_URL", "postgres://db/x");
            jail.set_env("CACHE_BACKEND", "redis");
            jail.set_env("REDIS_URL", "redis://cache:6379/0");
            jail.set_env("ADMIN_TOKEN", "x".repeat(32));
            assert!(load_in(jail).is_ok());
            Ok(())
        });
    }

    #[test]
    fn an_all_digit_token_is_kept_as_written_and_never_echoed() {
        Jail::expect_with(|jail| {
            let digits = "12345678901234567890123456789012345678";
            jail.set_env("ADMIN_TOKEN", digits);
            assert_eq!(load_in(jail).unwrap().admin.token.unwrap().expose(), digits);
            jail.set_env("APP_ENV", "production");
            jail.set_env("DATABASE_URL", "postgres://db/x");
            jail.set_env("ADMIN_TOKEN", "1234");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(!error.contains("1234"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn debug_output_redacts_secrets() {
        Jail::expect_with(|jail| {
            jail.set_env("ADMIN_TOKEN", "super-secret-token");
            jail.set_env("DATABASE_URL", "postgres://app:hunter2@db:5432/stockpile");
            jail.set_env("REDIS_URL", "redis://:redispass@cache:6379/0");
            let debug = format!("{:?}", load_in(jail).unwrap());
            for secret in ["super-secret-token", "hunter2", "redispass"] {
                assert!(!debug.contains(secret), "{secret} leaked: {debug}");
            }
            assert!(debug.contains("postgres://app:***@db:5432/stockpile"));
            Ok(())
        });
    }

    #[test]
    fn each_cache_backend_name_parses_and_no_other() {
        for (name, backend) in [
            ("auto", CacheBackendKind::Auto),
            ("redis", CacheBackendKind::Redis),
            ("memory", CacheBackendKind::Memory),
            ("none", CacheBackendKind::None),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env("CACHE_BACKEND", name);
                assert_eq!(load_in(jail).unwrap().cache.backend, backend);
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            jail.set_env("CACHE_BACKEND", "Redis");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("CACHE_BACKEND"), "{error}");
            Ok(())
        });
    }

    fn assert_refused_with_one_line_naming_it(variable: &str, value: &str) {
        assert_refused_with_one_line_naming(&[(variable, value)], variable);
    }

    /// Loading with `vars` set fails with one `invalid configuration` line that names `named`.
    fn assert_refused_with_one_line_naming(vars: &[(&str, &str)], named: &str) {
        Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            let error = load_in(jail).unwrap_err().to_string();
            assert!(
                error.starts_with("invalid configuration: ")
                    && error.contains(named)
                    && !error.contains('\n'),
                "{vars:?}: {error}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_bind_addr_without_host_or_port_is_refused_with_one_line_naming_it() {
        for value in [
            ":0",
            ":8080",
            "127.0.0.1",
            "127.0.0.1:",
            "localhost:http",
            "0",
        ] {
            assert_refused_with_one_line_naming_it("BIND_ADDR", value);
        }
        for value in ["127.0.0.1:0", "0.0.0.0:8080", "[::1]:0", "localhost:9000"] {
            Jail::expect_with(|jail| {
                jail.set_env("BIND_ADDR", value);
                assert_eq!(load_in(jail).unwrap().http.bind_addr, value);
                Ok(())
            });
        }
    }

    #[test]
    fn http_keep_alive_s_defaults_to_75_and_0_switches_it_off() {
        Jail::expect_with(|jail| {
            assert_eq!(
                load_in(jail).unwrap().http.keep_alive(),
                Duration::from_secs(75)
            );
            jail.set_env("HTTP_KEEP_ALIVE_S", "0");
            assert_eq!(load_in(jail).unwrap().http.keep_alive(), Duration::ZERO);
            jail.set_env(
                "HTTP_KEEP_ALIVE_S",
                HttpSection::MAX_KEEP_ALIVE_S.to_string(),
            );
            assert!(load_in(jail).is_ok());
            Ok(())
        });
    }

    #[test]
    fn a_bad_http_keep_alive_s_is_refused_with_one_line_naming_it() {
        let too_long = (HttpSection::MAX_KEEP_ALIVE_S + 1).to_string();
        for value in ["-1", "75s", "1.5", too_long.as_str()] {
            assert_refused_with_one_line_naming_it("HTTP_KEEP_ALIVE_S", value);
        }
    }

    #[test]
    fn redis_is_reached_in_exactly_one_way_or_the_start_is_refused_with_one_line() {
        let refused: [(&[(&str, &str)], &str); 6] = [
            (
                &[
                    ("REDIS_SENTINELS", "s1:26379"),
                    ("REDIS_SENTINEL_MASTER", "main"),
                    ("REDIS_CLUSTER_NODES", "n1:6379"),
                ],
                "REDIS_CLUSTER_NODES",
            ),
            (
                &[
                    ("REDIS_SENTINEL_MASTER", "main"),
                    ("REDIS_CLUSTER_NODES", "n1:6379"),
                ],
                "REDIS_CLUSTER_NODES",
            ),
            (&[("REDIS_SENTINELS", "s1:26379")], "REDIS_SENTINEL_MASTER"),
            (&[("REDIS_SENTINEL_MASTER", "main")], "REDIS_SENTINELS"),
            (
                &[
                    ("REDIS_URL", "redis://a:6379"),
                    ("REDIS_CLUSTER_NODES", "n1:6379"),
                ],
                "REDIS_URL",
            ),
            (
                &[("REDIS_CLUSTER_NODES", "n1:6379,nowhere")],
                "REDIS_CLUSTER_NODES",
            ),
        ];
        for (vars, named) in refused {
            assert_refused_with_one_line_naming(vars, named);
        }
        Jail::expect_with(|jail| {
            jail.set_env("REDIS_SENTINELS", "s1:26379, s2:26380");
            jail.set_env("REDIS_SENTINEL_MASTER", "main");
            jail.set_env("REDIS_PASSWORD", "sentinel-secret");
            let s = load_in(jail).unwrap();
            assert!(s.redis.is_named());
            assert!(matches!(
                s.redis.servers().unwrap(),
                RedisServers::Sentinel { master, sentinels }
                    if master == "main" && sentinels.to_string() == "s1:26379,s2:26380"
            ));
            assert!(!format!("{s:?}").contains("sentinel-secret"));
            Ok(())
        });
    }

    #[test]
    fn tls_settings_that_would_not_be_used_are_refused_with_one_line() {
        for (vars, named) in [
            (&[("REDIS_TLS", "true")][..], "REDIS_TLS"),
            (
                &[("REDIS_TLS_CA_FILE", "Cargo.toml")][..],
                "REDIS_TLS_CA_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://cache:6380"),
                    ("REDIS_TLS_CA_FILE", "no-such.pem"),
                ][..],
                "REDIS_TLS_CA_FILE",
            ),
        ] {
            assert_refused_with_one_line_naming(vars, named);
        }
        Jail::expect_with(|jail| {
            jail.create_file("ca.pem", "")?;
            jail.set_env("REDIS_CLUSTER_NODES", "n1:6379");
            jail.set_env("REDIS_TLS", "true");
            jail.set_env("REDIS_TLS_CA_FILE", "ca.pem");
            assert!(load_in(jail).unwrap().redis.tls);
            Ok(())
        });
    }

    #[test]
    fn production_accepts_a_sentinel_or_cluster_in_place_of_redis_url() {
        let named: [&[(&str, &str)]; 2] = [
            &[("REDIS_CLUSTER_NODES", "n1:6379")],
            &[
                ("REDIS_SENTINELS", "s1:26379"),
                ("REDIS_SENTINEL_MASTER", "main"),
            ],
        ];
        for vars in named {
            Jail::expect_with(|jail| {
                jail.set_env("APP_ENV", "production");
                jail.set_env("DATABASE_URL", "postgres://db/x");
                jail.set_env("CACHE_BACKEND", "redis");
                for (k, v) in vars {
                    jail.set_env(k, v);
                }
                let loaded = load_in(jail);
                assert!(loaded.is_ok(), "{vars:?}: {loaded:?}");
                Ok(())
            });
        }
    }

    #[test]
    fn a_bad_value_is_named_as_its_source_writes_it() {
        Jail::expect_with(|jail| {
            jail.set_env("CACHE_TTL_DEFAULT", "soon");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("CACHE_TTL_DEFAULT"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("stockpile.toml", "redis_pool_size = \"many\"\n")?;
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("redis_pool_size"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_file_is_flat_and_other_environment_variables_are_ignored() {
        Jail::expect_with(|jail| {
            jail.create_file("stockpile.toml", "[http]\nbind_addr = \"0.0.0.0:9000\"\n")?;
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("`http`"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("CACHE_TTL", "5");
            jail.set_env("HTTP", "x");
            assert_eq!(load_in(jail).unwrap(), Settings::default());
            Ok(())
        });
    }

    #[test]
    fn every_variable_is_read_from_the_environment_into_its_section() {
        let variables = Settings::variables();
        assert!(variables.len() > 20, "{variables:?}");
        Jail::expect_with(|jail| {
            jail.set_env("BIND_ADDR", "0.0.0.0:1");
            jail.set_env("DATABASE_MAX_CONNECTIONS", "3");
            jail.set_env("REDIS_POOL_SIZE", "4");
            jail.set_env("CACHE_LOCAL_TTL", "6");
            jail.set_env("LOG_FORMAT", "json");
            jail.set_env("APP_ENV", "development");
            let s = load_in(jail).unwrap();
            assert_eq!(
                (
                    s.http.bind_addr.as_str(),
                    s.database.max_connections,
                    s.redis.pool_size,
                    s.cache.local_ttl,
                    s.log.format
                ),
                ("0.0.0.0:1", 3, 4, 6, Some(LogFormat::Json))
            );
            Ok(())
        });
    }
}
