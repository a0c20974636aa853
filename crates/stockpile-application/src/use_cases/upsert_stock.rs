use stockpile_domain::{StockProfile, Ticker};

use super::invalidate_after_write;
use crate::cache_keys::stale_after_profile_change;
use crate::ports::UpsertOutcome;
use crate::views::StockDetail;
use crate::{AppError, Stockpile};

pub(crate) async fn execute(
    service: &Stockpile,
    ticker: Ticker,
    profile: StockProfile,
) -> Result<(bool, StockDetail), AppError> {
    service.reads.begin_write();
    let outcome = service.repository.upsert_stock(&ticker, &profile).await?;
    invalidate_after_write(service, &ticker, &stale_after_profile_change(&ticker)).await;
    let detail = service
        .repository
        .detail(&ticker)
        .await?
        .ok_or_else(|| AppError::unknown_ticker(&ticker))?;
    Ok((
        outcome == UpsertOutcome::Created,
        StockDetail::from(&detail),
    ))
}
