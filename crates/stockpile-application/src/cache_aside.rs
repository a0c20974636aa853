//! The cache-aside protocol every use case goes through: reads look the answer up under its
//! key and on a miss compute it once (however many requests miss at the same moment), store it
//! with its TTL and return it; writes run through [`CacheAside::write`], which marks the write's
//! start, runs it, and removes what it made stale.
//!
//! An entry ([`entry`]) is the serialised response body with its ETag and two timestamps, so a
//! hit does no database work and no serialisation. Entries are kept past their TTL for the
//! stale-if-error window: an expired entry is a miss, but when the database then fails it is
//! served stale rather than failing the request.
//!
//! One load per miss holds inside the process ([`single_flight`]) and across instances
//! ([`lease`]): before loading, a flight takes a short lease on the key in the shared cache.
//!
//! A batch read ([`CacheAside::read_many`], in [`batch`]) answers from many entries at once:
//! one cache round trip for all of them, one load for all that missed, single flight per key.

mod batch;
mod breaker;
mod entry;
mod lease;
mod single_flight;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rand::Rng;

use self::breaker::{Admission, Breaker};
pub use self::breaker::{BreakerState, TRIAL_INTERVAL};
pub use self::entry::etag_of;
use self::entry::{now_ms, Entry};
use self::lease::Claim;
pub use self::lease::LEASE_TTL;
use self::single_flight::{Aborted, SingleFlight};
use crate::cache_keys::KeyFamily;
use crate::metrics::{CacheEvent, CacheMetrics};
use crate::ports::{Cache, CacheError};
use crate::AppError;

/// How a read was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A fresh entry answered.
    Hit,
    /// No fresh entry: the answer was computed and stored.
    Miss,
    /// The cache is off or unreachable: the answer was computed and not stored.
    Bypass,
    /// The database failed and an expired entry within the stale-if-error window answered.
    Stale,
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

impl CachedResponse {
    /// A fresh entry's answer.
    fn hit(entry: Entry, now: u64) -> Self {
        Self {
            max_age: ceil_secs(entry.fresh_until_ms - now),
            body: entry.body,
            etag: entry.etag,
            outcome: CacheOutcome::Hit,
            age: None,
        }
    }

    /// The answer of an entry just computed (and stored unless the cache was bypassed).
    fn loaded(entry: Entry, ttl_ms: u64, bypass: bool) -> Self {
        Self {
            body: entry.body,
            etag: entry.etag,
            outcome: if bypass {
                CacheOutcome::Bypass
            } else {
                CacheOutcome::Miss
            },
            max_age: if bypass { 0 } else { ceil_secs(ttl_ms) },
            age: None,
        }
    }
}

/// What the cache held under a key.
enum Found {
    Fresh(Entry),
    /// Past its TTL: a miss, but it may stand in for a failing database.
    Expired(Entry),
    /// Nothing, or nothing usable.
    Nothing,
}

/// The TTLs of the two kinds of reads and the stale-if-error window.
/// The TTLs of the two kinds of reads, the stale-if-error window and the soft timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl_default: Duration,
    pub ttl_scores: Duration,
    pub stale_if_error: Duration,
    /// With an expired entry at hand, the longest a read waits for its load before it answers
    /// that entry as stale; the load goes on and stores its result.
    pub soft_timeout: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl_default: Duration::from_secs(300),
            ttl_scores: Duration::from_secs(600),
            stale_if_error: Duration::from_secs(3600),
            soft_timeout: Duration::from_millis(250),
        }
    }
}

impl CachePolicy {
    pub fn ttl(&self, family: KeyFamily) -> Duration {
        match family {
            KeyFamily::Top | KeyFamily::Leaderboard => self.ttl_scores,
            KeyFamily::List | KeyFamily::Detail | KeyFamily::History | KeyFamily::Quote => {
                self.ttl_default
            }
        }
    }
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

/// What a flight's result is when its load stopped before it finished (it panicked).
type Loaded = Result<(Entry, u64), LoadFailure>;

impl From<Aborted> for Loaded {
    fn from(_: Aborted) -> Self {
        Err(LoadFailure::Other(
            "the load stopped before it finished (it panicked)".to_owned(),
        ))
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

/// The cache-aside protocol shared by every use case.
pub struct CacheAside {
    cache: Arc<dyn Cache>,
    metrics: Arc<CacheMetrics>,
    policy: CachePolicy,
    /// Bumped before a write commits and after it invalidates. A load that saw another value
    /// at its start does not keep its result in the cache: it may predate the write.
    write_epoch: Arc<AtomicU64>,
    /// Loads in progress by key: concurrent misses of one key join the same flight.
    flights: SingleFlight<Result<(Entry, u64), LoadFailure>>,
    /// Refuses loads at once while the database is known to be failing.
    breaker: Arc<Breaker>,
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
            flights: SingleFlight::new(),
            breaker: Arc::new(Breaker::new()),
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

    /// Whether loads reach the database now, and how many times the breaker opened.
    pub fn database_breaker(&self) -> (BreakerState, u64) {
        (self.breaker.state(), self.breaker.times_opened())
    }

    /// Tells the breaker that a probe (the readiness check) found the database answering, so
    /// that loads reach it again without waiting for a trial.
    pub fn database_answered(&self) {
        self.breaker.record(Admission::Load, false);
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
            Ok(raw) => match self.found(family, &key, raw, now) {
                Found::Fresh(entry) => {
                    self.metrics.record(family, CacheEvent::Hit);
                    return Ok(CachedResponse::hit(entry, now));
                }
                Found::Expired(expired) => (Some(expired), false),
                Found::Nothing => (None, false),
            },
            Err(error) => {
                self.unreachable(family, &error, 1);
                (None, true)
            }
        };
        if !bypass {
            self.metrics.record(family, CacheEvent::Miss);
        }
        let stale = stale.filter(|entry| self.servable(entry, now));
        let flight = self.flight_of(family, key, load, !bypass);
        match self.patiently(flight, stale.is_some(), Err).await {
            Ok((entry, ttl_ms)) => Ok(CachedResponse::loaded(entry, ttl_ms, bypass)),
            Err(LoadFailure::Unavailable(why)) => stale
                .and_then(|entry| self.stale(entry, now, &why))
                .ok_or_else(|| LoadFailure::Unavailable(why).into()),
            Err(other) => Err(other.into()),
        }
    }

    /// What a value read from the cache under `key` holds; a corrupt one is logged, counted
    /// and treated as absent.
    fn found(&self, family: KeyFamily, key: &str, raw: Option<Bytes>, now: u64) -> Found {
        match raw.map(Entry::decode) {
            Some(Some(entry)) if entry.fresh_until_ms > now => Found::Fresh(entry),
            Some(Some(expired)) => Found::Expired(expired),
            Some(None) => {
                tracing::warn!(
                    key,
                    "cache entry is corrupt or from another version; replacing it"
                );
                self.metrics.record(family, CacheEvent::Error);
                Found::Nothing
            }
            None => Found::Nothing,
        }
    }

    /// Logs and counts (once per key the lookup was for) a cache that could not be asked.
    fn unreachable(&self, family: KeyFamily, error: &CacheError, keys: usize) {
        if let CacheError::Unavailable(why) = error {
            tracing::debug!(%why, "cache unavailable; reading from the database");
            for _ in 0..keys {
                self.metrics.record(family, CacheEvent::Error);
            }
        }
    }

    /// An expired entry standing in for a database that is unavailable, while it is within
    /// the stale-if-error window.
    fn stale(&self, entry: Entry, now: u64, why: &str) -> Option<CachedResponse> {
        if !self.servable(&entry, now) {
            return None;
        }
        tracing::warn!(%why, "database unavailable; serving a stale entry");
        Some(CachedResponse {
            body: entry.body,
            etag: entry.etag,
            outcome: CacheOutcome::Stale,
            max_age: 0,
            age: Some(now.saturating_sub(entry.stored_at_ms) / 1000),
        })
    }

    /// Whether an expired entry is still within the stale-if-error window.
    fn servable(&self, entry: &Entry, now: u64) -> bool {
        entry.fresh_until_ms + millis(self.policy.stale_if_error) > now
    }

    /// What `flight` answers; with a stale entry at hand (`stale_at_hand`), no
    /// later than the soft timeout: past it, the database counts as unavailable for this
    /// read while the load goes on.
    async fn patiently<R, Fut>(
        &self,
        flight: Fut,
        stale_at_hand: bool,
        timed_out: impl FnOnce(LoadFailure) -> R,
    ) -> R
    where
        Fut: Future<Output = R>,
    {
        if !stale_at_hand {
            return flight.await;
        }
        tokio::time::timeout(self.policy.soft_timeout, flight)
            .await
            .unwrap_or_else(|_| {
                timed_out(LoadFailure::Unavailable(format!(
                    "the database did not answer within the soft timeout ({} ms); the load \
                     goes on",
                    self.policy.soft_timeout.as_millis()
                )))
            })
    }

    /// The flight loading `key`: the one under way, or a new one running `load`. A new flight
    /// asks the breaker first; refused, it fails at once as the database being unavailable.
    fn flight_of<F>(
        &self,
        family: KeyFamily,
        key: String,
        load: F,
        store: bool,
    ) -> impl Future<Output = Result<(Entry, u64), LoadFailure>>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send,
    {
        let flight_key = key.clone();
        self.flights.join(flight_key, || {
            self.guarded(
                || self.flight(family, key, load(), store),
                |result| matches!(result, Err(LoadFailure::Unavailable(_))),
                Err,
            )
        })
    }

    /// The load `start` makes, unless the breaker refuses it: then `refused` answers at once
    /// with the database being unavailable. The load's outcome (`failed` tells whether it
    /// found the database unavailable) goes to the breaker.
    fn guarded<T, Fut>(
        &self,
        start: impl FnOnce() -> Fut,
        failed: fn(&T) -> bool,
        refused: impl FnOnce(LoadFailure) -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static
    where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let admission = self.breaker.admit();
        let flight = (admission != Admission::Refused).then(start);
        let breaker = Arc::clone(&self.breaker);
        async move {
            let Some(flight) = flight else {
                return refused(LoadFailure::Unavailable(
                    "the database is failing; loads are refused until a trial finds it back"
                        .to_owned(),
                ));
            };
            let result = flight.await;
            breaker.record(admission, failed(&result));
            result
        }
    }

    /// One load of `key`: the lease (when the entry is to be stored), the load, the store.
    fn flight(
        &self,
        family: KeyFamily,
        key: String,
        load: BoxFuture<'static, Result<Bytes, AppError>>,
        store: bool,
    ) -> impl Future<Output = Result<(Entry, u64), LoadFailure>> + Send + 'static {
        let mut stored = self.store_for(family);
        let ttl = jittered(self.policy.ttl(family));
        let retain_for = ttl + self.policy.stale_if_error;
        let lease_ttl = self.lease_ttl;
        async move {
            // Only a flight that stores takes a lease: one that bypasses the cache would
            // make other instances wait for an entry it never writes.
            let claim = if store {
                lease::claim(stored.cache.as_ref(), &key, lease_ttl, &stored.epoch).await
            } else {
                Claim::Load
            };
            let leased = match claim {
                Claim::Found(entry, left) => return Ok((entry, left)),
                Claim::Leased => true,
                Claim::Load => false,
            };
            stored.begin();
            stored.metrics.record(family, CacheEvent::Load);
            let result = match load.await {
                Ok(body) => {
                    let ttl_ms = millis(ttl);
                    let entry = Entry::new(body, ttl_ms);
                    if store {
                        stored.put(&key, &entry, retain_for).await;
                    }
                    Ok((entry, ttl_ms))
                }
                Err(error) => Err(LoadFailure::from(&error)),
            };
            if leased {
                lease::release(stored.cache.as_ref(), &key).await;
            }
            result
        }
    }

    /// Where a load of `family` stores its entries; [`Stored::begin`] marks the load's start.
    fn store_for(&self, family: KeyFamily) -> Stored {
        Stored {
            cache: Arc::clone(&self.cache),
            metrics: Arc::clone(&self.metrics),
            family,
            epoch: Arc::clone(&self.write_epoch),
            epoch_at_start: self.write_epoch.load(Ordering::SeqCst),
        }
    }

    /// Runs a write to the database and, when it succeeds, removes every entry it made stale.
    ///
    /// Loads under way when the write begins do not keep their results, so no entry older
    /// than the write survives it. A cache that cannot be reached is logged, not fatal: the
    /// write stands, and the cache adapter stops serving from that backend until recovery
    /// makes it safe again.
    ///
    /// # Errors
    /// What the write returns.
    pub async fn write<T, E, W>(&self, stale: &[String], write: W) -> Result<T, E>
    where
        W: Future<Output = Result<T, E>>,
    {
        self.begin_write();
        let written = write.await?;
        if let Err(error) = self.invalidate(stale).await {
            tracing::warn!(%error, ?stale, "could not remove stale cache entries after a write");
        }
        Ok(written)
    }

    /// Runs a cache administration operation: like a write, loads under way when it begins
    /// do not keep their results.
    pub async fn administer<T, A>(&self, operation: A) -> T
    where
        A: Future<Output = T>,
    {
        self.begin_write();
        operation.await
    }

    /// Marks the start of a write: loads already under way will not keep their results.
    fn begin_write(&self) {
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes every entry the patterns name.
    async fn invalidate(&self, patterns: &[String]) -> Result<(), CacheError> {
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

/// Where a load's entries go, and the write epoch it saw when it began.
struct Stored {
    cache: Arc<dyn Cache>,
    metrics: Arc<CacheMetrics>,
    family: KeyFamily,
    epoch: Arc<AtomicU64>,
    epoch_at_start: u64,
}

impl Stored {
    /// Marks the start of the load: a write that begins after this keeps its entries out.
    fn begin(&mut self) {
        self.epoch_at_start = self.epoch.load(Ordering::SeqCst);
    }

    /// Stores the entry, unless a write began since the load did; one that began while it was
    /// being stored takes it back, since it may be older than the write.
    async fn put(&self, key: &str, entry: &Entry, retain_for: Duration) {
        if self.epoch.load(Ordering::SeqCst) != self.epoch_at_start {
            return;
        }
        if let Err(e) = self.cache.put(key, entry.encode(), retain_for).await {
            tracing::debug!(key, error = %e, "could not store the cache entry");
            self.metrics.record(self.family, CacheEvent::Error);
        } else if self.epoch.load(Ordering::SeqCst) != self.epoch_at_start {
            let _ = self.cache.delete(key).await;
        }
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
