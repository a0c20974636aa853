use std::collections::HashMap;

use chrono::Utc;
use stockpile_domain::{PriceBar, Ticker, MAX_BARS_PER_UPLOAD};

use super::invalidate_after_write;
use crate::cache_keys::stale_after_price_change;
use crate::{AppError, FieldError, Stockpile};

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

pub(crate) async fn execute(
    service: &Stockpile,
    ticker: Ticker,
    bars: Vec<PriceBar>,
) -> Result<u64, AppError> {
    check_batch(&bars)?;
    service.reads.begin_write();
    let upserted = service.repository.upsert_bars(&ticker, &bars).await?;
    invalidate_after_write(service, &ticker, &stale_after_price_change(&ticker)).await;
    Ok(upserted)
}
