//! The writes of API.md. Each runs through [`Stockpile::write`]: [`CacheAside::write`], which
//! revokes the generations of the entries it makes stale once it has committed, then the
//! announcement of what it left of the ticker's quote to the live-quote streams.

use std::collections::HashMap;
use std::future::Future;

use async_trait::async_trait;
use chrono::Utc;
use stockpile_domain::{PriceBar, StockProfile, Ticker, MAX_BARS_PER_UPLOAD};

#[cfg(doc)]
use crate::cache_aside::CacheAside;
use crate::cache_keys::{stale_after_price_change, stale_after_profile_change};
use crate::ports::{QuoteChange, UpsertOutcome};
use crate::service::Stockpile;
use crate::views::StockDetail;
use crate::{AppError, FieldError};

/// The writes, admin only: all or nothing, and no stale answer survives them.
#[async_trait]
pub trait StockWrites: Send + Sync {
    /// Creates or replaces a stock's profile; true when it was created.
    async fn upsert_stock(
        &self,
        ticker: Ticker,
        profile: StockProfile,
    ) -> Result<(bool, StockDetail), AppError>;
    /// Stores bars all or nothing; returns how many.
    async fn upload_prices(&self, ticker: Ticker, bars: Vec<PriceBar>) -> Result<u64, AppError>;
    async fn delete_stock(&self, ticker: Ticker) -> Result<(), AppError>;
}

#[async_trait]
impl StockWrites for Stockpile {
    async fn upsert_stock(
        &self,
        ticker: Ticker,
        profile: StockProfile,
    ) -> Result<(bool, StockDetail), AppError> {
        let outcome = self
            .write(
                &ticker,
                &stale_after_profile_change(&ticker),
                self.repository.upsert_stock(&ticker, &profile),
            )
            .await?;
        let detail = self
            .repository
            .detail(&ticker)
            .await?
            .ok_or_else(|| AppError::unknown_ticker(&ticker))?;
        Ok((
            outcome == UpsertOutcome::Created,
            StockDetail::from(&detail),
        ))
    }

    async fn upload_prices(&self, ticker: Ticker, bars: Vec<PriceBar>) -> Result<u64, AppError> {
        check_batch(&bars)?;
        let upserted = self
            .write(
                &ticker,
                &stale_after_price_change(&ticker),
                self.repository.upsert_bars(&ticker, &bars),
            )
            .await?;
        Ok(upserted)
    }

    async fn delete_stock(&self, ticker: Ticker) -> Result<(), AppError> {
        self.write(
            &ticker,
            &stale_after_price_change(&ticker),
            self.repository.delete_stock(&ticker),
        )
        .await?;
        Ok(())
    }
}

impl Stockpile {
    /// The protocol of every write of `ticker`: the write and the revocation of what it made
    /// stale ([`CacheAside::write`]), then, once that is done, the ticker's quote as it now
    /// is, read once through its cache entry and handed to this process's streams and to the
    /// other instances'. An announcement that fails is logged: the write stands.
    async fn write<T, W>(&self, ticker: &Ticker, stale: &[String], write: W) -> Result<T, AppError>
    where
        W: Future<Output = Result<T, crate::ports::RepositoryError>>,
    {
        let written = self.cache_aside.write(stale, write).await?;
        match self.quote_summaries(vec![ticker.clone()]).await {
            Ok(mut summaries) => {
                let change = QuoteChange {
                    ticker: ticker.clone(),
                    summary: summaries.pop().flatten(),
                };
                self.live.deliver(&change);
                if let Some(events) = &self.quote_events {
                    if let Err(error) = events.publish(&change).await {
                        tracing::debug!(%error, %ticker, "could not tell the other instances of a quote change");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, %ticker, "could not read a quote after its write; its streams get no event");
            }
        }
        Ok(written)
    }
}

/// Checks what no single bar can check alone: the count, one bar per date, no future date.
fn check_batch(bars: &[PriceBar]) -> Result<(), AppError> {
    if bars.is_empty() || bars.len() > MAX_BARS_PER_UPLOAD {
        return Err(AppError::invalid(
            "bars",
            format!(
                "an upload carries 1 to {MAX_BARS_PER_UPLOAD} bars, not {}",
                bars.len()
            ),
        ));
    }
    let today = Utc::now().date_naive();
    let mut first_index_of_date = HashMap::with_capacity(bars.len());
    let mut errors = Vec::new();
    for (index, bar) in bars.iter().enumerate() {
        if bar.date() > today {
            errors.push(FieldError::new(
                format!("bars[{index}].date"),
                format!("{} is after today ({today}, UTC)", bar.date()),
            ));
        }
        if let Some(first) = first_index_of_date.insert(bar.date(), index) {
            errors.push(FieldError::new(
                format!("bars[{index}].date"),
                format!(
                    "{} appears twice (also bars[{first}]); send one bar per date",
                    bar.date()
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(errors))
    }
}
