use std::sync::Arc;

use futures::FutureExt;
use stockpile_domain::ListQuery;

use super::json_body;
use crate::cache_aside::CachedResponse;
use crate::cache_keys::{list_key, KeyFamily};
use crate::views::{StockList, StockSummary};
use crate::{AppError, Stockpile};

pub(crate) async fn execute(
    service: &Stockpile,
    query: ListQuery,
) -> Result<CachedResponse, AppError> {
    let repository = Arc::clone(&service.repository);
    let key = list_key(&query);
    service
        .reads
        .read(KeyFamily::List, key, move || {
            async move {
                let page = repository.list(&query).await?;
                json_body(&StockList {
                    items: page.items.iter().map(StockSummary::from).collect(),
                    page: query.page.page,
                    page_size: query.page.page_size,
                    total: page.total,
                })
            }
            .boxed()
        })
        .await
}
