use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::Notify;

use super::*;
use crate::ports::{CacheBackend, CacheState, CacheStatus, Coherence, MockCache, RepositoryError};

/// A cache in a hash map, expiring nothing: enough to watch what the read path stores.
#[derive(Default)]
struct MapCache {
    entries: Mutex<HashMap<String, Bytes>>,
    puts: AtomicUsize,
    /// Lookups by key, one by one and in batches.
    gets: AtomicUsize,
    batches: AtomicUsize,
    /// What [`Cache::coherence`] answers; `None` (the default) vouches for nothing.
    vouching: Mutex<Option<Coherence>>,
    /// Moves the mark at every batch lookup, as an invalidation arriving meanwhile would.
    invalidated_during_lookups: std::sync::atomic::AtomicBool,
}

impl MapCache {
    fn vouching_for(for_at_most: Duration) -> Self {
        let cache = Self::default();
        *cache.vouching.lock().unwrap() = Some(Coherence {
            mark: 0,
            for_at_most,
        });
        cache
    }

    /// What a write does here: the mark moves, then the entry changes.
    fn rewrite(&self, key: &str, value: Bytes) {
        if let Some(coherence) = self.vouching.lock().unwrap().as_mut() {
            coherence.mark += 1;
        }
        self.entries.lock().unwrap().insert(key.to_owned(), value);
    }
}

#[async_trait]
impl Cache for MapCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.entries.lock().unwrap().get(key).cloned())
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        if self.invalidated_during_lookups.load(Ordering::SeqCst) {
            if let Some(coherence) = self.vouching.lock().unwrap().as_mut() {
                coherence.mark += 1;
            }
        }
        let entries = self.entries.lock().unwrap();
        Ok(keys.iter().map(|k| entries.get(k).cloned()).collect())
    }
    async fn put(&self, key: &str, value: Bytes, _retain_for: Duration) -> Result<(), CacheError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap().insert(key.to_owned(), value);
        Ok(())
    }
    /// Atomic, as Redis's is, and not counted among the puts: those count entries.
    async fn get_or_put_many(
        &self,
        keys: &[String],
        value: Bytes,
        _retain_for: Duration,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut entries = self.entries.lock().unwrap();
        Ok(keys
            .iter()
            .map(|k| Some(entries.entry(k.clone()).or_insert(value.clone()).clone()))
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.entries.lock().unwrap().remove(key).is_some())
    }
    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let prefix = pattern.trim_end_matches('*');
        let mut entries = self.entries.lock().unwrap();
        let before = entries.len();
        entries.retain(|k, _| !k.starts_with(prefix));
        Ok((before - entries.len()) as u64)
    }
    async fn clear(&self) -> Result<u64, CacheError> {
        let mut entries = self.entries.lock().unwrap();
        let n = entries.len() as u64;
        entries.clear();
        Ok(n)
    }
    fn coherence(&self) -> Option<Coherence> {
        *self.vouching.lock().unwrap()
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

/// The generation every entry of these tests belongs to.
const GENERATION: &str = "gen:test";

fn key(entry: &str) -> EntryKey {
    EntryKey {
        entry: entry.to_owned(),
        generation: GENERATION.to_owned(),
    }
}

fn aside(cache: Arc<dyn Cache>) -> CacheAside {
    CacheAside::new(
        cache,
        Arc::new(CacheMetrics::default()),
        CachePolicy::default(),
    )
}

fn body(text: &'static str) -> impl FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send {
    move || async move { Ok(Bytes::from_static(text.as_bytes())) }.boxed()
}

#[tokio::test]
async fn a_miss_is_stored_and_the_next_read_hits() {
    let cache = Arc::new(MapCache::default());
    let reads = aside(cache.clone());
    let first = reads
        .read(KeyFamily::Detail, key("k"), body("{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(first.outcome, CacheOutcome::Miss);
    assert!(
        (270..=330).contains(&first.max_age),
        "TTL 300 s ±10 %, got {}",
        first.max_age
    );
    let second = reads
        .read(KeyFamily::Detail, key("k"), body("other"))
        .await
        .unwrap();
    assert_eq!(second.outcome, CacheOutcome::Hit);
    assert_eq!(second.body, first.body);
    assert_eq!(second.etag, first.etag);
    assert_eq!(reads.metrics().count(KeyFamily::Detail, CacheEvent::Hit), 1);
    assert_eq!(
        reads.metrics().count(KeyFamily::Detail, CacheEvent::Miss),
        1
    );
    assert_eq!(
        reads.metrics().count(KeyFamily::Detail, CacheEvent::Load),
        1
    );
}

#[tokio::test]
async fn a_corrupt_entry_is_a_miss_that_is_replaced_and_counted() {
    let cache = Arc::new(MapCache::default());
    let reads = aside(cache.clone());
    reads
        .read(KeyFamily::List, key("k"), body("fresh"))
        .await
        .unwrap();
    let good = cache.entries.lock().unwrap().get("k").cloned().unwrap();
    let mut longer = good.to_vec();
    longer.push(b'x');
    // The previous layout, without a generation: a hit there would ignore every write.
    let generation_len = usize::from(u16::from_be_bytes([good[20], good[21]]));
    let mut previous_layout = b"SPE2".to_vec();
    previous_layout.extend_from_slice(&good[4..20]);
    previous_layout.extend_from_slice(&good[22..28]);
    previous_layout.extend_from_slice(&good[28 + generation_len..]);
    let corrupt = [
        Bytes::from_static(b"not an entry"),
        Bytes::from_static(b"SPE3\x00\x00"),
        Bytes::new(),
        // Shorter, or longer, than the body length the entry records.
        good.slice(..good.len() - 1),
        Bytes::from(longer),
        Bytes::from(previous_layout),
    ];
    let count = corrupt.len();
    for entry in corrupt {
        cache.entries.lock().unwrap().insert("k".into(), entry);
        let answer = reads
            .read(KeyFamily::List, key("k"), body("fresh"))
            .await
            .unwrap();
        assert_eq!(answer.outcome, CacheOutcome::Miss);
        assert_eq!(&answer.body[..], b"fresh");
        assert_eq!(
            reads
                .read(KeyFamily::List, key("k"), body("x"))
                .await
                .unwrap()
                .outcome,
            CacheOutcome::Hit
        );
    }
    assert_eq!(
        reads.metrics().count(KeyFamily::List, CacheEvent::Error),
        u64::try_from(count).unwrap()
    );
}

/// A layer over a cache whose every `get` fails with `error` (and that must store nothing),
/// after one read of "k".
async fn read_through_a_cache_failing_with(error: CacheError) -> (CacheAside, CachedResponse) {
    let mut cache = MockCache::new();
    cache
        .expect_get_many()
        .returning(move |_| Err(error.clone()));
    cache.expect_put().never();
    let reads = aside(Arc::new(cache));
    let answer = reads
        .read(KeyFamily::Top, key("k"), body("x"))
        .await
        .unwrap();
    (reads, answer)
}

#[tokio::test]
async fn an_unreachable_cache_bypasses_and_counts_an_error() {
    let (reads, answer) =
        read_through_a_cache_failing_with(CacheError::Unavailable("refused".into())).await;
    assert_eq!(answer.outcome, CacheOutcome::Bypass);
    assert_eq!(reads.metrics().count(KeyFamily::Top, CacheEvent::Error), 1);
    assert_eq!(reads.metrics().count(KeyFamily::Top, CacheEvent::Miss), 0);
}

#[tokio::test]
async fn a_disabled_cache_bypasses_without_an_error() {
    let (reads, answer) = read_through_a_cache_failing_with(CacheError::Disabled).await;
    assert_eq!(answer.outcome, CacheOutcome::Bypass);
    assert_eq!(reads.metrics().total(CacheEvent::Error), 0);
}

#[tokio::test]
async fn concurrent_misses_of_one_key_load_once() {
    let cache = Arc::new(MapCache::default());
    let reads = Arc::new(aside(cache.clone()));
    let loads = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (reads, loads, release) = (reads.clone(), loads.clone(), release.clone());
        tasks.push(tokio::spawn(async move {
            reads
                .read(KeyFamily::Leaderboard, key("cold"), move || {
                    async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok(Bytes::from_static(b"[1]"))
                    }
                    .boxed()
                })
                .await
        }));
    }
    // Let every request join before the single load finishes.
    while reads.flights.is_idle() {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.notify_waiters();
    for task in tasks {
        assert_eq!(&task.await.unwrap().unwrap().body[..], b"[1]");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        reads
            .metrics()
            .count(KeyFamily::Leaderboard, CacheEvent::Load),
        1
    );
    assert_eq!(cache.puts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_entry_is_served_stale_when_the_database_fails() {
    let cache = Arc::new(MapCache::default());
    let reads = with_expired_entry(&cache).await;
    let answer = reads
        .read(KeyFamily::Detail, key("k"), || {
            async {
                Err(AppError::Unavailable(RepositoryError::Unavailable(
                    "down".into(),
                )))
            }
            .boxed()
        })
        .await
        .unwrap();
    assert_eq!(answer.outcome, CacheOutcome::Stale);
    assert_eq!(&answer.body[..], b"old");
    assert_eq!(answer.max_age, 0);
    assert_eq!(answer.age, Some(0));
    // Other failures are not hidden behind a stale entry (asked of a layer whose breaker did
    // not see the database fail, so that the loads run).
    let reads = CacheAside::new(
        cache.clone(),
        Arc::new(CacheMetrics::default()),
        CachePolicy::default(),
    );
    let not_found = reads
        .read(KeyFamily::Detail, key("k"), || {
            async { Err(AppError::NotFound("gone".into())) }.boxed()
        })
        .await;
    assert!(matches!(not_found, Err(AppError::NotFound(_))));
    // A rule the load itself finds broken stays a client error through the shared flight.
    let invalid = reads
        .read(KeyFamily::History, key("h"), || {
            async { Err(AppError::invalid("to", "too long")) }.boxed()
        })
        .await;
    assert!(matches!(invalid, Err(AppError::Invalid(errors)) if errors[0].field == "to"));
}

/// Two instances sharing one cache: a load on B reads the database before a write on A
/// commits and stores its result after A revoked the generation. Neither instance serves it.
#[tokio::test]
async fn a_load_racing_a_write_on_another_instance_never_serves_its_older_result() {
    let cache = Arc::new(MapCache::default());
    let (a, b) = (aside(cache.clone()), Arc::new(aside(cache.clone())));
    let loaded_old = Arc::new(Notify::new());
    let write_done = Arc::new(Notify::new());
    let reader = {
        let (b, loaded_old, write_done) = (b.clone(), loaded_old.clone(), write_done.clone());
        tokio::spawn(async move {
            b.read(KeyFamily::Detail, key("stocks:detail:AAPL"), move || {
                async move {
                    loaded_old.notify_one();
                    // The write commits and revokes while this load is in flight.
                    write_done.notified().await;
                    Ok(Bytes::from_static(b"old"))
                }
                .boxed()
            })
            .await
        })
    };
    loaded_old.notified().await;
    a.write(&[GENERATION.to_owned()], async { Ok::<_, ()>(()) })
        .await
        .unwrap();
    write_done.notify_one();
    // The load still answers its own request.
    assert_eq!(&reader.await.unwrap().unwrap().body[..], b"old");
    let next = a
        .read(KeyFamily::Detail, key("stocks:detail:AAPL"), body("new"))
        .await
        .unwrap();
    assert_eq!(
        (&next.body[..], next.outcome),
        (&b"new"[..], CacheOutcome::Miss)
    );
    // B's old entry was replaced: B hits the new one.
    let hit = b
        .read(KeyFamily::Detail, key("stocks:detail:AAPL"), body("x"))
        .await
        .unwrap();
    assert_eq!(
        (&hit.body[..], hit.outcome),
        (&b"new"[..], CacheOutcome::Hit)
    );
}

#[tokio::test]
async fn an_entry_whose_generation_vanished_is_a_miss_and_never_served_stale() {
    let cache = Arc::new(MapCache::default());
    let reads = with_expired_entry(&cache).await;
    let old_generation = cache.entries.lock().unwrap()[GENERATION].clone();
    // Evicted, or lost in a restart: the expired entry may predate a write.
    cache.entries.lock().unwrap().remove(GENERATION);
    let failed = reads
        .read(KeyFamily::Detail, key("k"), || {
            async { Err(unavailable()) }.boxed()
        })
        .await;
    assert!(
        matches!(failed, Err(AppError::Unavailable(_))),
        "{failed:?}"
    );
    // The generation started next holds a new token: the old entry never comes back.
    let reads = aside(cache.clone());
    let answer = reads
        .read(KeyFamily::Detail, key("k"), body("new"))
        .await
        .unwrap();
    assert_eq!(
        (&answer.body[..], answer.outcome),
        (&b"new"[..], CacheOutcome::Miss)
    );
    assert_ne!(cache.entries.lock().unwrap()[GENERATION], old_generation);
}

#[tokio::test]
async fn a_write_revokes_its_generations_in_one_call_and_stands_when_the_cache_fails() {
    let mut cache = MockCache::new();
    cache
        .expect_delete_many()
        .withf(|keys| keys == ["gen:stock:AAPL".to_owned(), "gen:market".to_owned()])
        .times(1)
        .returning(|_| Err(CacheError::Unavailable("timeout".into())));
    cache.expect_delete().never();
    cache.expect_delete_matching().never();
    let writes = aside(Arc::new(cache));
    let written = writes
        .write(
            &["gen:stock:AAPL".to_owned(), "gen:market".to_owned()],
            async { Ok::<_, ()>(7) },
        )
        .await;
    assert_eq!(written, Ok(7));
    // A failed write touches nothing (the mock would panic on any call).
    let failed = aside(Arc::new(MockCache::new()))
        .write(&["gen:market".to_owned()], async {
            Err::<(), _>("refused")
        })
        .await;
    assert_eq!(failed, Err("refused"));
}

#[test]
fn etags_depend_on_the_body_alone() {
    assert_eq!(etag_of(b"abc"), etag_of(b"abc"));
    assert_ne!(etag_of(b"abc"), etag_of(b"abd"));
    assert!(etag_of(b"").starts_with('"') && etag_of(b"").ends_with('"'));
}

/// A [`MapCache`] shared with other instances, as far as leases go: the lease is held by
/// "someone else" until `held_until`, and `on_grant` runs when it is granted.
#[derive(Default)]
struct FleetCache {
    map: MapCache,
    held_until: Mutex<Option<std::time::Instant>>,
    lease_down: bool,
    /// Stores this entry when the lease is granted: another instance stored and released
    /// right before.
    stored_before_grant: Option<Bytes>,
    tries: AtomicUsize,
    releases: AtomicUsize,
}

#[async_trait]
impl Cache for FleetCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.map.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, retain_for: Duration) -> Result<(), CacheError> {
        self.map.put(key, value, retain_for).await
    }
    async fn get_or_put_many(
        &self,
        keys: &[String],
        value: Bytes,
        retain_for: Duration,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.map.get_or_put_many(keys, value, retain_for).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.map.delete(key).await
    }
    async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        self.map.delete_matching(pattern).await
    }
    async fn clear(&self) -> Result<u64, CacheError> {
        self.map.clear().await
    }
    async fn try_lease(&self, key: &str, _ttl: Duration) -> Result<bool, CacheError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if self.lease_down {
            return Err(CacheError::Unavailable("refused".into()));
        }
        let held = self
            .held_until
            .lock()
            .unwrap()
            .is_some_and(|until| until > std::time::Instant::now());
        if !held {
            if let Some(entry) = &self.stored_before_grant {
                self.map
                    .entries
                    .lock()
                    .unwrap()
                    .insert(key.to_owned(), entry.clone());
            }
        }
        Ok(!held)
    }
    async fn release_lease(&self, _key: &str) -> Result<(), CacheError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn status(&self) -> CacheStatus {
        self.map.status().await
    }
}

/// The token of the generation another instance's entries were loaded under.
const THEIR_GENERATION: &[u8] = b"theirs";

/// An entry as another instance stores it: fresh for a minute.
fn entry_of(text: &'static str) -> Bytes {
    Entry::new(
        Bytes::from_static(text.as_bytes()),
        60_000,
        Bytes::from_static(THEIR_GENERATION),
    )
    .encode()
}

/// A shared cache in which another instance started the generation, and holds every lease
/// for `held`.
fn fleet_holding_for(held: Duration) -> Arc<FleetCache> {
    with_their_generation(FleetCache {
        held_until: held_for(held),
        ..FleetCache::default()
    })
}

fn with_their_generation(cache: FleetCache) -> Arc<FleetCache> {
    cache
        .map
        .entries
        .lock()
        .unwrap()
        .insert(GENERATION.to_owned(), Bytes::from_static(THEIR_GENERATION));
    Arc::new(cache)
}

/// A read of the cold leaderboard key whose load counts itself and answers `mine`.
async fn read_cold(
    reads: &CacheAside,
    loads: &Arc<AtomicUsize>,
) -> Result<CachedResponse, AppError> {
    reads
        .read(KeyFamily::Leaderboard, key("cold"), counted(loads, "mine"))
        .await
}

/// A load that counts itself.
fn counted(
    loads: &Arc<AtomicUsize>,
    text: &'static str,
) -> impl FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send {
    let loads = loads.clone();
    move || {
        async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(Bytes::from_static(text.as_bytes()))
        }
        .boxed()
    }
}

fn held_for(duration: Duration) -> Mutex<Option<std::time::Instant>> {
    Mutex::new(Some(std::time::Instant::now() + duration))
}

#[tokio::test]
async fn while_another_instance_loads_its_entry_is_awaited_and_nothing_loads() {
    let cache = fleet_holding_for(Duration::from_secs(60));
    let reads = Arc::new(aside(cache.clone()));
    let loads = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let (reads, loads) = (reads.clone(), loads.clone());
            tokio::spawn(async move { read_cold(&reads, &loads).await })
        })
        .collect();
    // The other instance stores its entry a little later.
    tokio::time::sleep(Duration::from_millis(60)).await;
    cache
        .map
        .entries
        .lock()
        .unwrap()
        .insert("cold".into(), entry_of("[\"theirs\"]"));
    for reader in readers {
        let answer = reader.await.unwrap().unwrap();
        assert_eq!(&answer.body[..], b"[\"theirs\"]");
        assert_eq!(answer.etag, etag_of(b"[\"theirs\"]"));
        assert!((50..=60).contains(&answer.max_age), "{}", answer.max_age);
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    let metrics = reads.metrics();
    assert_eq!(metrics.count(KeyFamily::Leaderboard, CacheEvent::Load), 0);
    assert_eq!(cache.map.puts.load(Ordering::SeqCst), 0);
    // One flight waited, not fifty: the lease was tried a handful of times.
    let tries = cache.tries.load(Ordering::SeqCst);
    assert!((1..=13).contains(&tries), "{tries} tries");
    assert_eq!(cache.releases.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_holder_that_never_stores_costs_one_lease_lifetime_then_one_load() {
    let cache = fleet_holding_for(Duration::from_secs(60));
    let reads = aside(cache.clone()).with_lease_ttl(Duration::from_millis(200));
    let loads = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let answer = read_cold(&reads, &loads).await.unwrap();
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(180)..Duration::from_millis(400)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(
        (&answer.body[..], answer.outcome),
        (&b"mine"[..], CacheOutcome::Miss)
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        reads
            .metrics()
            .count(KeyFamily::Leaderboard, CacheEvent::Load),
        1
    );
    // Stored for the others, without a lease of its own to release.
    assert_eq!(cache.map.puts.load(Ordering::SeqCst), 1);
    assert_eq!(cache.releases.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_lease_that_expires_without_an_entry_is_taken_over_and_released_after_the_load() {
    let cache = fleet_holding_for(Duration::from_millis(100));
    let reads = aside(cache.clone());
    let loads = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let answer = reads
        .read(KeyFamily::Detail, key("k"), counted(&loads, "mine"))
        .await
        .unwrap();
    let waited = started.elapsed();
    // Well before the 2 s lease lifetime: the lease was tried again while waiting.
    assert!(
        (Duration::from_millis(100)..Duration::from_millis(500)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(&answer.body[..], b"mine");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.releases.load(Ordering::SeqCst), 1);
    assert_eq!(
        reads
            .read(KeyFamily::Detail, key("k"), counted(&loads, "x"))
            .await
            .unwrap()
            .outcome,
        CacheOutcome::Hit
    );
}

#[tokio::test]
async fn an_entry_stored_just_before_the_lease_is_granted_is_served_not_loaded_again() {
    let cache = with_their_generation(FleetCache {
        stored_before_grant: Some(entry_of("theirs")),
        ..FleetCache::default()
    });
    let reads = aside(cache.clone());
    let loads = Arc::new(AtomicUsize::new(0));
    let answer = reads
        .read(KeyFamily::Detail, key("k"), counted(&loads, "mine"))
        .await
        .unwrap();
    assert_eq!(&answer.body[..], b"theirs");
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    // The lease taken for nothing is given back at once.
    assert_eq!(cache.releases.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lease_that_cannot_be_asked_for_means_loading_at_once() {
    let cache = Arc::new(FleetCache {
        lease_down: true,
        ..FleetCache::default()
    });
    let reads = aside(cache.clone());
    let loads = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let answer = reads
        .read(KeyFamily::Detail, key("k"), counted(&loads, "mine"))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(&answer.body[..], b"mine");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.map.puts.load(Ordering::SeqCst), 1);
    assert_eq!(cache.releases.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_entry_a_write_made_stale_during_the_wait_is_waited_past_and_loaded_again() {
    let cache = fleet_holding_for(Duration::from_secs(60));
    let reads = Arc::new(aside(cache.clone()).with_lease_ttl(Duration::from_millis(300)));
    let loads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (reads, loads) = (reads.clone(), loads.clone());
        tokio::spawn(async move {
            reads
                .read(KeyFamily::Detail, key("k"), counted(&loads, "after"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A write revokes the generation; the holder then stores what it read before the write.
    reads
        .write(&[GENERATION.to_owned()], async { Ok::<_, ()>(()) })
        .await
        .unwrap();
    cache
        .map
        .entries
        .lock()
        .unwrap()
        .insert("k".into(), entry_of("before"));
    let answer = reader.await.unwrap().unwrap();
    assert_eq!(&answer.body[..], b"after");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

/// A batch load that records which keys it was given and answers `{key}` for each, once
/// `release` is notified (at once when it is `None`).
fn batch_load(
    asked: Arc<Mutex<Vec<Vec<String>>>>,
    release: Option<Arc<Notify>>,
) -> impl FnOnce(Vec<String>) -> BoxFuture<'static, Result<Vec<Bytes>, AppError>> + Send {
    move |keys| {
        async move {
            asked.lock().unwrap().push(keys.clone());
            if let Some(release) = release {
                release.notified().await;
            }
            Ok(keys.into_iter().map(Bytes::from).collect())
        }
        .boxed()
    }
}

fn requests(keys: &[&str]) -> Vec<(EntryKey, String)> {
    keys.iter().map(|k| (key(k), (*k).to_owned())).collect()
}

fn joined(bodies: &[Bytes]) -> Result<Bytes, AppError> {
    Ok(Bytes::from(bodies.join(&b","[..])))
}

/// Three batches of the same keys, read with [`CacheAside::read_assembled`]: how many asked the
/// cache, and the answers.
async fn three_assembled_reads(cache: Arc<MapCache>) -> (usize, Vec<CachedResponse>) {
    let reads = aside(cache.clone());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let mut answers = Vec::new();
    for _ in 0..3 {
        let load = batch_load(asked.clone(), None);
        let answer = reads
            .read_assembled(
                KeyFamily::Quote,
                "a,b".to_owned(),
                || requests(&["a", "b"]),
                load,
                joined,
            )
            .await
            .unwrap();
        answers.push(answer);
    }
    (cache.batches.load(Ordering::SeqCst), answers)
}

#[tokio::test]
async fn an_assembled_batch_is_reused_while_the_cache_vouches_for_its_entries() {
    let cache = Arc::new(MapCache::vouching_for(Duration::from_secs(60)));
    let reads = aside(cache.clone());
    let read = || {
        reads.read_assembled(
            KeyFamily::Quote,
            "a,b".to_owned(),
            || requests(&["a", "b"]),
            batch_load(Arc::new(Mutex::new(Vec::new())), None),
            joined,
        )
    };
    let miss = read().await.unwrap();
    let hit = read().await.unwrap();
    let reused = read().await.unwrap();
    assert_eq!(
        [miss.outcome, hit.outcome, reused.outcome],
        [CacheOutcome::Miss, CacheOutcome::Hit, CacheOutcome::Hit]
    );
    assert_eq!(
        cache.batches.load(Ordering::SeqCst),
        2,
        "the third read asked the cache"
    );
    assert_eq!((&reused.body, &reused.etag), (&hit.body, &hit.etag));
    assert!(reused.max_age > 0 && reused.max_age <= hit.max_age);
    assert_eq!(
        reads.metrics().count(KeyFamily::Quote, CacheEvent::Hit),
        4,
        "a reused answer counts a hit per entry"
    );

    // A write moves the mark: the next read looks its entries up again and sees the new one.
    let entry = Entry::decode(cache.entries.lock().unwrap()["a"].clone()).unwrap();
    let rewritten = Entry::new(Bytes::from_static(b"A"), 60_000, entry.generation);
    cache.rewrite("a", rewritten.encode());
    let after = read().await.unwrap();
    assert_eq!(&after.body[..], b"A,b");
    assert_eq!(cache.batches.load(Ordering::SeqCst), 3);
    assert_eq!(&read().await.unwrap().body[..], b"A,b");
    assert_eq!(cache.batches.load(Ordering::SeqCst), 3, "reused again");
}

#[tokio::test]
async fn an_assembled_batch_is_looked_up_again_when_the_cache_cannot_vouch_for_it() {
    let (silent, _) = three_assembled_reads(Arc::new(MapCache::default())).await;
    assert_eq!(silent, 3, "a cache that vouches for nothing");

    let (no_window, _) =
        three_assembled_reads(Arc::new(MapCache::vouching_for(Duration::ZERO))).await;
    assert_eq!(no_window, 3, "a cache whose word lasts no time");

    let moving = Arc::new(MapCache::vouching_for(Duration::from_secs(60)));
    moving
        .invalidated_during_lookups
        .store(true, Ordering::SeqCst);
    let (moved, answers) = three_assembled_reads(moving).await;
    assert_eq!(moved, 3, "the mark moved while the entries were read");
    assert!(answers.iter().all(|a| &a.body[..] == b"a,b"));
}

#[tokio::test]
async fn a_batch_asks_the_cache_once_and_loads_its_misses_together() {
    let cache = Arc::new(MapCache::default());
    let reads = aside(cache.clone());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let read = |keys: &'static [&'static str]| {
        let load = batch_load(asked.clone(), None);
        reads.read_many(KeyFamily::Quote, requests(keys), load, joined)
    };
    let first = read(&["a"]).await.unwrap();
    let both = read(&["b", "a"]).await.unwrap();
    let again = read(&["b", "a"]).await.unwrap();
    assert_eq!(
        *asked.lock().unwrap(),
        vec![vec!["a".to_owned()], vec!["b".to_owned()]]
    );
    assert_eq!(
        [first.outcome, both.outcome, again.outcome],
        [CacheOutcome::Miss, CacheOutcome::Miss, CacheOutcome::Hit]
    );
    assert_eq!(&again.body[..], b"b,a");
    assert_eq!(
        (both.etag.clone(), again.etag.clone()),
        (etag_of(b"b,a"), etag_of(b"b,a"))
    );
    assert!(again.max_age <= both.max_age && again.max_age > 0);
    assert_eq!(cache.batches.load(Ordering::SeqCst), 3);
    assert_eq!(cache.gets.load(Ordering::SeqCst), 0);
    assert_eq!(cache.puts.load(Ordering::SeqCst), 2);
    let count = |event| reads.metrics().count(KeyFamily::Quote, event);
    assert_eq!(
        [
            count(CacheEvent::Hit),
            count(CacheEvent::Miss),
            count(CacheEvent::Load)
        ],
        [3, 2, 2]
    );
}

#[tokio::test]
async fn two_concurrent_batches_sharing_a_cold_key_load_it_once() {
    let cache = Arc::new(MapCache::default());
    let reads = Arc::new(aside(cache.clone()));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let release = Arc::new(Notify::new());
    let batch = |keys: &'static [&'static str]| {
        let (reads, asked, release) = (reads.clone(), asked.clone(), release.clone());
        tokio::spawn(async move {
            let load = batch_load(asked, Some(release));
            reads
                .read_many(KeyFamily::Quote, requests(keys), load, joined)
                .await
        })
    };
    let first = batch(&["a", "shared"]);
    while asked.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let second = batch(&["shared", "c"]);
    while asked.lock().unwrap().len() < 2 {
        tokio::task::yield_now().await;
    }
    // Both loads are under way; let both finish.
    while Arc::strong_count(&release) > 1 {
        release.notify_waiters();
        tokio::task::yield_now().await;
    }
    let (first, second) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert_eq!(
        (&first.body[..], &second.body[..]),
        (&b"a,shared"[..], &b"shared,c"[..])
    );
    assert_eq!(
        *asked.lock().unwrap(),
        vec![
            vec!["a".to_owned(), "shared".to_owned()],
            vec!["c".to_owned()]
        ]
    );
    assert_eq!(reads.metrics().count(KeyFamily::Quote, CacheEvent::Load), 3);
    assert!(reads.flights.is_idle());
}

#[tokio::test]
async fn a_batch_is_served_stale_only_when_every_missed_key_has_a_stale_entry() {
    let cache = Arc::new(MapCache::default());
    let policy = CachePolicy {
        ttl_default: Duration::from_millis(1),
        ..CachePolicy::default()
    };
    let reads = CacheAside::new(cache.clone(), Arc::new(CacheMetrics::default()), policy);
    let asked = Arc::new(Mutex::new(Vec::new()));
    reads
        .read_many(
            KeyFamily::Quote,
            requests(&["a", "b"]),
            batch_load(asked, None),
            joined,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let failing = || {
        |_keys: Vec<String>| {
            async {
                Err(AppError::Unavailable(RepositoryError::Unavailable(
                    "down".into(),
                )))
            }
            .boxed()
        }
    };
    let stale = reads
        .read_many(KeyFamily::Quote, requests(&["a", "b"]), failing(), joined)
        .await
        .unwrap();
    assert_eq!((stale.outcome, stale.max_age), (CacheOutcome::Stale, 0));
    assert_eq!(&stale.body[..], b"a,b");
    assert!(stale.age.is_some());
    let partly = reads
        .read_many(KeyFamily::Quote, requests(&["a", "new"]), failing(), joined)
        .await;
    assert!(matches!(partly, Err(AppError::Unavailable(_))));
}

fn unavailable() -> AppError {
    AppError::Unavailable(RepositoryError::Unavailable("down".into()))
}

/// A layer over `cache` whose entries expire after a millisecond, with an expired entry
/// `old` under "k".
async fn with_expired_entry(cache: &Arc<MapCache>) -> CacheAside {
    let policy = CachePolicy {
        ttl_default: Duration::from_millis(1),
        ..CachePolicy::default()
    };
    let reads = CacheAside::new(cache.clone(), Arc::new(CacheMetrics::default()), policy);
    reads
        .read(KeyFamily::Detail, key("k"), body("old"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    reads
}

#[tokio::test]
async fn a_slow_load_answers_stale_after_the_soft_timeout_and_stores_its_result_later() {
    let cache = Arc::new(MapCache::default());
    let reads = with_expired_entry(&cache).await;
    let release = Arc::new(Notify::new());
    let started = tokio::time::Instant::now();
    let answer = {
        let release = release.clone();
        reads
            .read(KeyFamily::Detail, key("k"), move || {
                async move {
                    release.notified().await;
                    Ok(Bytes::from_static(b"new"))
                }
                .boxed()
            })
            .await
            .unwrap()
    };
    let waited = started.elapsed();
    assert_eq!(answer.outcome, CacheOutcome::Stale);
    assert_eq!(&answer.body[..], b"old");
    let soft = CachePolicy::default().soft_timeout;
    assert!(
        waited >= soft,
        "answered before the soft timeout: {waited:?}"
    );
    // The load goes on without anyone waiting for it, and stores what it finds.
    release.notify_one();
    while !reads.flights.is_idle() {
        tokio::task::yield_now().await;
    }
    let stored = Entry::decode(cache.entries.lock().unwrap()["k"].clone()).unwrap();
    assert_eq!(&stored.body[..], b"new");
}

#[tokio::test]
async fn while_the_database_fails_loads_are_refused_at_once_until_a_trial_succeeds() {
    let cache = Arc::new(MapCache::default());
    let reads = with_expired_entry(&cache).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let failing = |loads: &Arc<AtomicUsize>| {
        let loads = loads.clone();
        move || {
            async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Err(unavailable())
            }
            .boxed()
        }
    };
    let first = reads
        .read(KeyFamily::List, key("cold"), failing(&loads))
        .await;
    assert!(matches!(first, Err(AppError::Unavailable(_))));
    assert_eq!(reads.database_breaker(), (BreakerState::Open, 1));
    // Refused without a load: a cold read fails, an expired entry is served stale.
    let cold = reads
        .read(KeyFamily::List, key("other"), failing(&loads))
        .await;
    assert!(matches!(cold, Err(AppError::Unavailable(_))));
    let stale = reads
        .read(KeyFamily::Detail, key("k"), failing(&loads))
        .await
        .unwrap();
    assert_eq!(stale.outcome, CacheOutcome::Stale);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "only the first read reached the database"
    );
    // After the trial interval one load is let through; its success closes the breaker.
    tokio::time::sleep(TRIAL_INTERVAL).await;
    let back = reads
        .read(KeyFamily::List, key("cold"), body("[]"))
        .await
        .unwrap();
    assert_eq!(back.outcome, CacheOutcome::Miss);
    assert_eq!(reads.database_breaker(), (BreakerState::Closed, 1));
}
