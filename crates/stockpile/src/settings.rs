//! Typed settings, layered by figment exactly as API.md's "Configuration" says: built-in
//! defaults, then a TOML file (`stockpile.toml` in the working directory, or the path in
//! `STOCKPILE_CONFIG`), then environment variables, each overriding the one before.

use std::fmt;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://stockpile.db?mode=rwc";
/// The Redis used when none is named.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// Every variable the service reads, upper case as in the environment; the TOML file uses
/// the same names in lower case.
const VARIABLES: &[&str] = &[
    "APP_ENV",
    "BIND_ADDR",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_ACQUIRE_TIMEOUT_MS",
    "DATABASE_STATEMENT_TIMEOUT_MS",
    "CACHE_BACKEND",
    "REDIS_URL",
    "REDIS_ENABLED",
    "REDIS_POOL_SIZE",
    "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_COMMAND_TIMEOUT_MS",
    "CACHE_KEY_PREFIX",
    "CACHE_TTL_DEFAULT",
    "CACHE_TTL_SCORES",
    "CACHE_STALE_IF_ERROR",
    "CACHE_SOFT_TIMEOUT_MS",
    "CACHE_LOCAL_TTL",
    "CACHE_MEMORY_MAX_BYTES",
    "ADMIN_TOKEN",
    "LOG_FORMAT",
];

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

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackendSetting {
    Auto,
    Redis,
    Memory,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The service's settings; field names are the variables of API.md in lower case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub app_env: AppEnv,
    pub bind_addr: String,
    pub database_url: ConnectionUrl,
    pub database_max_connections: u32,
    /// How long a query waits for a database connection before the answer is a 503 (or a
    /// stale entry): the longest a request can hang on an unreachable database.
    pub database_acquire_timeout_ms: u64,
    /// How long PostgreSQL may run one statement before cancelling it (a 503 for the request),
    /// so a hung query cannot hold a pooled connection forever.
    pub database_statement_timeout_ms: u64,
    pub cache_backend: CacheBackendSetting,
    /// `None` when not set explicitly: production refuses `CACHE_BACKEND=redis` then.
    pub redis_url: Option<ConnectionUrl>,
    pub redis_enabled: bool,
    pub redis_pool_size: u32,
    pub redis_connect_timeout_ms: u64,
    pub redis_command_timeout_ms: u64,
    pub cache_key_prefix: String,
    pub cache_ttl_default: u64,
    pub cache_ttl_scores: u64,
    pub cache_stale_if_error: u64,
    /// With an expired entry at hand, the longest a read waits for the database, in ms.
    pub cache_soft_timeout_ms: u64,
    pub cache_local_ttl: u64,
    pub cache_memory_max_bytes: u64,
    pub admin_token: Option<Secret>,
    /// `pretty` or `json`; unset: pretty on a terminal, json otherwise.
    pub log_format: Option<LogFormat>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            app_env: AppEnv::Development,
            bind_addr: "127.0.0.1:8080".into(),
            database_url: ConnectionUrl(DEFAULT_DATABASE_URL.into()),
            database_max_connections: 10,
            database_acquire_timeout_ms: 3000,
            database_statement_timeout_ms: 5000,
            cache_backend: CacheBackendSetting::Auto,
            redis_url: None,
            redis_enabled: true,
            redis_pool_size: 8,
            redis_connect_timeout_ms: 100,
            redis_command_timeout_ms: 100,
            cache_key_prefix: "stockpile:".into(),
            cache_ttl_default: 300,
            cache_ttl_scores: 600,
            cache_stale_if_error: 3600,
            cache_soft_timeout_ms: 250,
            cache_local_ttl: 5,
            cache_memory_max_bytes: 64 * 1024 * 1024,
            admin_token: None,
            log_format: None,
        }
    }
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
            Figment::from(Serialized::defaults(Self::default()))
                .merge(Toml::file(file))
                .merge(environment()),
        )
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

    fn check(&self) -> Result<(), SettingsError> {
        if self.app_env == AppEnv::Production {
            if self.cache_backend == CacheBackendSetting::Redis && self.redis_url.is_none() {
                return Err(SettingsError::UnsafeForProduction(
                    "CACHE_BACKEND=redis needs REDIS_URL set explicitly".into(),
                ));
            }
            if self
                .admin_token
                .as_ref()
                .is_some_and(|t| t.expose().chars().count() < 32)
            {
                return Err(SettingsError::UnsafeForProduction(
                    "ADMIN_TOKEN is shorter than 32 characters; generate a longer one (e.g. openssl rand -hex 32)".into(),
                ));
            }
            if self.uses_embedded_database() {
                return Err(SettingsError::UnsafeForProduction(
                    "DATABASE_URL is the embedded default; set it to your PostgreSQL database"
                        .into(),
                ));
            }
        }
        if self.cache_key_prefix.is_empty() {
            return Err(SettingsError::Invalid(
                "CACHE_KEY_PREFIX must not be empty".into(),
            ));
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty() || t.expose().contains(char::is_whitespace))
        {
            return Err(SettingsError::Invalid(
                "ADMIN_TOKEN must be one word without spaces".into(),
            ));
        }
        Ok(())
    }

    /// True when the database is the embedded default SQLite file.
    pub fn uses_embedded_database(&self) -> bool {
        self.database_url.expose() == DEFAULT_DATABASE_URL
    }

    /// The Redis URL in force (the default when none is set).
    pub fn effective_redis_url(&self) -> ConnectionUrl {
        self.redis_url
            .clone()
            .unwrap_or_else(|| ConnectionUrl(DEFAULT_REDIS_URL.into()))
    }
}

/// The environment variables API.md names, as lower-case keys.
fn environment() -> Env {
    Env::raw()
        .only(VARIABLES)
        .map(|key| key.as_str().to_ascii_lowercase().into())
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
            assert_eq!(s.bind_addr, "127.0.0.1:8080");
            assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
            assert_eq!(s.cache_backend, CacheBackendSetting::Auto);
            assert_eq!(s.effective_redis_url().expose(), DEFAULT_REDIS_URL);
            assert_eq!(
                (
                    s.cache_ttl_default,
                    s.cache_ttl_scores,
                    s.cache_stale_if_error,
                    s.cache_local_ttl,
                    s.cache_soft_timeout_ms
                ),
                (300, 600, 3600, 5, 250)
            );
            assert_eq!(s.cache_key_prefix, "stockpile:");
            assert!(s.admin_token.is_none());
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
            assert_eq!(s.bind_addr, "0.0.0.0:9000");
            assert_eq!(s.cache_ttl_default, 30);
            Ok(())
        });
    }

    #[test]
    fn stockpile_config_names_another_file() {
        Jail::expect_with(|jail| {
            jail.create_file("other.toml", "cache_backend = \"memory\"\n")?;
            jail.set_env("STOCKPILE_CONFIG", "other.toml");
            assert_eq!(
                load_in(jail).unwrap().cache_backend,
                CacheBackendSetting::Memory
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
        let cases: [(&[(&str, &str)], &str); 3] = [
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
            assert_eq!(load_in(jail).unwrap().admin_token.unwrap().expose(), digits);
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
}
