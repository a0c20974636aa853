use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use stockpile_api::{AdminToken, ApiState, ClientLimits};
use stockpile_application::cache_aside::CachePolicy;
use stockpile_application::metrics::CacheMetrics;
use stockpile_application::ports::{RepositoryError, StockRepository};
use stockpile_application::{AppError, ServiceSettings, StockService, Stockpile};
use stockpile_infrastructure::{
    build_cache, CacheBackendKind, CacheSettings, DatabaseOptions, RedisSettings,
    SeaOrmStockRepository,
};

use crate::seed::{seed, SeedOptions};
use crate::settings::{CacheBackendSetting, Settings};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not open the database: {0}")]
    Database(#[from] RepositoryError),
    #[error("could not seed the empty database: {0}")]
    Seed(#[from] AppError),
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

fn cache_settings(settings: &Settings) -> CacheSettings {
    let backend = match (settings.redis_enabled, settings.cache_backend) {
        (false, CacheBackendSetting::Auto | CacheBackendSetting::Redis) => CacheBackendKind::Memory,
        (_, CacheBackendSetting::Auto) => CacheBackendKind::Auto,
        (_, CacheBackendSetting::Redis) => CacheBackendKind::Redis,
        (_, CacheBackendSetting::Memory) => CacheBackendKind::Memory,
        (_, CacheBackendSetting::None) => CacheBackendKind::None,
    };
    CacheSettings {
        backend,
        redis: RedisSettings {
            url: settings.effective_redis_url().expose().to_owned(),
            key_prefix: settings.cache_key_prefix.clone(),
            pool_size: settings.redis_pool_size,
            connect_timeout: Duration::from_millis(settings.redis_connect_timeout_ms),
            command_timeout: Duration::from_millis(settings.redis_command_timeout_ms),
        },
        local_ttl: Duration::from_secs(settings.cache_local_ttl),
        memory_max_bytes: settings.cache_memory_max_bytes,
    }
}

/// Connects the database (migrating it) and the cache, and builds the use cases.
///
/// # Errors
/// [`StartupError::Database`] when the database cannot be opened or migrated.
pub async fn wire(settings: &Settings) -> Result<Services, StartupError> {
    let options = DatabaseOptions {
        max_connections: settings.database_max_connections,
        acquire_timeout: Duration::from_millis(settings.database_acquire_timeout_ms),
        statement_timeout: Duration::from_millis(settings.database_statement_timeout_ms),
    };
    let repository =
        Arc::new(SeaOrmStockRepository::connect(settings.database_url.expose(), options).await?);
    repository.migrate().await?;
    let cache = build_cache(&cache_settings(settings)).await;
    let policy = CachePolicy {
        ttl_default: Duration::from_secs(settings.cache_ttl_default),
        ttl_scores: Duration::from_secs(settings.cache_ttl_scores),
        stale_if_error: Duration::from_secs(settings.cache_stale_if_error),
        soft_timeout: Duration::from_millis(settings.cache_soft_timeout_ms),
    };
    let service: Arc<dyn StockService> = Arc::new(Stockpile::new(
        repository.clone() as Arc<dyn StockRepository>,
        cache,
        Arc::new(CacheMetrics::default()),
        ServiceSettings {
            cache_policy: policy,
        },
    ));
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
        let Services {
            repository,
            service,
        } = wire(settings).await?;
        if settings.uses_embedded_database() && repository.count_stocks().await? == 0 {
            tracing::info!("the embedded database is empty: seeding 517 tickers x 504 trading days of synthetic bars");
            let (stocks, bars) = seed(service.as_ref(), &SeedOptions::default(), false).await?;
            tracing::info!(stocks, bars, "seeded the embedded database");
        }
        let listener =
            TcpListener::bind(&settings.bind_addr).map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.clone(),
                source,
            })?
            .port();
        let state = ApiState {
            service: service.clone(),
            admin_token: settings
                .admin_token
                .as_ref()
                .map(|t| AdminToken::new(t.expose().to_owned())),
            limits: ClientLimits::default(),
        };
        let server =
            stockpile_api::serve(listener, state).map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.clone(),
                source,
            })?;
        tracing::info!(
            backend = repository.backend_name(),
            addr = %settings.bind_addr,
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

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
