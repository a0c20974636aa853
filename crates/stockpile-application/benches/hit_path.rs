//! The in-process cost of a cache hit, without HTTP: building and hashing the key, and the
//! cache-aside read of a stored entry (lookup and decoding) from an in-memory map, and a
//! 100-entry batch read (`GET /api/quotes`) against a single entry's read in the same run.
//!
//! `cargo bench -p stockpile-application --bench hit_path`

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures::FutureExt;
use stockpile_application::cache_aside::{CacheAside, CachePolicy};
use stockpile_application::cache_keys::{detail_key, list_key, quote_key, EntryKey, KeyFamily};
use stockpile_application::metrics::CacheMetrics;
use stockpile_application::ports::{Cache, CacheBackend, CacheError, CacheState, CacheStatus};
use stockpile_domain::{ListQuery, PageRequest, SortField, SortOrder, Ticker};

/// The cheapest possible store, so the figures are the read path's own cost.
#[derive(Default)]
struct MapCache(RwLock<HashMap<String, Bytes>>);

#[async_trait]
impl Cache for MapCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self
            .0
            .read()
            .map_err(|_| CacheError::Disabled)?
            .get(key)
            .cloned())
    }
    async fn put(&self, key: &str, value: Bytes, _retain_for: Duration) -> Result<(), CacheError> {
        self.0
            .write()
            .map_err(|_| CacheError::Disabled)?
            .insert(key.to_owned(), value);
        Ok(())
    }
    async fn delete(&self, _key: &str) -> Result<bool, CacheError> {
        Ok(false)
    }
    async fn delete_matching(&self, _pattern: &str) -> Result<u64, CacheError> {
        Ok(0)
    }
    async fn clear(&self) -> Result<u64, CacheError> {
        Ok(0)
    }
    async fn status(&self) -> CacheStatus {
        CacheStatus {
            state: CacheState::Serving(CacheBackend::Memory),
            topology: None,
            key_prefix: String::new(),
            faults: Default::default(),
        }
    }
}

fn ticker(symbol: &str) -> Ticker {
    Ticker::parse(symbol).expect("a valid ticker")
}

fn query() -> ListQuery {
    ListQuery {
        search: Some("inc".into()),
        sector: Some("information technology".into()),
        exchange: None,
        sort: SortField::ChangePercent,
        order: SortOrder::Desc,
        page: PageRequest {
            page: 2,
            page_size: 50,
        },
    }
}

fn key_building(c: &mut Criterion) {
    let query = query();
    c.bench_function("list_key (normalised query, XXH3)", |b| {
        b.iter(|| list_key(std::hint::black_box(&query)))
    });
}

fn cached_read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("cache-aside hit");
    for size in [1_000_usize, 10_000, 25_000] {
        let reads = CacheAside::new(
            Arc::new(MapCache::default()),
            Arc::new(CacheMetrics::default()),
            CachePolicy::default(),
        );
        let body = Bytes::from(vec![b'x'; size]);
        runtime.block_on(async {
            let stored = body.clone();
            reads
                .read(KeyFamily::List, list_key(&query()), move || {
                    async move { Ok(stored) }.boxed()
                })
                .await
                .expect("stored");
        });
        group.bench_with_input(BenchmarkId::new("body bytes", size), &size, |b, _| {
            b.to_async(&runtime).iter(|| async {
                reads
                    .read(KeyFamily::List, list_key(&query()), || {
                        async { unreachable!("a hit never loads") }.boxed()
                    })
                    .await
                    .expect("a hit")
            });
        });
    }
    group.finish();
}

/// A summary-sized body (a `StockSummary` is about 250 bytes of JSON).
fn summary_body(ticker: usize) -> Bytes {
    Bytes::from(format!(
        "{{\"ticker\":\"T{ticker}\",\"padding\":\"{}\"}}",
        "x".repeat(220)
    ))
}

fn batch_read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let reads = CacheAside::new(
        Arc::new(MapCache::default()),
        Arc::new(CacheMetrics::default()),
        CachePolicy::default(),
    );
    let requests = || -> Vec<(EntryKey, usize)> {
        (0..100)
            .map(|i| (quote_key(&ticker(&format!("T{i}"))), i))
            .collect()
    };
    let join = |bodies: &[Bytes]| Ok(Bytes::from(bodies.join(&b","[..])));
    runtime.block_on(async {
        reads
            .read_many(
                KeyFamily::Quote,
                requests(),
                |items| async move { Ok(items.into_iter().map(summary_body).collect()) }.boxed(),
                join,
            )
            .await
            .expect("stored");
        reads
            .read(KeyFamily::Detail, detail_key(&ticker("AAPL")), || {
                async { Ok(summary_body(0)) }.boxed()
            })
            .await
            .expect("stored");
    });
    let mut group = c.benchmark_group("batch hit");
    group.bench_function("one entry (a detail hit)", |b| {
        b.to_async(&runtime).iter(|| async {
            reads
                .read(KeyFamily::Detail, detail_key(&ticker("AAPL")), || {
                    async { unreachable!("a hit never loads") }.boxed()
                })
                .await
                .expect("a hit")
        });
    });
    group.bench_function("100 entries (a 100-ticker quotes hit)", |b| {
        b.to_async(&runtime).iter(|| async {
            reads
                .read_many(
                    KeyFamily::Quote,
                    requests(),
                    |_| async { unreachable!("a hit never loads") }.boxed(),
                    join,
                )
                .await
                .expect("a hit")
        });
    });
    group.finish();
}

criterion_group!(benches, key_building, cached_read, batch_read);
criterion_main!(benches);
