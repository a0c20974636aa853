//! Stockpile's schema as sea-orm migrations.
//!
//! Every migration runs unchanged on SQLite and PostgreSQL: it is written with sea-query's
//! builders only, never with backend-specific SQL.
//!
//! Prices are stored as BIGINT counts of ten-thousandths (the domain's `Price::units()`), so
//! the database never rounds a price and both backends compare them exactly.

pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_schema;

/// Runs Stockpile's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20250101_000001_create_schema::Migration)]
    }
}
