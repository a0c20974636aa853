//! `SeaOrmStockRepository` against real databases: every test runs on SQLite and PostgreSQL.

// Test code: a failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod harness;
mod reads;
mod reference;
mod writes;
