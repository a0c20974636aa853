//! Stocks, their daily bars and the latest quote of each stock.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Stocks::Table)
                    .col(
                        // On SQLite, sea-query writes an auto-incremented big integer as
                        // `integer PRIMARY KEY AUTOINCREMENT`, the rowid alias SQLite needs.
                        ColumnDef::new(Stocks::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(byte_order(
                        ColumnDef::new(Stocks::Ticker).string_len(10).not_null(),
                        backend,
                    ))
                    .col(byte_order(
                        ColumnDef::new(Stocks::Name).string_len(200).not_null(),
                        backend,
                    ))
                    .col(ColumnDef::new(Stocks::Exchange).string_len(32).not_null())
                    .col(ColumnDef::new(Stocks::Sector).string_len(64).not_null())
                    .col(ColumnDef::new(Stocks::Industry).string_len(128).null())
                    .col(ColumnDef::new(Stocks::Currency).char_len(3).not_null())
                    .col(ColumnDef::new(Stocks::MarketCap).big_integer().null())
                    .col(
                        ColumnDef::new(Stocks::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_stocks_ticker")
                    .table(Stocks::Table)
                    .col(Stocks::Ticker)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PriceBars::Table)
                    .col(ColumnDef::new(PriceBars::StockId).big_integer().not_null())
                    .col(ColumnDef::new(PriceBars::Date).date().not_null())
                    .col(ColumnDef::new(PriceBars::Open).big_integer().not_null())
                    .col(ColumnDef::new(PriceBars::High).big_integer().not_null())
                    .col(ColumnDef::new(PriceBars::Low).big_integer().not_null())
                    .col(ColumnDef::new(PriceBars::Close).big_integer().not_null())
                    .col(ColumnDef::new(PriceBars::Volume).big_integer().not_null())
                    // The key serves every per-stock bar query: a range of dates, the last
                    // bars before a date, and the upsert's conflict target.
                    .primary_key(
                        Index::create()
                            .name("pk_price_bars")
                            .col(PriceBars::StockId)
                            .col(PriceBars::Date),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_price_bars_stock")
                            .from(PriceBars::Table, PriceBars::StockId)
                            .to(Stocks::Table, Stocks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockQuotes::Table)
                    .col(
                        ColumnDef::new(StockQuotes::StockId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(StockQuotes::Date).date().not_null())
                    .col(ColumnDef::new(StockQuotes::Price).big_integer().not_null())
                    .col(ColumnDef::new(StockQuotes::Open).big_integer().not_null())
                    .col(ColumnDef::new(StockQuotes::High).big_integer().not_null())
                    .col(ColumnDef::new(StockQuotes::Low).big_integer().not_null())
                    .col(ColumnDef::new(StockQuotes::Volume).big_integer().not_null())
                    .col(
                        ColumnDef::new(StockQuotes::PreviousClose)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(StockQuotes::ChangeUnits)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(StockQuotes::ChangePercentHundredths)
                            .big_integer()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stock_quotes_stock")
                            .from(StockQuotes::Table, StockQuotes::StockId)
                            .to(Stocks::Table, Stocks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The latest trading day is MAX(date) of the quotes, and movers read the quotes of one
        // date ordered by change or volume: these indexes answer both without a table scan.
        // The list's sorts get no index: they order a LEFT JOIN with NULLs last and a ticker
        // tie-break over a few thousand rows, which no single-column index would serve.
        manager
            .create_index(
                Index::create()
                    .name("ix_stock_quotes_date_change")
                    .table(StockQuotes::Table)
                    .col(StockQuotes::Date)
                    .col(StockQuotes::ChangePercentHundredths)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_stock_quotes_date_volume")
                    .table(StockQuotes::Table)
                    .col(StockQuotes::Date)
                    .col(StockQuotes::Volume)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StockQuotes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PriceBars::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Stocks::Table).to_owned())
            .await
    }
}

/// Makes a sort key compare byte by byte, as SQLite's default `BINARY` collation does, so that
/// both backends order tickers and `LOWER(name)` alike whatever locale a PostgreSQL cluster was
/// created with (`en_US` would otherwise skip punctuation and spaces when sorting). The price:
/// PostgreSQL's `LOWER` folds only ASCII letters under `"C"`, again exactly like SQLite's.
fn byte_order(column: &mut ColumnDef, backend: DatabaseBackend) -> &mut ColumnDef {
    match backend {
        DatabaseBackend::Postgres => column.extra("COLLATE \"C\""),
        DatabaseBackend::Sqlite | DatabaseBackend::MySql => column,
    }
}

#[derive(DeriveIden)]
enum Stocks {
    Table,
    Id,
    Ticker,
    Name,
    Exchange,
    Sector,
    Industry,
    Currency,
    MarketCap,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PriceBars {
    Table,
    StockId,
    Date,
    Open,
    High,
    Low,
    Close,
    Volume,
}

#[derive(DeriveIden)]
enum StockQuotes {
    Table,
    StockId,
    Date,
    Price,
    Open,
    High,
    Low,
    Volume,
    PreviousClose,
    ChangeUnits,
    ChangePercentHundredths,
}
