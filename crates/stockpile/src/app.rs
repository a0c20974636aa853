use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use stockpile_api::{AdminToken, ApiState, ClientLimits};
use stockpile_application::metrics::CacheMetrics;
use stockpile_application::ports::{RepositoryError, StockRepository};
use stockpile_application::{AppError, ServiceSettings, StockService, Stockpile};
use stockpile_domain::{PriceBar, Ticker};
use stockpile_infrastructure::{
    build_cache, CacheBackendKind, CacheSettings, RedisCache, RedisQuoteEvents, RedisSettings,
    SeaOrmStockRepository,
};

use crate::seed::{seed, SeedOptions};
use crate::settings::{CacheSection, RedisSection, Settings, SettingsError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not open the database: {0}")]
    Database(#[from] RepositoryError),
    #[error("could not seed the empty database: {0}")]
    Seed(#[from] AppError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// The wired service: repository, cache and use cases, without the HTTP server.
pub struct Services {
    pub repository: Arc<SeaOrmStockRepository>,
    pub service: Arc<dyn StockService>,
}

impl Services {
    /// Seeds the stocks and their bars ([`seed`]), then refreshes the database's statistics as
    /// every bulk load does; returns (stocks, bars) written.
    ///
    /// # Errors
    /// The first write that fails.
    pub async fn seed(
        &self,
        options: &SeedOptions,
        show_progress: bool,
    ) -> Result<(usize, u64), AppError> {
        let written = seed(self.service.as_ref(), options, show_progress).await?;
        self.refresh_statistics().await;
        Ok(written)
    }

    /// Stores the bars of an import, all or nothing, then refreshes the database's statistics
    /// as every bulk load does; returns how many were stored.
    ///
    /// # Errors
    /// The upload's, when nothing was stored.
    pub async fn import(&self, ticker: Ticker, bars: Vec<PriceBar>) -> Result<u64, AppError> {
        let stored = self.service.upload_prices(ticker, bars).await?;
        self.refresh_statistics().await;
        Ok(stored)
    }

    /// After a bulk load the planner's statistics are stale until they are refreshed. The data
    /// is stored either way, so a failure here is logged rather than failing the load.
    async fn refresh_statistics(&self) {
        if let Err(error) = self.repository.refresh_statistics().await {
            tracing::warn!(
                %error,
                "the database's statistics could not be refreshed after the load; queries may be \
                 planned slowly until ANALYZE runs"
            );
        }
    }
}

/// The cache adapter's settings: the cache's section and how Redis is reached.
///
/// # Errors
/// [`SettingsError`] when the Redis section names no one topology.
fn cache_settings(
    cache: &CacheSection,
    redis: &RedisSection,
) -> Result<CacheSettings, SettingsError> {
    let backend = match (redis.enabled, cache.backend) {
        (false, CacheBackendKind::Auto | CacheBackendKind::Redis) => CacheBackendKind::Memory,
        (_, backend) => backend,
    };
    Ok(CacheSettings {
        backend,
        redis: RedisSettings {
            url: redis.effective_url().expose().to_owned(),
            servers: redis.servers()?,
            username: redis.username.clone(),
            password: redis
                .password
                .as_ref()
                .map(|password| password.expose().to_owned()),
            tls: redis.tls,
            tls_ca_file: redis.tls_ca_file.clone(),
            key_prefix: cache.key_prefix.clone(),
            pool_size: redis.pool_size,
            connect_timeout: Duration::from_millis(redis.connect_timeout_ms),
            command_timeout: Duration::from_millis(redis.command_timeout_ms),
        },
        local_ttl: Duration::from_secs(cache.local_ttl),
        memory_max_bytes: cache.memory_max_bytes,
    })
}

/// Settles the embedded default, `auto` with no Redis named (no `REDIS_URL`, `REDIS_SENTINELS`
/// or `REDIS_CLUSTER_NODES`): the default Redis when it answers at start, else this process's
/// memory for the process's life. Someone who never configured Redis has lost nothing, so
/// memory then is the backend of record (not `degraded`, entries live their full lifetimes);
/// with a Redis named, memory only stands in for it.
async fn settle_embedded_default(mut cache: CacheSettings, redis_named: bool) -> CacheSettings {
    if cache.backend == CacheBackendKind::Auto
        && !redis_named
        && RedisCache::new(&cache.redis).ping().await.is_err()
    {
        tracing::info!(
            "no Redis answers at the default address and REDIS_URL is not set: caching in this \
             process's memory; set REDIS_URL to use a Redis"
        );
        cache.backend = CacheBackendKind::Memory;
    }
    cache
}

/// Connects the database (migrating it) and the cache, and builds the use cases; each adapter
/// gets its own section of the settings.
///
/// # Errors
/// [`StartupError::Database`] when the database cannot be opened or migrated,
/// [`StartupError::Settings`] when the Redis section names no one topology.
pub async fn wire(settings: &Settings) -> Result<Services, StartupError> {
    let database = &settings.database;
    let repository =
        Arc::new(SeaOrmStockRepository::connect(database.url.expose(), database.options()).await?);
    repository.migrate().await?;
    let cache_settings = settle_embedded_default(
        cache_settings(&settings.cache, &settings.redis)?,
        settings.redis.is_named(),
    )
    .await;
    let cache = build_cache(&cache_settings).await;
    let service = Stockpile::new(
        repository.clone() as Arc<dyn StockRepository>,
        cache,
        Arc::new(CacheMetrics::default()),
        ServiceSettings {
            cache_policy: settings.cache.policy(),
            max_streams: settings.stream.max_clients,
        },
    );
    // Quote changes travel between instances over the Redis they share; an instance that
    // never uses Redis is alone.
    let service: Arc<dyn StockService> = match cache_settings.backend {
        CacheBackendKind::Auto | CacheBackendKind::Redis => Arc::new(
            service.with_quote_events(Arc::new(RedisQuoteEvents::new(&cache_settings.redis))),
        ),
        CacheBackendKind::Memory | CacheBackendKind::None => Arc::new(service),
    };
    Ok(Services {
        repository,
        service,
    })
}

/// The running HTTP service (the composition root binds its own listener, so port 0 works).
pub struct Application {
    port: u16,
    server: Server,
    service: Arc<dyn StockService>,
}

impl Application {
    /// Wires everything, seeds an empty embedded database, and binds `BIND_ADDR`.
    ///
    /// # Errors
    /// [`StartupError`] naming the step that failed.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let services = wire(settings).await?;
        if settings.database.is_embedded_default() && services.repository.count_stocks().await? == 0
        {
            tracing::info!("the embedded database is empty: seeding 517 tickers x 504 trading days of synthetic bars");
            let (stocks, bars) = services.seed(&SeedOptions::default(), false).await?;
            tracing::info!(stocks, bars, "seeded the embedded database");
        }
        let Services {
            repository,
            service,
        } = services;
        let http = &settings.http;
        let bind_error = |source| StartupError::Bind {
            addr: http.bind_addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&http.bind_addr).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let state = ApiState {
            service: service.clone(),
            admin_token: settings
                .admin
                .token
                .as_ref()
                .map(|t| AdminToken::new(t.expose().to_owned())),
            limits: ClientLimits {
                keep_alive: http.keep_alive(),
                ..ClientLimits::default()
            },
            stream_heartbeat: settings.stream.heartbeat(),
        };
        let server = stockpile_api::serve(listener, state).map_err(bind_error)?;
        tracing::info!(
            backend = repository.backend_name(),
            addr = %http.bind_addr,
            port,
            "Stockpile is listening: API at /api/stocks, docs at /docs/"
        );
        Ok(Self {
            port,
            server,
            service,
        })
    }

    /// The port actually bound (useful with `BIND_ADDR=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The use cases behind the server, for tests and the seed command.
    pub fn service(&self) -> Arc<dyn StockService> {
        self.service.clone()
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

#[cfg(test)]
mod tests {
    use stockpile_application::ports::{CacheBackend, CacheState};

    use super::*;

    /// The cache settings of `auto` with Redis at an address where nothing listens.
    fn auto_without_redis() -> CacheSettings {
        CacheSettings {
            redis: RedisSettings {
                url: "redis://127.0.0.1:1/0".into(),
                ..RedisSettings::default()
            },
            ..CacheSettings::default()
        }
    }

    #[tokio::test]
    async fn the_embedded_default_without_redis_is_memory_and_not_degraded() {
        let settled = settle_embedded_default(auto_without_redis(), false).await;
        assert_eq!(settled.backend, CacheBackendKind::Memory);
        let status = build_cache(&settled).await.status().await;
        assert_eq!(status.state, CacheState::Serving(CacheBackend::Memory));
    }

    #[tokio::test]
    async fn an_explicit_redis_url_keeps_auto_falling_back_to_memory_while_redis_is_away() {
        let settled = settle_embedded_default(auto_without_redis(), true).await;
        assert_eq!(settled.backend, CacheBackendKind::Auto);
        let status = build_cache(&settled).await.status().await;
        assert_eq!(status.state, CacheState::FallenBack);
    }
}
