use std::sync::Arc;

use futures::FutureExt;
use stockpile_domain::{aggregate_bars, HistoryRange, HistoryRangeError};

use super::json_body;
use crate::cache_aside::CachedResponse;
use crate::cache_keys::{history_key, KeyFamily};
use crate::service::HistoryRequest;
use crate::views::{HistoryBar, PriceHistory};
use crate::{AppError, Stockpile};

fn range_error(error: HistoryRangeError) -> AppError {
    let field = match error {
        HistoryRangeError::FromAfterTo => "from",
        HistoryRangeError::TooLong => "to",
    };
    AppError::invalid(field, error.to_string())
}

pub(crate) async fn execute(
    service: &Stockpile,
    request: HistoryRequest,
) -> Result<CachedResponse, AppError> {
    // Reject impossible ranges before any lookup, cached or not.
    HistoryRange::check_requested(request.from, request.to).map_err(range_error)?;
    let repository = Arc::clone(&service.repository);
    let key = history_key(&request.ticker, request.from, request.to, request.interval);
    service
        .reads
        .read(KeyFamily::History, key, move || {
            async move {
                let HistoryRequest {
                    ticker,
                    from,
                    to,
                    interval,
                } = request;
                let latest = repository.latest_bar_date(&ticker).await?;
                let bars = match HistoryRange::resolve(from, to, latest).map_err(range_error)? {
                    Some(range) => repository.bars(&ticker, range.from, range.to).await?,
                    None => Vec::new(),
                };
                json_body(&PriceHistory {
                    ticker: ticker.to_string(),
                    interval: interval.as_str().to_owned(),
                    bars: aggregate_bars(&bars, interval)
                        .iter()
                        .map(HistoryBar::from)
                        .collect(),
                })
            }
            .boxed()
        })
        .await
}
