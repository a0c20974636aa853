//! The cache-aside protocol every use case goes through: reads look the answer up under its
//! key and on a miss compute it once (however many requests miss at the same moment), store it
//! with its TTL and return it; writes run through [`CacheAside::write`], which runs the write
//! and then revokes the generations of what it made stale.
//!
//! An entry ([`entry`]) is the serialised response body with its ETag and two timestamps, so a
//! hit does no database work and no serialisation. Entries are kept past their TTL for the
//! stale-if-error window: an expired entry is a miss, but when the database then fails it is
//! served stale rather than failing the request.
//!
//! # Generations: invalidation that costs the same at any size, and no stale store
//!
//! Every entry belongs to a generation ([`crate::cache_keys`]): a key beside the entries
//! holding a random token. A read fetches the entry and its generation together (one round
//! trip) and serves the entry only while the generation still holds the token the entry
//! carries. A write, once committed, deletes the generation keys of what it made stale: that
//! is all it does to the cache, whether Redis holds ten keys or ten million. A load learns
//! its generation (starting one when there is none) *before* it reads the database, and stamps
//! its entry with it; so:
//!
//! - a load that read the database before a write committed learned the generation before
//!   the write deleted it, and its entry, stored whenever it is, is never served: on any
//!   instance, since the generation lives in the shared cache;
//! - a load that learned a generation after a write deleted it started its database read
//!   after the commit, and its entry is fresh;
//! - a generation that vanishes without a write (evicted, lost in a restart) only makes its
//!   entries misses, and the one started next holds a new random token, so no superseded entry
//!   is ever current again. A superseded entry is not served stale either: it may predate a
//!   write.
//!
//! One load per miss holds inside the process ([`single_flight`]) and across instances
//! ([`lease`]): before loading, a flight takes a short lease on the key in the shared cache.
//!
//! A batch read ([`CacheAside::read_many`], in [`batch`]) answers from many entries at once:
//! one cache round trip for all of them, one load for all that missed, single flight per key;
//! [`CacheAside::read_assembled`] also keeps the joined answer for as long as the cache vouches
//! that none of its entries changed ([`assembled`]).

mod assembled;
mod batch;
mod breaker;
mod entry;
mod lease;
mod single_flight;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rand::Rng;

use self::assembled::AssembledAnswers;
use self::breaker::{Admission, Breaker};
pub use self::breaker::{BreakerState, TRIAL_INTERVAL};
pub use self::entry::etag_of;
use self::entry::{new_generation, now_ms, Entry};
use self::lease::Claim;
pub use self::lease::LEASE_TTL;
use self::single_flight::{Aborted, SingleFlight};
use crate::cache_keys::{EntryKey, KeyFamily};
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

    /// How long a generation key is kept after the last load that used it: past the longest
    /// an entry is kept (the longer TTL with its jitter, and the stale-if-error window), with a
    /// minute for the load itself. A generation that expired sooner would only cost misses.
    fn generation_retention(&self) -> Duration {
        self.ttl_default.max(self.ttl_scores).mul_f64(1.1)
            + self.stale_if_error
            + Duration::from_secs(60)
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
    /// Loads in progress by key: concurrent misses of one key join the same flight.
    flights: SingleFlight<Result<(Entry, u64), LoadFailure>>,
    /// Refuses loads at once while the database is known to be failing.
    breaker: Arc<Breaker>,
    /// The lifetime of a load lease, and the longest wait for another instance's load.
    lease_ttl: Duration,
    /// Batch answers, reused while the cache vouches for their entries.
    assembled: AssembledAnswers,
}

impl CacheAside {
    pub fn new(cache: Arc<dyn Cache>, metrics: Arc<CacheMetrics>, policy: CachePolicy) -> Self {
        Self {
            cache,
            metrics,
            policy,
            flights: SingleFlight::new(),
            breaker: Arc::new(Breaker::new()),
            lease_ttl: LEASE_TTL,
            assembled: AssembledAnswers::new(),
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
        key: EntryKey,
        load: F,
    ) -> Result<CachedResponse, AppError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send,
    {
        let now = now_ms();
        let (looked, key) = look(self.cache.as_ref(), key).await;
        let (stale, bypass) = match looked {
            Ok((raw, generation)) => match self.found(family, &key.entry, raw, generation, now) {
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
        // Boxed: a hit's future then holds none of a load's state (flights, leases, the
        // soft timeout), which it would otherwise carry and copy on every hit.
        Box::pin(self.answer_miss(family, key, load, stale, bypass, now)).await
    }

    /// A read that found no fresh entry: `stale` is the expired one at hand, if any;
    /// `bypass` says the cache could not be asked.
    async fn answer_miss<F>(
        &self,
        family: KeyFamily,
        key: EntryKey,
        load: F,
        stale: Option<Entry>,
        bypass: bool,
        now: u64,
    ) -> Result<CachedResponse, AppError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send,
    {
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

    /// What a value read from the cache under `key` holds, its generation holding
    /// `generation` now; a corrupt one is logged, counted and treated as absent, and one of a
    /// generation that is no longer current is absent.
    fn found(
        &self,
        family: KeyFamily,
        key: &str,
        raw: Option<Bytes>,
        generation: Option<Bytes>,
        now: u64,
    ) -> Found {
        match raw.map(Entry::decode) {
            Some(Some(entry)) if !entry.is_current(generation.as_ref()) => Found::Nothing,
            Some(Some(entry)) if entry.is_fresh_at(now) => Found::Fresh(entry),
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
        key: EntryKey,
        load: F,
        store: bool,
    ) -> impl Future<Output = Result<(Entry, u64), LoadFailure>>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Bytes, AppError>> + Send,
    {
        let flight_key = key.entry.clone();
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

    /// One load of `key`: the lease and the generation (when the entry is to be stored), the
    /// load, the store.
    fn flight(
        &self,
        family: KeyFamily,
        key: EntryKey,
        load: BoxFuture<'static, Result<Bytes, AppError>>,
        store: bool,
    ) -> impl Future<Output = Result<(Entry, u64), LoadFailure>> + Send + 'static {
        let stored = self.store_for(family);
        let ttl = jittered(self.policy.ttl(family));
        let retain_for = ttl + self.policy.stale_if_error;
        let lease_ttl = self.lease_ttl;
        async move {
            // Only a flight that stores takes a lease: one that bypasses the cache would
            // make other instances wait for an entry it never writes.
            let claim = if store {
                lease::claim(stored.cache.as_ref(), &key, lease_ttl).await
            } else {
                Claim::Load
            };
            let leased = match claim {
                Claim::Found(entry, left) => return Ok((entry, left)),
                Claim::Leased => true,
                Claim::Load => false,
            };
            // Learned before the database is read: see the module's documentation.
            let generation = if store {
                stored
                    .generations(std::slice::from_ref(&key.generation))
                    .await
                    .and_then(|mut held| held.pop().flatten())
            } else {
                None
            };
            stored.metrics.record(family, CacheEvent::Load);
            let result = match load.await {
                Ok(body) => {
                    let ttl_ms = millis(ttl);
                    let entry = Entry::new(body, ttl_ms, generation.unwrap_or_default());
                    stored.put(&key.entry, &entry, retain_for).await;
                    Ok((entry, ttl_ms))
                }
                Err(error) => Err(LoadFailure::from(&error)),
            };
            if leased {
                lease::release(stored.cache.as_ref(), &key.entry).await;
            }
            result
        }
    }

    /// Where a load of `family` stores its entries.
    fn store_for(&self, family: KeyFamily) -> Stored {
        Stored {
            cache: Arc::clone(&self.cache),
            metrics: Arc::clone(&self.metrics),
            family,
            generation_retention: self.policy.generation_retention(),
        }
    }

    /// Runs a write to the database and, when it succeeds, revokes the generations it made
    /// stale (`stale`, from [`crate::cache_keys`]): one round trip, whatever the number of
    /// entries they cover.
    ///
    /// A load under way on any instance learned its generation before the revocation, so its
    /// entry is never served: no entry older than the write survives it. A cache that cannot
    /// be reached is logged, not fatal: the write stands, and the cache adapter stops serving
    /// from that backend until it has applied the revocation there.
    ///
    /// # Errors
    /// What the write returns; the cache is then left alone.
    pub async fn write<T, E, W>(&self, stale: &[String], write: W) -> Result<T, E>
    where
        W: Future<Output = Result<T, E>>,
    {
        let written = write.await?;
        match self.cache.delete_many(stale).await {
            Ok(_) | Err(CacheError::Disabled) => {}
            Err(error) => {
                tracing::warn!(%error, ?stale, "could not revoke the generations a write made stale");
            }
        }
        Ok(written)
    }
}

/// The value under `key` and what its generation holds, in one round trip; `key` is handed
/// back, having been lent to the lookup without a copy.
async fn look(
    cache: &dyn Cache,
    key: EntryKey,
) -> (Result<(Option<Bytes>, Option<Bytes>), CacheError>, EntryKey) {
    let keys = [key.entry, key.generation];
    let looked = cache.get_many(&keys).await.and_then(|values| {
        let mut values = values.into_iter();
        match (values.next(), values.next(), values.next()) {
            (Some(entry), Some(generation), None) => Ok((entry, generation)),
            _ => Err(CacheError::Unavailable(
                "the cache answered a lookup of two keys with another number of values".to_owned(),
            )),
        }
    });
    let [entry, generation] = keys;
    (looked, EntryKey { entry, generation })
}

/// Where a load's entries go.
struct Stored {
    cache: Arc<dyn Cache>,
    metrics: Arc<CacheMetrics>,
    family: KeyFamily,
    generation_retention: Duration,
}

impl Stored {
    /// What the generation keys `keys` hold, starting a generation where there is none; `None`
    /// when the cache cannot say, and then nothing is stored.
    async fn generations(&self, keys: &[String]) -> Option<Vec<Option<Bytes>>> {
        match self
            .cache
            .get_or_put_many(keys, new_generation(), self.generation_retention)
            .await
        {
            Ok(held) if held.len() == keys.len() => Some(held),
            Ok(_) => None,
            Err(CacheError::Disabled) => None,
            Err(error) => {
                tracing::debug!(%error, "could not learn the generation; the entry is not stored");
                self.metrics.record(self.family, CacheEvent::Error);
                None
            }
        }
    }

    /// Stores the entry, unless it carries no generation (the cache could not give one, or is
    /// bypassed).
    async fn put(&self, key: &str, entry: &Entry, retain_for: Duration) {
        if entry.generation.is_empty() {
            return;
        }
        if let Err(e) = self.cache.put(key, entry.encode(), retain_for).await {
            tracing::debug!(key, error = %e, "could not store the cache entry");
            self.metrics.record(self.family, CacheEvent::Error);
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
