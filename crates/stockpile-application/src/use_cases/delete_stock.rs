use stockpile_domain::Ticker;

use super::invalidate_after_write;
use crate::cache_keys::stale_after_price_change;
use crate::{AppError, Stockpile};

pub(crate) async fn execute(service: &Stockpile, ticker: Ticker) -> Result<(), AppError> {
    service.reads.begin_write();
    service.repository.delete_stock(&ticker).await?;
    invalidate_after_write(service, &ticker, &stale_after_price_change(&ticker)).await;
    Ok(())
}
