use std::sync::Arc;

use futures::FutureExt;
use stockpile_domain::{Percent, Period};

use super::json_body;
use crate::cache_aside::CachedResponse;
use crate::cache_keys::{leaderboard_key, KeyFamily};
use crate::ports::PeriodReturnRecord;
use crate::views::{Leaderboard, LeaderboardEntry};
use crate::{AppError, Stockpile};

pub(crate) async fn execute(
    service: &Stockpile,
    period: Period,
    limit: u32,
    sector: Option<String>,
) -> Result<CachedResponse, AppError> {
    let repository = Arc::clone(&service.repository);
    let key = leaderboard_key(period, limit, sector.as_deref());
    service
        .reads
        .read(KeyFamily::Leaderboard, key, move || {
            async move {
                let as_of = repository.latest_trading_day().await?;
                let items = match as_of {
                    Some(day) => rank(
                        repository
                            .period_returns(day, period.start(day), sector)
                            .await?,
                        limit,
                    ),
                    None => Vec::new(),
                };
                json_body(&Leaderboard {
                    period: period.as_str().to_owned(),
                    as_of,
                    items,
                })
            }
            .boxed()
        })
        .await
}

/// Best return first (by the rounded value the client sees), ties by ticker ascending.
fn rank(records: Vec<PeriodReturnRecord>, limit: u32) -> Vec<LeaderboardEntry> {
    let mut scored: Vec<(Percent, PeriodReturnRecord)> = records
        .into_iter()
        .map(|r| (Percent::change_between(r.start_price, r.end_price), r))
        .collect();
    scored.sort_by(|(a, ra), (b, rb)| b.cmp(a).then_with(|| ra.ticker.cmp(&rb.ticker)));
    scored
        .into_iter()
        .take(limit as usize)
        .zip(1..)
        .map(|((ret, r), rank)| LeaderboardEntry {
            rank,
            ticker: r.ticker.to_string(),
            name: r.name,
            sector: r.sector,
            start_price: r.start_price.to_f64(),
            end_price: r.end_price.to_f64(),
            return_percent: ret.to_f64(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockpile_domain::{Price, Ticker};

    fn record(ticker: &str, start: i64, end: i64) -> PeriodReturnRecord {
        PeriodReturnRecord {
            ticker: Ticker::parse(ticker).unwrap(),
            name: ticker.into(),
            sector: "Tech".into(),
            start_price: Price::from_units(start).unwrap(),
            end_price: Price::from_units(end).unwrap(),
        }
    }

    #[test]
    fn ranks_by_rounded_return_then_ticker() {
        let ranked = rank(
            vec![
                record("ZZZ", 10_000, 11_000),
                record("BBB", 10_000, 9_000),
                // 10.004 % rounds to 10.00 %, tying ZZZ: the ticker decides.
                record("AAA", 1_000_000, 1_100_040),
            ],
            10,
        );
        let order: Vec<_> = ranked
            .iter()
            .map(|e| (e.rank, e.ticker.as_str(), e.return_percent))
            .collect();
        assert_eq!(
            order,
            vec![(1, "AAA", 10.0), (2, "ZZZ", 10.0), (3, "BBB", -10.0)]
        );
        assert_eq!(rank(vec![record("A", 1, 2), record("B", 1, 3)], 1).len(), 1);
    }
}
