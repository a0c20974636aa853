//! One module per endpoint of API.md's "Cached reads", "Writes" and "Cache administration".

pub(crate) mod cache_admin;
pub(crate) mod delete_stock;
pub(crate) mod leaderboard;
pub(crate) mod list_stocks;
pub(crate) mod price_history;
pub(crate) mod stock_detail;
pub(crate) mod top_movers;
pub(crate) mod upload_prices;
pub(crate) mod upsert_stock;

use bytes::Bytes;
use stockpile_domain::Ticker;

use crate::{AppError, Stockpile};

/// The JSON body of an answer, serialised once: it is what the cache keeps.
fn json_body<T: serde::Serialize>(view: &T) -> Result<Bytes, AppError> {
    Ok(Bytes::from(serde_json::to_vec(view)?))
}

/// Removes what a write made stale. A cache that cannot be reached is logged, not fatal:
/// the write is committed, and the cache adapter stops serving from that backend until
/// recovery makes it safe again.
async fn invalidate_after_write(service: &Stockpile, ticker: &Ticker, patterns: &[String]) {
    if let Err(error) = service.reads.invalidate(patterns).await {
        tracing::warn!(%ticker, %error, "could not remove stale cache entries after a write");
    }
}

#[cfg(test)]
mod tests;
