//! The use cases over mocked ports: what they ask the repository, what they store and what
//! they invalidate.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{Days, NaiveDate, TimeZone, Utc};
use mockall::predicate::eq;
use stockpile_domain::{
    Interval, ListQuery, MoverMetric, Period, Price, PriceBar, Quote, StockProfile, Ticker,
};

use crate::cache_aside::CacheOutcome;
use crate::live_quotes::LiveEventKind;
use crate::metrics::CacheMetrics;
use crate::ports::{
    CacheError, DetailRecord, MockCache, MockQuoteEvents, MockStockRepository, QuoteChange,
    RepositoryError, StockPage, StockRecord, UpsertOutcome,
};
use crate::{
    AppError, CacheAdministration, HistoryRequest, QuoteStreams, ServiceSettings, StockReads,
    StockWrites, Stockpile,
};

fn aapl() -> Ticker {
    Ticker::parse("AAPL").unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, d).unwrap()
}

fn bar(date: NaiveDate, close: i64) -> PriceBar {
    let p = Price::from_units(close).unwrap();
    PriceBar::new(date, p, p, p, p, 1_000).unwrap()
}

fn record() -> StockRecord {
    StockRecord {
        ticker: aapl(),
        name: "Apple Inc.".into(),
        exchange: "NASDAQ".into(),
        sector: "Information Technology".into(),
        industry: None,
        currency: "USD".into(),
        market_cap: Some(3_000_000_000_000),
        updated_at: Utc.with_ymd_and_hms(2025, 11, 21, 22, 0, 0).unwrap(),
        quote: Some(Quote::derive(
            &bar(day(21), 2_000_000),
            Some(&bar(day(20), 1_900_000)),
        )),
    }
}

fn detail() -> DetailRecord {
    DetailRecord {
        stock: record(),
        fifty_two_week_high: None,
        fifty_two_week_low: None,
        recent_volume: (3_001, 2),
    }
}

/// A cache that remembers what is put into it, and records every generation revoked.
fn recording_cache(invalidated: Arc<Mutex<Vec<String>>>) -> MockCache {
    let stored: Arc<Mutex<std::collections::HashMap<String, Bytes>>> = Arc::default();
    let mut cache = MockCache::new();
    let read_many = stored.clone();
    cache.expect_get_many().returning(move |keys| {
        let stored = read_many.lock().unwrap();
        Ok(keys.iter().map(|k| stored.get(k).cloned()).collect())
    });
    let generations = stored.clone();
    cache
        .expect_get_or_put_many()
        .returning(move |keys, value, _| {
            let mut stored = generations.lock().unwrap();
            Ok(keys
                .iter()
                .map(|k| Some(stored.entry(k.clone()).or_insert(value.clone()).clone()))
                .collect())
        });
    let write = stored.clone();
    cache.expect_put().returning(move |k, v, _| {
        write.lock().unwrap().insert(k.to_owned(), v);
        Ok(())
    });
    // Vouches for nothing, so every batch of quotes looks its entries up.
    cache.expect_coherence().return_const(None);
    // One process alone: the load lease is always granted.
    cache.expect_try_lease().returning(|_, _| Ok(true));
    cache.expect_release_lease().returning(|_| Ok(()));
    cache.expect_delete_many().returning(move |keys| {
        let mut stored = stored.lock().unwrap();
        for key in keys {
            stored.remove(key);
        }
        invalidated.lock().unwrap().extend_from_slice(keys);
        Ok(keys.len() as u64)
    });
    cache
}

fn service(repository: MockStockRepository, cache: MockCache) -> Stockpile {
    Stockpile::new(
        Arc::new(repository),
        Arc::new(cache),
        Arc::new(CacheMetrics::default()),
        ServiceSettings::default(),
    )
}

#[tokio::test]
async fn a_detail_is_loaded_once_then_served_from_the_cache() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_detail()
        .with(eq(aapl()))
        .times(1)
        .returning(|_| Ok(Some(detail())));
    let service = service(repository, recording_cache(Arc::default()));
    let first = service.stock_detail(aapl()).await.unwrap();
    let second = service.stock_detail(aapl()).await.unwrap();
    assert_eq!(
        (first.outcome, second.outcome),
        (CacheOutcome::Miss, CacheOutcome::Hit)
    );
    let json: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(json["name"], "Apple Inc.");
    assert_eq!(json["price"], 200.0);
    assert_eq!(json["change"], 10.0);
    assert_eq!(json["change_percent"], 5.26);
    assert_eq!(json["average_volume_30d"], 1501);
    assert_eq!(json["updated_at"], "2025-11-21T22:00:00Z");
}

#[tokio::test]
async fn an_unknown_ticker_is_not_found_and_nothing_is_stored() {
    let mut repository = MockStockRepository::new();
    repository.expect_detail().returning(|_| Ok(None));
    let mut cache = MockCache::new();
    cache
        .expect_get_many()
        .returning(|keys| Ok(vec![None; keys.len()]));
    cache
        .expect_get_or_put_many()
        .returning(|keys, value, _| Ok(vec![Some(value); keys.len()]));
    cache.expect_try_lease().returning(|_, _| Ok(true));
    cache.expect_release_lease().returning(|_| Ok(()));
    cache.expect_put().never();
    let result = service(repository, cache).stock_detail(aapl()).await;
    assert!(matches!(result, Err(AppError::NotFound(m)) if m.contains("AAPL")));
}

#[tokio::test]
async fn a_database_outage_is_unavailable() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_list()
        .returning(|_| Err(RepositoryError::Unavailable("connection refused".into())));
    let result = service(repository, recording_cache(Arc::default()))
        .list_stocks(ListQuery::default())
        .await;
    assert!(matches!(result, Err(AppError::Unavailable(_))));
}

#[tokio::test]
async fn the_list_carries_its_paging() {
    let mut repository = MockStockRepository::new();
    repository.expect_list().times(1).returning(|_| {
        Ok(StockPage {
            items: vec![record()],
            total: 503,
        })
    });
    let answer = service(repository, recording_cache(Arc::default()))
        .list_stocks(ListQuery::default())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        (
            json["page"].clone(),
            json["page_size"].clone(),
            json["total"].clone()
        ),
        (1.into(), 50.into(), 503.into())
    );
    assert_eq!(json["items"][0]["ticker"], "AAPL");
}

#[tokio::test]
async fn history_rejects_a_reversed_range_before_any_lookup() {
    let repository = MockStockRepository::new();
    let cache = MockCache::new();
    let request = HistoryRequest {
        ticker: aapl(),
        from: Some(day(21)),
        to: Some(day(20)),
        interval: Interval::Daily,
    };
    let result = service(repository, cache).price_history(request).await;
    assert!(matches!(result, Err(AppError::Invalid(errors)) if errors[0].field == "from"));
}

#[tokio::test]
async fn history_defaults_to_the_year_ending_at_the_latest_bar() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_latest_bar_date()
        .returning(|_| Ok(Some(day(21))));
    repository
        .expect_bars()
        .with(
            eq(aapl()),
            eq(NaiveDate::from_ymd_opt(2024, 11, 22).unwrap()),
            eq(day(21)),
        )
        .times(1)
        .returning(|_, _, _| {
            Ok(vec![
                bar(day(17), 10_000),
                bar(day(18), 20_000),
                bar(day(24).min(day(21)), 30_000),
            ])
        });
    let request = HistoryRequest {
        ticker: aapl(),
        from: None,
        to: None,
        interval: Interval::Weekly,
    };
    let answer = service(repository, recording_cache(Arc::default()))
        .price_history(request)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["interval"], "1w");
    assert_eq!(json["bars"].as_array().unwrap().len(), 1);
    assert_eq!(json["bars"][0]["date"], "2025-11-17");
    assert_eq!(json["bars"][0]["close"], 3.0);
    assert_eq!(json["bars"][0]["volume"], 3_000);
}

#[tokio::test]
async fn movers_without_any_bars_are_empty_with_a_null_date() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_latest_trading_day()
        .returning(|| Ok(None));
    repository.expect_movers().never();
    let answer = service(repository, recording_cache(Arc::default()))
        .top_movers(MoverMetric::Losers, 5)
        .await
        .unwrap();
    assert_eq!(
        &answer.body[..],
        br#"{"metric":"losers","as_of":null,"items":[]}"#
    );
}

#[tokio::test]
async fn the_leaderboard_asks_from_the_period_start() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_latest_trading_day()
        .returning(|| Ok(Some(day(21))));
    repository
        .expect_period_returns()
        .with(
            eq(day(21)),
            eq(day(21) - Days::new(7)),
            eq(Some("energy".to_owned())),
        )
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let answer = service(repository, recording_cache(Arc::default()))
        .leaderboard(Period::OneWeek, 10, Some("energy".into()))
        .await
        .unwrap();
    assert_eq!(
        &answer.body[..],
        br#"{"period":"1w","as_of":"2025-11-21","items":[]}"#
    );
}

#[tokio::test]
async fn a_profile_write_invalidates_exactly_its_entries() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_upsert_stock()
        .times(1)
        .returning(|_, _| Ok(UpsertOutcome::Created));
    repository.expect_detail().returning(|_| Ok(Some(detail())));
    let invalidated = Arc::new(Mutex::new(Vec::new()));
    let service = service(repository, recording_cache(invalidated.clone()));
    let profile = StockProfile::new(
        "Apple Inc.".into(),
        "NASDAQ".into(),
        "Tech".into(),
        None,
        None,
        None,
    )
    .unwrap();
    let (created, view) = service.upsert_stock(aapl(), profile).await.unwrap();
    assert!(created);
    assert_eq!(view.summary.ticker, "AAPL");
    // The ticker's detail and quote, the list, top movers and the leaderboard; not its history.
    assert_eq!(
        *invalidated.lock().unwrap(),
        vec!["gen:stock:AAPL", "gen:market"]
    );
}

#[tokio::test]
async fn a_price_upload_also_invalidates_the_history() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_upsert_bars()
        .times(1)
        .returning(|_, bars| Ok(bars.len() as u64));
    let invalidated = Arc::new(Mutex::new(Vec::new()));
    let service = service(repository, recording_cache(invalidated.clone()));
    assert_eq!(
        service
            .upload_prices(aapl(), vec![bar(day(20), 1), bar(day(21), 2)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        *invalidated.lock().unwrap(),
        vec!["gen:stock:AAPL", "gen:market", "gen:history:AAPL"]
    );
}

#[tokio::test]
async fn an_upload_with_duplicate_or_future_dates_stores_nothing() {
    let mut repository = MockStockRepository::new();
    repository.expect_upsert_bars().never();
    let service = service(repository, MockCache::new());
    let tomorrow = Utc::now().date_naive() + Days::new(1);
    let result = service
        .upload_prices(
            aapl(),
            vec![bar(day(20), 1), bar(day(20), 2), bar(tomorrow, 3)],
        )
        .await;
    let Err(AppError::Invalid(errors)) = result else {
        panic!("expected a validation error")
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["bars[1].date", "bars[2].date"]);
    assert!(matches!(
        service.upload_prices(aapl(), vec![]).await,
        Err(AppError::Invalid(_))
    ));
}

#[tokio::test]
async fn deleting_an_unknown_stock_invalidates_nothing() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_delete_stock()
        .returning(|t| Err(RepositoryError::NotFound(t.clone())));
    let mut cache = MockCache::new();
    cache.expect_delete_many().never();
    let result = service(repository, cache).delete_stock(aapl()).await;
    assert!(matches!(result, Err(AppError::NotFound(_))));
}

#[tokio::test]
async fn a_committed_write_succeeds_even_when_the_cache_is_unreachable() {
    let mut repository = MockStockRepository::new();
    repository.expect_delete_stock().returning(|_| Ok(()));
    repository.expect_summaries().returning(|_| Ok(vec![]));
    let mut cache = MockCache::new();
    cache
        .expect_delete_many()
        .returning(|_| Err(CacheError::Unavailable("timeout".into())));
    cache
        .expect_get_many()
        .returning(|_| Err(CacheError::Unavailable("timeout".into())));
    assert!(service(repository, cache)
        .delete_stock(aapl())
        .await
        .is_ok());
}

#[tokio::test]
async fn cache_administration_checks_its_input_and_tolerates_a_disabled_cache() {
    let mut cache = MockCache::new();
    cache
        .expect_delete_matching()
        .returning(|_| Err(CacheError::Disabled));
    cache
        .expect_clear()
        .returning(|| Err(CacheError::Unavailable("down".into())));
    let service = service(MockStockRepository::new(), cache);
    assert!(matches!(
        service.invalidate_cache(String::new()).await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        service.invalidate_cache("x".repeat(257)).await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(
        service.invalidate_cache("stocks:*".into()).await.unwrap(),
        0
    );
    assert!(matches!(
        service.clear_cache().await,
        Err(AppError::CacheUnavailable(_))
    ));
}

fn ticker(name: &str) -> Ticker {
    Ticker::parse(name).unwrap()
}

fn stock(name: &str) -> StockRecord {
    StockRecord {
        ticker: ticker(name),
        name: format!("{name} Corp."),
        ..record()
    }
}

#[tokio::test]
async fn quotes_load_every_miss_in_one_query_and_cache_the_absent_too() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .with(eq(vec![ticker("MSFT"), ticker("ZZZZ"), ticker("AAPL")]))
        .times(1)
        // In no particular order, as the port allows.
        .returning(|_| Ok(vec![stock("AAPL"), stock("MSFT")]));
    let service = service(repository, recording_cache(Arc::default()));
    let tickers = || vec![ticker("MSFT"), ticker("ZZZZ"), ticker("AAPL")];
    let first = service.quotes(tickers()).await.unwrap();
    let second = service.quotes(tickers()).await.unwrap();
    assert_eq!(
        (first.outcome, second.outcome),
        (CacheOutcome::Miss, CacheOutcome::Hit)
    );
    assert_eq!(
        (first.body.clone(), first.etag.clone()),
        (second.body, second.etag)
    );
    let json: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    let items: Vec<_> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["MSFT", "AAPL"]);
    assert_eq!(json["missing"], serde_json::json!(["ZZZZ"]));
    assert_eq!(json["items"][1]["price"], 200.0);
    assert!(first.max_age > 0 && second.max_age <= first.max_age);
    let metrics = service.cache_aside.metrics();
    let count = |event| metrics.count(crate::cache_keys::KeyFamily::Quote, event);
    use crate::metrics::CacheEvent;
    assert_eq!(
        [
            count(CacheEvent::Hit),
            count(CacheEvent::Miss),
            count(CacheEvent::Load)
        ],
        [3, 3, 3]
    );
}

#[tokio::test]
async fn quotes_load_only_the_tickers_that_missed() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .with(eq(vec![ticker("AAPL")]))
        .times(1)
        .returning(|_| Ok(vec![stock("AAPL")]));
    repository
        .expect_summaries()
        .with(eq(vec![ticker("MSFT")]))
        .times(1)
        .returning(|_| Ok(vec![stock("MSFT")]));
    let service = service(repository, recording_cache(Arc::default()));
    service.quotes(vec![ticker("AAPL")]).await.unwrap();
    let both = service
        .quotes(vec![ticker("AAPL"), ticker("MSFT")])
        .await
        .unwrap();
    assert_eq!(both.outcome, CacheOutcome::Miss);
    let json: serde_json::Value = serde_json::from_slice(&both.body).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 2);
    assert_eq!(json["missing"], serde_json::json!([]));
}

#[tokio::test]
async fn quotes_bypass_a_disabled_cache_and_refuse_an_empty_or_oversized_batch() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .times(1)
        .returning(|_| Ok(vec![stock("AAPL")]));
    let mut cache = MockCache::new();
    cache
        .expect_get_many()
        .times(1)
        .returning(|_| Err(CacheError::Disabled));
    cache.expect_coherence().return_const(None);
    cache.expect_put().never();
    let service = service(repository, cache);
    let answer = service.quotes(vec![ticker("AAPL")]).await.unwrap();
    assert_eq!((answer.outcome, answer.max_age), (CacheOutcome::Bypass, 0));
    for count in [0, crate::MAX_QUOTE_TICKERS + 1] {
        let tickers = (0..count).map(|i| ticker(&format!("T{i}"))).collect();
        match service.quotes(tickers).await {
            Err(AppError::Invalid(errors)) => assert_eq!(errors[0].field, "tickers"),
            other => panic!("expected a 400 about tickers, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_quote_batch_fails_when_the_database_does_and_nothing_stale_stands_in() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    let service = service(repository, recording_cache(Arc::default()));
    assert!(matches!(
        service.quotes(vec![ticker("AAPL")]).await,
        Err(AppError::Unavailable(_))
    ));
}

/// Issue 14's breaker holds for batches too: once a batch's load found the database down, a
/// batch of other cold tickers and a cold single read are refused at once, without a query,
/// until the trial a second later, which a batch may be, finds it back.
#[tokio::test(start_paused = true)]
async fn a_failed_quote_batch_opens_the_database_breaker_for_every_cold_read() {
    use crate::cache_aside::{BreakerState, TRIAL_INTERVAL};
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .with(eq(vec![ticker("AAPL")]))
        .times(1)
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    // Once only: the refused batch of MSFT must not reach it, the trial must.
    repository
        .expect_summaries()
        .with(eq(vec![ticker("MSFT")]))
        .times(1)
        .returning(|_| Ok(vec![stock("MSFT")]));
    repository.expect_detail().never();
    let service = service(repository, recording_cache(Arc::default()));
    assert!(matches!(
        service.quotes(vec![ticker("AAPL")]).await,
        Err(AppError::Unavailable(_))
    ));
    assert_eq!(
        service.cache_aside.database_breaker(),
        (BreakerState::Open, 1)
    );
    assert!(matches!(
        service.quotes(vec![ticker("MSFT")]).await,
        Err(AppError::Unavailable(_))
    ));
    assert!(matches!(
        service.stock_detail(aapl()).await,
        Err(AppError::Unavailable(_))
    ));

    tokio::time::advance(TRIAL_INTERVAL).await;
    let trial = service.quotes(vec![ticker("MSFT")]).await.unwrap();
    assert_eq!(trial.outcome, CacheOutcome::Miss);
    assert_eq!(
        service.cache_aside.database_breaker(),
        (BreakerState::Closed, 1)
    );
}

/// And the other way round: a single read that found the database down keeps a batch's
/// cold tickers from the database too.
#[tokio::test]
async fn a_failed_single_read_refuses_a_quote_batch_without_a_query() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_detail()
        .times(1)
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    repository.expect_summaries().never();
    let service = service(repository, recording_cache(Arc::default()));
    assert!(matches!(
        service.stock_detail(aapl()).await,
        Err(AppError::Unavailable(_))
    ));
    assert!(matches!(
        service.quotes(vec![ticker("AAPL"), ticker("MSFT")]).await,
        Err(AppError::Unavailable(_))
    ));
}

/// Quote events that record what is published and deliver `incoming` as the other instances'.
fn quote_events(
    published: Arc<Mutex<Vec<QuoteChange>>>,
    incoming: Vec<QuoteChange>,
) -> Arc<MockQuoteEvents> {
    let mut events = MockQuoteEvents::new();
    events.expect_publish().returning(move |change| {
        published.lock().unwrap().push(change.clone());
        Ok(())
    });
    let mut incoming = Some(incoming);
    events.expect_subscribe().times(1).returning(move || {
        use futures::StreamExt;
        let changes = incoming.take().unwrap_or_default();
        futures::stream::iter(changes)
            .chain(futures::stream::pending())
            .boxed()
    });
    Arc::new(events)
}

#[tokio::test]
async fn a_stream_opens_with_the_quotes_of_the_tickers_that_have_a_stock_in_order() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .times(1)
        .returning(|_| Ok(vec![stock("AAPL"), stock("MSFT")]));
    let service = service(repository, recording_cache(Arc::default()));
    let stream = service
        .open_quote_stream(vec![ticker("MSFT"), ticker("ZZZZ"), ticker("AAPL")])
        .await
        .unwrap();
    let first: Vec<serde_json::Value> = stream
        .first
        .iter()
        .map(|event| {
            assert_eq!(event.kind, LiveEventKind::Quote);
            assert!(!event.data.contains(&b'\n'), "one line");
            serde_json::from_slice(&event.data).unwrap()
        })
        .collect();
    let tickers: Vec<_> = first
        .iter()
        .map(|q| q["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(tickers, ["MSFT", "AAPL"]);
    // The same bytes as the batch's entries: the batch is now a hit, assembled from them.
    let batch = service.quotes(vec![ticker("MSFT")]).await.unwrap();
    assert_eq!(batch.outcome, CacheOutcome::Hit);
    let batch: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
    assert_eq!(batch["items"][0], first[0]);
    assert_eq!(service.stream_counters().open, 1);
    assert_eq!(service.stream_counters().events_sent, 2);
    drop(stream);
    assert_eq!(service.stream_counters().open, 0);
}

#[tokio::test]
async fn an_upload_announces_the_fresh_quote_once_after_its_commit_here_and_to_the_others() {
    let mut sequence = mockall::Sequence::new();
    let mut repository = MockStockRepository::new();
    repository
        .expect_summaries()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_| Ok(vec![]));
    repository
        .expect_upsert_bars()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_, bars| Ok(bars.len() as u64));
    repository
        .expect_summaries()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_| Ok(vec![record()]));
    let published = Arc::new(Mutex::new(Vec::new()));
    let service = service(repository, recording_cache(Arc::default()))
        .with_quote_events(quote_events(published.clone(), vec![]));
    let mut stream = service.open_quote_stream(vec![aapl()]).await.unwrap();
    assert!(stream.first.is_empty(), "no stock has the ticker yet");

    let bars = (1..=20)
        .map(|d| bar(day(d), 1_000 * i64::from(d)))
        .collect();
    service.upload_prices(aapl(), bars).await.unwrap();

    let event = stream.changes.next().await.unwrap();
    assert_eq!(event.kind, LiveEventKind::Quote);
    let quote: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(quote["price"], 200.0);
    let published = published.lock().unwrap();
    assert_eq!(published.len(), 1, "once per ticker, not once per bar");
    assert_eq!(published[0].ticker, aapl());
    assert_eq!(published[0].summary.as_ref(), Some(&event.data));
}

#[tokio::test]
async fn a_delete_announces_a_removal_and_a_failed_write_announces_nothing() {
    let mut repository = MockStockRepository::new();
    repository
        .expect_delete_stock()
        .times(1)
        .returning(|_| Ok(()));
    repository
        .expect_upsert_bars()
        .returning(|t, _| Err(RepositoryError::NotFound(t.clone())));
    repository.expect_summaries().returning(|_| Ok(vec![]));
    let published = Arc::new(Mutex::new(Vec::new()));
    let service = service(repository, recording_cache(Arc::default()))
        .with_quote_events(quote_events(published.clone(), vec![]));
    let mut stream = service.open_quote_stream(vec![aapl()]).await.unwrap();
    assert!(service
        .upload_prices(aapl(), vec![bar(day(20), 1)])
        .await
        .is_err());
    service.delete_stock(aapl()).await.unwrap();
    let event = stream.changes.next().await.unwrap();
    assert_eq!(event.kind, LiveEventKind::Removed);
    assert_eq!(event.data.as_ref(), br#"{"ticker":"AAPL"}"#);
    assert_eq!(
        *published.lock().unwrap(),
        vec![QuoteChange {
            ticker: aapl(),
            summary: None
        }]
    );
}

#[tokio::test]
async fn the_other_instances_changes_reach_this_instances_streams() {
    let mut repository = MockStockRepository::new();
    repository.expect_summaries().returning(|_| Ok(vec![]));
    let remote = QuoteChange {
        ticker: aapl(),
        summary: Some(Bytes::from_static(b"{\"ticker\":\"AAPL\"}")),
    };
    let service = service(repository, recording_cache(Arc::default()));
    let mut stream = service.open_quote_stream(vec![aapl()]).await.unwrap();
    let service = service.with_quote_events(quote_events(Arc::default(), vec![remote.clone()]));
    let event = stream.changes.next().await.unwrap();
    assert_eq!(Some(event.data), remote.summary);
    drop(service);
}

#[tokio::test]
async fn streams_past_the_most_are_refused_and_shutdown_ends_them() {
    let mut repository = MockStockRepository::new();
    repository.expect_summaries().returning(|_| Ok(vec![]));
    let service = Stockpile::new(
        Arc::new(repository),
        Arc::new(recording_cache(Arc::default())),
        Arc::new(CacheMetrics::default()),
        ServiceSettings {
            max_streams: 1,
            ..ServiceSettings::default()
        },
    );
    let mut open = service.open_quote_stream(vec![aapl()]).await.unwrap();
    assert!(matches!(
        service.open_quote_stream(vec![aapl()]).await,
        Err(AppError::Overloaded(_))
    ));
    assert!(matches!(
        service.open_quote_stream(vec![]).await,
        Err(AppError::Invalid(_))
    ));
    service.end_quote_streams();
    assert!(open.changes.next().await.is_none());
    assert!(matches!(
        service.open_quote_stream(vec![aapl()]).await,
        Err(AppError::Overloaded(_))
    ));
}
