use std::sync::Arc;

use futures::FutureExt;
use stockpile_domain::MoverMetric;

use super::json_body;
use crate::cache_aside::CachedResponse;
use crate::cache_keys::{top_key, KeyFamily};
use crate::views::{StockSummary, TopMovers};
use crate::{AppError, Stockpile};

pub(crate) async fn execute(
    service: &Stockpile,
    metric: MoverMetric,
    limit: u32,
) -> Result<CachedResponse, AppError> {
    let repository = Arc::clone(&service.repository);
    service
        .reads
        .read(KeyFamily::Top, top_key(metric, limit), move || {
            async move {
                let as_of = repository.latest_trading_day().await?;
                let items = match as_of {
                    Some(day) => repository.movers(metric, day, limit).await?,
                    None => Vec::new(),
                };
                json_body(&TopMovers {
                    metric: metric.as_str().to_owned(),
                    as_of,
                    items: items.iter().map(StockSummary::from).collect(),
                })
            }
            .boxed()
        })
        .await
}
