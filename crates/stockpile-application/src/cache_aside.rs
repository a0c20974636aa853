//! Cache-aside reads: look the answer up under its key; on a miss compute it once (however
//! many requests miss at the same moment), store it with its TTL and return it.
//!
//! An entry is the serialised response body with its ETag and two timestamps, so a hit does
//! no database work and no serialisation. Entries are kept past their TTL for the
//! stale-if-error window: an expired entry is a miss, but when the database then fails it is
//! served as `STALE` rather than failing the request.
//!
//! One load per miss holds across instances too: before loading, the in-process flight takes
//! a short lease on the key in the shared cache ([`Cache::try_lease`]). When another instance
//! holds it, the flight polls the cache for the entry that instance is about to store, and
//! loads itself only when the lease frees up without an entry (its holder died or failed) or
//! after the lease's lifetime at the most.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use rand::Rng;

use crate::cache_keys::KeyFamily;
use crate::metrics::{CacheEvent, CacheMetrics};
use crate::ports::{Cache, CacheError};
use crate::AppError;

/// How a read was answered, as `X-Cache` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Bypass,
    Stale,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Stale => "STALE",
        }
    }
}

/// A read's answer: the JSON body, its strong ETag and how fresh it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    pub body: Bytes,
    /// Quoted, as the `ETag` header carries it.
    pub etag: Arc<str>,
    pub outcome: CacheOutcome,
    /// Seconds the answer may be reused by clients (`Cache-Control: max-age`).
    pub max_age: u64,
    /// Seconds since the entry was stored; only for `STALE` answers.
    pub age: Option<u64>,
}

/// The strong ETag of a body: a hash of the bytes alone, identical on every instance.
pub fn etag_of(body: &[u8]) -> Arc<str> {
    Arc::from(format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body)))
}

/// The TTLs of the two kinds of reads and the stale-if-error window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl_default: Duration,
    pub ttl_scores: Duration,
    pub stale_if_error: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl_default: Duration::from_secs(300),
            ttl_scores: Duration::from_secs(600),
            stale_if_error: Duration::from_secs(3600),
        }
    }
}

impl CachePolicy {
    pub fn ttl(&self, family: KeyFamily) -> Duration {
        match family {
            KeyFamily::Top | KeyFamily::Leaderboard => self.ttl_scores,
            KeyFamily::List | KeyFamily::Detail | KeyFamily::History => self.ttl_default,
        }
    }
}

/// A stored entry. Encoded with a magic and version so that an entry from another version is
/// recognised and treated as a miss, and with the body's length so that a truncated one is.
///
/// A hit does not hash the body again: the length catches what a cache can do to a value (cut
/// it short, or hand back another version's layout), and re-hashing 25 KB on every hit cost
/// more CPU than any other step of a first-tier hit (see `docs/benchmarks.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    stored_at_ms: u64,
    fresh_until_ms: u64,
    etag: Arc<str>,
    body: Bytes,
}

const ENTRY_MAGIC: &[u8; 4] = b"SPE2";

/// Magic, two timestamps, the ETag's length and the body's length.
const ENTRY_HEADER_LEN: usize = 4 + 8 + 8 + 2 + 4;

impl Entry {
    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(ENTRY_HEADER_LEN + self.etag.len() + self.body.len());
        out.put_slice(ENTRY_MAGIC);
        out.put_u64(self.stored_at_ms);
        out.put_u64(self.fresh_until_ms);
        out.put_u16(u16::try_from(self.etag.len()).unwrap_or(0));
        // Bodies are bounded far below 4 GiB (a page of 200 stocks, 20 years of bars); a body
        // past it would decode as truncated, a miss, never as another body.
        out.put_u32(u32::try_from(self.body.len()).unwrap_or(u32::MAX));
        out.put_slice(self.etag.as_bytes());
        out.put_slice(&self.body);
        out.freeze()
    }

    fn decode(mut raw: Bytes) -> Option<Self> {
        if raw.len() < ENTRY_HEADER_LEN || &raw[..4] != ENTRY_MAGIC {
            return None;
        }
        raw.advance(4);
        let stored_at_ms = raw.get_u64();
        let fresh_until_ms = raw.get_u64();
        let etag_len = usize::from(raw.get_u16());
        let body_len = usize::try_from(raw.get_u32()).ok()?;
        if raw.len() != etag_len.checked_add(body_len)? {
            return None;
        }
        let etag = std::str::from_utf8(&raw[..etag_len]).ok()?.into();
        raw.advance(etag_len);
        Some(Self {
            stored_at_ms,
            fresh_until_ms,
            etag,
            body: raw,
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// A load's failure, shareable between the requests waiting on one flight.
#[derive(Debug, Clone)]
enum LoadFailure {
    NotFound(String),
    Invalid(Vec<crate::FieldError>),
    Unavailable(String),
    Other(String),
}

impl From<&AppError> for LoadFailure {
    fn from(error: &AppError) -> Self {
        match error {
            AppError::NotFound(what) => Self::NotFound(what.clone()),
            AppError::Invalid(errors) => Self::Invalid(errors.clone()),
            AppError::Unavailable(e) => Self::Unavailable(e.to_string()),
            other => Self::Other(format!("{other}: {:?}", std::error::Error::source(other))),
        }
    }
}

impl From<LoadFailure> for AppError {
    fn from(failure: LoadFailure) -> Self {
        match failure {
            LoadFailure::NotFound(what) => Self::NotFound(what),
            LoadFailure::Invalid(errors) => Self::Invalid(errors),
            LoadFailure::Unavailable(why) => {
                Self::Unavailable(crate::ports::RepositoryError::Unavailable(why))
            }
            LoadFailure::Other(why) => Self::Internal(why.into()),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<(Entry, u64), LoadFailure>>>;

/// How long a lease on a key lasts, and so the longest a flight waits for another instance's
/// load before loading itself: longer than a load takes, short enough that a holder that
/// died costs little.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// The range of the pause between two looks at the cache while another instance loads.
const POLL_MIN_MS: u64 = 5;
const POLL_MAX_MS: u64 = 20;

/// What a flight may do after trying the lease.
enum Claim {
    /// This instance holds the lease: load, store, release.
    Leased,
    /// Load without a lease: the cache could not be asked, the wait ran out, or a write
    /// began meanwhile.
    Load,
    /// Another instance stored a fresh entry: serve it, load nothing. With its milliseconds
    /// of freshness left.
    Found(Entry, u64),
}

/// The entry in `raw` when it is still fresh, with its milliseconds left.
fn fresh(raw: Option<Bytes>) -> Option<(Entry, u64)> {
    let entry = Entry::decode(raw?)?;
    let left = entry.fresh_until_ms.checked_sub(now_ms())?;
    (left > 0).then_some((entry, left))
}

/// Takes the lease on `key`, or waits for the instance holding it to store the entry.
///
/// While another instance holds the lease, looks at the cache every 5 to 20 ms and tries the
/// lease again, so that when the holder dies one waiting instance (not all) takes over once
/// the lease expires. Right after taking the lease the cache is read once more: the previous
/// holder stores before it releases, so an entry stored just after this flight's first miss
/// is found rather than loaded again. Gives up waiting, and loads, after `lease_ttl`, on any
/// cache error, and when a write began in this process (the entry may predate it).
async fn claim(cache: &dyn Cache, key: &str, lease_ttl: Duration, epoch: &AtomicU64) -> Claim {
    let epoch_at_start = epoch.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + lease_ttl;
    let mut waited = false;
    loop {
        match cache.try_lease(key, lease_ttl).await {
            Ok(true) => {
                return match cache.get(key).await.map(fresh) {
                    Ok(Some((entry, left))) => {
                        let _ = cache.release_lease(key).await;
                        Claim::Found(entry, left)
                    }
                    _ => Claim::Leased,
                };
            }
            Ok(false) => {
                if !waited {
                    tracing::debug!(key, "another instance is loading; waiting for its entry");
                    waited = true;
                }
            }
            Err(e) => {
                tracing::debug!(key, error = %e, "could not take the load lease; loading");
                return Claim::Load;
            }
        }
        let pause = Duration::from_millis(rand::thread_rng().gen_range(POLL_MIN_MS..=POLL_MAX_MS));
        if tokio::time::Instant::now() + pause > deadline {
            tracing::debug!(key, "no entry within the lease's lifetime; loading");
            return Claim::Load;
        }
        tokio::time::sleep(pause).await;
        if epoch.load(Ordering::SeqCst) != epoch_at_start {
            return Claim::Load;
        }
        match cache.get(key).await.map(fresh) {
            Ok(Some((entry, left))) => return Claim::Found(entry, left),
            Ok(None) => {}
            Err(_) => return Claim::Load,
        }
    }
}

/// The cache-aside read path shared by every read use case.
pub struct CacheAside {
    cache: Arc<dyn Cache>,
    metrics: Arc<CacheMetrics>,
    policy: CachePolicy,
    /// Bumped before a write commits and after it invalidates. A load that saw another value
    /// at its start does not keep its result in the cache: it may predate the write.
    write_epoch: Arc<AtomicU64>,
    /// Loads in progress by key: concurrent misses of one key join the same flight.
    /// A `std` mutex: it is held only to look up or insert, never across an await.
    in_flight: Arc<Mutex<HashMap<String, Flight>>>,
    /// The lifetime of a load lease, and the longest wait for another instance's load.
    lease_ttl: Duration,
}

impl CacheAside {
    pub fn new(cache: Arc<dyn Cache>, metrics: Arc<CacheMetrics>, policy: CachePolicy) -> Self {
        Self {
            cache,
            metrics,
            policy,
            write_epoch: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            lease_ttl: LEASE_TTL,
        }
    }

    /// The same, with leases of `lease_ttl` instead of [`LEASE_TTL`].
    #[must_use]
    pub fn with_lease_ttl(mut self, lease_ttl: Duration) -> Self {
        self.lease_ttl = lease_ttl;
        self
    }

    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        &self.metrics
    }

    /// The answer under `key`, computed by `load` (a serialised body) on a miss.
    ///
    /// # Errors
    /// What `load` returns, unless a stale entry within the stale-if-error window can stand
    /// in for an unavailable database.
    pub async fn read<F>(
        &self,
        family: KeyFamily,
        key: String,
        load: F,
    ) -> Result<CachedResponse, AppError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send,
    {
        let now = now_ms();
        let (stale, bypass) = match self.cache.get(&key).await {
            Ok(Some(raw)) => match Entry::decode(raw) {
                Some(entry) if entry.fresh_until_ms > now => {
                    self.metrics.record(family, CacheEvent::Hit);
                    return Ok(CachedResponse {
                        max_age: ceil_secs(entry.fresh_until_ms - now),
                        body: entry.body,
                        etag: entry.etag,
                        outcome: CacheOutcome::Hit,
                        age: None,
                    });
                }
                Some(expired) => (Some(expired), false),
                None => {
                    tracing::warn!(
                        key,
                        "cache entry is corrupt or from another version; replacing it"
                    );
                    self.metrics.record(family, CacheEvent::Error);
                    (None, false)
                }
            },
            Ok(None) => (None, false),
            Err(CacheError::Disabled) => (None, true),
            Err(CacheError::Unavailable(why)) => {
                tracing::debug!(key, %why, "cache unavailable; reading from the database");
                self.metrics.record(family, CacheEvent::Error);
                (None, true)
            }
        };
        if !bypass {
            self.metrics.record(family, CacheEvent::Miss);
        }
        match self.join_flight(family, key, load, !bypass).await {
            Ok((entry, ttl_ms)) => Ok(CachedResponse {
                body: entry.body,
                etag: entry.etag,
                outcome: if bypass {
                    CacheOutcome::Bypass
                } else {
                    CacheOutcome::Miss
                },
                max_age: if bypass { 0 } else { ceil_secs(ttl_ms) },
                age: None,
            }),
            Err(LoadFailure::Unavailable(why)) => match stale {
                Some(entry) if entry.fresh_until_ms + millis(self.policy.stale_if_error) > now => {
                    tracing::warn!(%why, "database unavailable; serving a stale entry");
                    Ok(CachedResponse {
                        body: entry.body,
                        etag: entry.etag,
                        outcome: CacheOutcome::Stale,
                        max_age: 0,
                        age: Some(now.saturating_sub(entry.stored_at_ms) / 1000),
                    })
                }
                _ => Err(LoadFailure::Unavailable(why).into()),
            },
            Err(other) => Err(other.into()),
        }
    }

    async fn join_flight<F>(
        &self,
        family: KeyFamily,
        key: String,
        load: F,
        store: bool,
    ) -> Result<(Entry, u64), LoadFailure>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send,
    {
        let flight = {
            let mut flights = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(flight) = flights.get(&key) {
                flight.clone()
            } else {
                let flight = self
                    .start_flight(family, key.clone(), load(), store)
                    .boxed()
                    .shared();
                flights.insert(key, flight.clone());
                flight
            }
        };
        flight.await
    }

    fn start_flight(
        &self,
        family: KeyFamily,
        key: String,
        load: BoxFuture<'static, Result<Bytes, AppError>>,
        store: bool,
    ) -> impl std::future::Future<Output = Result<(Entry, u64), LoadFailure>> + Send + 'static {
        let cache = Arc::clone(&self.cache);
        let metrics = Arc::clone(&self.metrics);
        let epoch = Arc::clone(&self.write_epoch);
        let in_flight = Arc::clone(&self.in_flight);
        let ttl = jittered(self.policy.ttl(family));
        let retain_for = ttl + self.policy.stale_if_error;
        let lease_ttl = self.lease_ttl;
        async move {
            // Only a flight that stores takes a lease: one that bypasses the cache would
            // make other instances wait for an entry it never writes.
            let claim = if store {
                claim(cache.as_ref(), &key, lease_ttl, &epoch).await
            } else {
                Claim::Load
            };
            if let Claim::Found(entry, left) = claim {
                in_flight
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&key);
                return Ok((entry, left));
            }
            let leased = matches!(claim, Claim::Leased);
            let epoch_at_start = epoch.load(Ordering::SeqCst);
            metrics.record(family, CacheEvent::Load);
            let loaded = load.await;
            let result = match loaded {
                Ok(body) => {
                    let stored_at_ms = now_ms();
                    let ttl_ms = millis(ttl);
                    let entry = Entry {
                        stored_at_ms,
                        fresh_until_ms: stored_at_ms + ttl_ms,
                        etag: etag_of(&body),
                        body,
                    };
                    if store && epoch.load(Ordering::SeqCst) == epoch_at_start {
                        if let Err(e) = cache.put(&key, entry.encode(), retain_for).await {
                            tracing::debug!(key, error = %e, "could not store the cache entry");
                            metrics.record(family, CacheEvent::Error);
                        } else if epoch.load(Ordering::SeqCst) != epoch_at_start {
                            // A write began while the entry was being stored: it may be older
                            // than the write, so take it back rather than serve it.
                            let _ = cache.delete(&key).await;
                        }
                    }
                    Ok((entry, ttl_ms))
                }
                Err(error) => Err(LoadFailure::from(&error)),
            };
            if leased {
                // After the put: whoever takes the lease next finds the entry.
                if let Err(e) = cache.release_lease(&key).await {
                    tracing::debug!(key, error = %e, "could not release the load lease");
                }
            }
            in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
            result
        }
    }

    /// Marks the start of a write: loads already under way will not keep their results.
    pub fn begin_write(&self) {
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes every entry the patterns name, after a write committed.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when the cache could not be reached: the caller logs it,
    /// and the cache adapter treats itself as down until it can make recovery safe.
    pub async fn invalidate(&self, patterns: &[String]) -> Result<(), CacheError> {
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        let mut first_error = None;
        for pattern in patterns {
            let result = if pattern.contains('*') {
                self.cache.delete_matching(pattern).await.map(drop)
            } else {
                self.cache.delete(pattern).await.map(drop)
            };
            match result {
                Ok(()) | Err(CacheError::Disabled) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        first_error.map_or(Ok(()), Err)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The TTL with up to ±10 % random jitter, so entries stored together do not expire together.
fn jittered(ttl: Duration) -> Duration {
    ttl.mul_f64(rand::thread_rng().gen_range(0.9..=1.1))
}

#[cfg(test)]
mod tests;
