//! [`SeaOrmStockRepository`]: the [`StockRepository`] port on SQLite or PostgreSQL.
//!
//! One code path serves both backends: every statement is built with sea-query, which writes
//! each backend's placeholders and quoting, and the schema keeps what the two would otherwise
//! disagree on (prices as integer ten-thousandths, byte-order collation of sort keys) the same.
//!
//! Invariant: `stock_quotes` holds, for every stock with bars, the quote of its latest bar and
//! the one before it, computed by [`Quote::derive`]. Every price write recomputes it inside its
//! own transaction, so reads never see bars and a quote that disagree.

mod entities;
mod errors;
mod reads;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use migrations::{Migrator, MigratorTrait};
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, EntityName, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, TransactionTrait,
};
use stockpile_application::ports::{
    DetailRecord, PeriodReturnRecord, RepositoryError, StockPage, StockRecord, StockRepository,
    UpsertOutcome,
};
use stockpile_domain::{ListQuery, MoverMetric, PriceBar, Quote, StockProfile, Ticker};

use entities::{price_bar, stock, stock_quote};
use errors::db_error;

/// How the connection pool behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long a query waits for a free connection (and a new connection for its handshake)
    /// before the repository reports the database unavailable.
    pub acquire_timeout: Duration,
    /// How long PostgreSQL may run one statement before it cancels it and the repository
    /// reports the database unavailable: a hung or blocked query would otherwise hold its
    /// connection forever and, once every connection is held, queue every request behind it.
    /// SQLite has no such limit; its waits for a lock end with the busy timeout.
    pub statement_timeout: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// How long a SQLite writer waits for another writer's lock before giving up. Writes are short
/// (one upload of at most 10,000 bars), so a few seconds of queueing beats failing at once.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A lifetime no process reaches, for the connection an in-memory database lives in.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Rows per INSERT of bars: 7 parameters each keeps a statement at 7,000 parameters, well under
/// SQLite's 32,766 and PostgreSQL's 65,535.
const BARS_PER_INSERT: usize = 1_000;

/// Stocks and bars in a SQLite or PostgreSQL database, through sea-orm.
#[derive(Debug, Clone)]
pub struct SeaOrmStockRepository {
    db: DatabaseConnection,
}

impl SeaOrmStockRepository {
    /// Opens a pool on `database_url` (`sqlite:…` or `postgres://…`).
    ///
    /// SQLite runs in WAL mode with a busy timeout, so readers never block the writer and
    /// concurrent writers queue instead of failing. An in-memory SQLite database (tests, demos)
    /// gets exactly one connection that is never recycled: its connections would share the
    /// database through SQLite's shared cache, whose table locks fail at once instead of
    /// waiting out the busy timeout, and the database vanishes when its last connection closes.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the server cannot be reached,
    /// [`RepositoryError::Internal`] for a URL of another kind or a bad configuration. The
    /// message never repeats the URL, which may hold a password.
    pub async fn connect(
        database_url: &str,
        options: DatabaseOptions,
    ) -> Result<Self, RepositoryError> {
        let is_sqlite = database_url.starts_with("sqlite:");
        let is_postgres =
            database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
        if !is_sqlite && !is_postgres {
            return Err(RepositoryError::Internal(
                "the database URL must start with sqlite: or postgres://".into(),
            ));
        }
        let in_memory = is_sqlite && database_url.contains(":memory:");
        let statement_timeout_ms = options.statement_timeout.as_millis().max(1);
        let mut connect = ConnectOptions::new(database_url.to_owned());
        if in_memory {
            connect
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(NEVER)
                .max_lifetime(NEVER);
        } else {
            connect.max_connections(options.max_connections);
        }
        connect
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            // Statement logging would put every query, with its values, into the log.
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL is durable across application crashes in WAL mode and spares an
                    // fsync per commit.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            })
            .map_sqlx_postgres_opts(move |postgres| {
                postgres.options([("statement_timeout", format!("{statement_timeout_ms}ms"))])
            });
        let db = Database::connect(connect).await.map_err(db_error)?;
        Ok(Self { db })
    }

    /// Brings the schema up to date, in one transaction on both backends.
    ///
    /// sea-orm-migration runs SQLite migrations statement by statement on the pool. A pooled
    /// SQLite connection that read the schema between two of those statements (a table created,
    /// its unique index not yet) keeps that half schema cached, and SQLite checks an `ON CONFLICT`
    /// target against the cached schema when it prepares the statement, without re-reading it:
    /// the next upsert on that connection fails. One transaction means no connection ever sees a
    /// half-migrated schema.
    ///
    /// # Errors
    /// Whatever the database answers, mapped like every other error.
    pub async fn migrate(&self) -> Result<(), RepositoryError> {
        let txn = self.db.begin().await.map_err(db_error)?;
        Migrator::up(&txn, None).await.map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }

    /// Refreshes the query planner's statistics of every table (`ANALYZE` on both backends),
    /// for the end of a bulk load: until autovacuum gets to it, PostgreSQL plans with the row
    /// counts of before the load (it estimated 27 quote rows for a date that had 5,000), and
    /// SQLite has none at all until it is asked.
    ///
    /// # Errors
    /// Whatever the database answers, mapped like every other error.
    pub async fn refresh_statistics(&self) -> Result<(), RepositoryError> {
        let tables = [
            stock::Entity.table_name(),
            price_bar::Entity.table_name(),
            stock_quote::Entity.table_name(),
        ];
        for table in tables {
            self.db
                .execute_unprepared(&format!("ANALYZE {table}"))
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`, for readiness reports and logs.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DatabaseBackend::Sqlite => "sqlite",
            DatabaseBackend::Postgres => "postgres",
            DatabaseBackend::MySql => "mysql",
        }
    }

    /// The id of the stock with `ticker`, `NotFound` when there is none.
    async fn stock_id<C: ConnectionTrait>(db: &C, ticker: &Ticker) -> Result<i64, RepositoryError> {
        stock::Entity::find()
            .select_only()
            .column(stock::Column::Id)
            .filter(stock::Column::Ticker.eq(ticker.as_str()))
            .into_tuple::<i64>()
            .one(db)
            .await
            .map_err(db_error)?
            .ok_or_else(|| RepositoryError::NotFound(ticker.clone()))
    }

    /// Rewrites the stock's quote from its two latest bars (it always has at least one here).
    async fn refresh_quote(
        txn: &DatabaseTransaction,
        stock_id: i64,
    ) -> Result<(), RepositoryError> {
        let latest: Vec<PriceBar> = price_bar::Entity::find()
            .filter(price_bar::Column::StockId.eq(stock_id))
            .order_by_desc(price_bar::Column::Date)
            .limit(2)
            .all(txn)
            .await
            .map_err(db_error)?
            .iter()
            .map(reads::bar_from_model)
            .collect::<Result<_, _>>()?;
        let Some(newest) = latest.first() else {
            return Ok(());
        };
        let quote = Quote::derive(newest, latest.get(1));
        let row = stock_quote::ActiveModel {
            stock_id: Set(stock_id),
            date: Set(quote.as_of),
            price: Set(quote.price.units()),
            open: Set(quote.open.units()),
            high: Set(quote.high.units()),
            low: Set(quote.low.units()),
            volume: Set(quote.volume),
            previous_close: Set(quote.previous_close.map(|p| p.units())),
            change_units: Set(quote.change_units),
            change_percent_hundredths: Set(quote.change_percent.map(|p| p.hundredths())),
        };
        stock_quote::Entity::insert(row)
            .on_conflict(
                OnConflict::column(stock_quote::Column::StockId)
                    .update_columns(
                        std::iter::once(stock_quote::Column::Date).chain(stock_quote::QUOTE_VALUES),
                    )
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

#[async_trait]
impl StockRepository for SeaOrmStockRepository {
    async fn list(&self, query: &ListQuery) -> Result<StockPage, RepositoryError> {
        reads::list(&self.db, query).await
    }

    async fn detail(&self, ticker: &Ticker) -> Result<Option<DetailRecord>, RepositoryError> {
        reads::detail(&self.db, ticker).await
    }

    async fn summaries(&self, tickers: &[Ticker]) -> Result<Vec<StockRecord>, RepositoryError> {
        reads::summaries(&self.db, tickers).await
    }

    async fn latest_bar_date(&self, ticker: &Ticker) -> Result<Option<NaiveDate>, RepositoryError> {
        let stock_id = Self::stock_id(&self.db, ticker).await?;
        // The quote is dated by the stock's newest bar, so one key lookup answers.
        stock_quote::Entity::find_by_id(stock_id)
            .select_only()
            .column(stock_quote::Column::Date)
            .into_tuple::<NaiveDate>()
            .one(&self.db)
            .await
            .map_err(db_error)
    }

    async fn bars(
        &self,
        ticker: &Ticker,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<PriceBar>, RepositoryError> {
        let stock_id = Self::stock_id(&self.db, ticker).await?;
        price_bar::Entity::find()
            .filter(price_bar::Column::StockId.eq(stock_id))
            .filter(price_bar::Column::Date.between(from, to))
            .order_by_asc(price_bar::Column::Date)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .iter()
            .map(reads::bar_from_model)
            .collect()
    }

    async fn latest_trading_day(&self) -> Result<Option<NaiveDate>, RepositoryError> {
        reads::latest_trading_day(&self.db).await
    }

    async fn movers(
        &self,
        metric: MoverMetric,
        as_of: NaiveDate,
        limit: u32,
    ) -> Result<Vec<StockRecord>, RepositoryError> {
        reads::movers(&self.db, metric, as_of, limit).await
    }

    async fn period_returns(
        &self,
        as_of: NaiveDate,
        start: NaiveDate,
        sector: Option<String>,
    ) -> Result<Vec<PeriodReturnRecord>, RepositoryError> {
        reads::period_returns(&self.db, as_of, start, sector.as_deref()).await
    }

    async fn upsert_stock(
        &self,
        ticker: &Ticker,
        profile: &StockProfile,
    ) -> Result<UpsertOutcome, RepositoryError> {
        let now = Utc::now();
        let row = stock::ActiveModel {
            id: NotSet,
            ticker: Set(ticker.as_str().to_owned()),
            name: Set(profile.name().to_owned()),
            exchange: Set(profile.exchange().to_owned()),
            sector: Set(profile.sector().to_owned()),
            industry: Set(profile.industry().map(str::to_owned)),
            currency: Set(profile.currency().as_str().to_owned()),
            market_cap: Set(profile.market_cap()),
            updated_at: Set(now),
        };
        // Insert-or-nothing first, then update: both statements are atomic on their own and
        // the insert's row count says which case this was, without a race between two
        // creators of the same ticker (the loser simply updates).
        let inserted = stock::Entity::insert(row.clone())
            .on_conflict(
                OnConflict::column(stock::Column::Ticker)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(db_error)?;
        if inserted == 1 {
            return Ok(UpsertOutcome::Created);
        }
        stock::Entity::update_many()
            .set(stock::ActiveModel {
                id: NotSet,
                ticker: NotSet,
                ..row
            })
            .filter(stock::Column::Ticker.eq(ticker.as_str()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(UpsertOutcome::Updated)
    }

    async fn upsert_bars(
        &self,
        ticker: &Ticker,
        bars: &[PriceBar],
    ) -> Result<u64, RepositoryError> {
        let txn = self.db.begin().await.map_err(db_error)?;
        // The first statement writes, so SQLite takes its write lock right away, where the
        // busy timeout applies, instead of upgrading a read lock later (which fails at once
        // when another writer got in between).
        let touched = stock::Entity::update_many()
            .col_expr(
                stock::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(stock::Column::Ticker.eq(ticker.as_str()))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if touched.rows_affected == 0 {
            return Err(RepositoryError::NotFound(ticker.clone()));
        }
        let stock_id = Self::stock_id(&txn, ticker).await?;

        // One row per date, the last one given winning: PostgreSQL refuses to update the same
        // row twice in one INSERT … ON CONFLICT, and this keeps both backends alike.
        let by_date: BTreeMap<NaiveDate, &PriceBar> =
            bars.iter().map(|bar| (bar.date(), bar)).collect();
        let rows: Vec<price_bar::ActiveModel> = by_date
            .values()
            .map(|bar| price_bar::ActiveModel {
                stock_id: Set(stock_id),
                date: Set(bar.date()),
                open: Set(bar.open().units()),
                high: Set(bar.high().units()),
                low: Set(bar.low().units()),
                close: Set(bar.close().units()),
                volume: Set(bar.volume()),
            })
            .collect();
        for chunk in rows.chunks(BARS_PER_INSERT) {
            price_bar::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([price_bar::Column::StockId, price_bar::Column::Date])
                        .update_columns([
                            price_bar::Column::Open,
                            price_bar::Column::High,
                            price_bar::Column::Low,
                            price_bar::Column::Close,
                            price_bar::Column::Volume,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(db_error)?;
        }
        Self::refresh_quote(&txn, stock_id).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(rows.len() as u64)
    }

    async fn delete_stock(&self, ticker: &Ticker) -> Result<(), RepositoryError> {
        // Bars and the quote go with the stock through ON DELETE CASCADE.
        let deleted = stock::Entity::delete_many()
            .filter(stock::Column::Ticker.eq(ticker.as_str()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected == 0 {
            return Err(RepositoryError::NotFound(ticker.clone()));
        }
        Ok(())
    }

    async fn count_stocks(&self) -> Result<u64, RepositoryError> {
        stock::Entity::find()
            .count(&self.db)
            .await
            .map_err(db_error)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        let backend = self.db.get_database_backend();
        self.db
            .execute(Statement::from_string(backend, "SELECT 1"))
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
