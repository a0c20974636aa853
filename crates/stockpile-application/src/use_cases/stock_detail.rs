use std::sync::Arc;

use futures::FutureExt;
use stockpile_domain::Ticker;

use super::json_body;
use crate::cache_aside::CachedResponse;
use crate::cache_keys::{detail_key, KeyFamily};
use crate::views::StockDetail;
use crate::{AppError, Stockpile};

pub(crate) async fn execute(
    service: &Stockpile,
    ticker: Ticker,
) -> Result<CachedResponse, AppError> {
    let repository = Arc::clone(&service.repository);
    service
        .reads
        .read(KeyFamily::Detail, detail_key(&ticker), move || {
            async move {
                let detail = repository
                    .detail(&ticker)
                    .await?
                    .ok_or_else(|| AppError::unknown_ticker(&ticker))?;
                json_body(&StockDetail::from(&detail))
            }
            .boxed()
        })
        .await
}
