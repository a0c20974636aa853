//! A read answered from many entries at once (`GET /api/quotes`: one entry per ticker).
//!
//! - One cache round trip for the whole batch ([`Cache::get_many`]): every entry and its
//!   generation.
//! - One load for every key that missed, given all of them together (one database query),
//!   with single flight per key: a key another read is already loading, alone or in its own
//!   batch, joins that load, and the keys this batch leads are registered one by one, so a
//!   concurrent batch sharing any of them joins this load for those.
//! - The generations of every key a load leads are learned in one round trip before the load
//!   reads the database, as a single read's are; each entry is stored with its own jittered
//!   TTL; an entry that stands for "nothing there" is an entry like any other.
//! - A load asks the database breaker once for the whole batch; refused, every key it leads
//!   fails as the database being unavailable.
//! - When the database is unavailable, every key that missed needs an expired entry within
//!   the stale-if-error window, or the whole read fails. When every key that missed has one,
//!   the read waits no longer than the soft timeout for the load, which goes on.
//!
//! A batch's load takes no cross-instance lease: taking one per key would cost a round trip
//! per missed key, and two instances loading the same cold tickers at the same instant cost
//! one extra query each, not one per ticker.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{join_all, BoxFuture};

use super::entry::{etag_of, now_ms, Entry};
use super::{jittered, millis, CacheAside, CacheOutcome, CachedResponse, Found, LoadFailure};
use crate::cache_keys::{EntryKey, KeyFamily};
use crate::metrics::CacheEvent;
use crate::AppError;

/// How a batch read loads the keys it missed: given the items of every key it loads, one body
/// per item, in their order.
pub trait LoadMany<K>:
    FnOnce(Vec<K>) -> BoxFuture<'static, Result<Vec<Bytes>, AppError>> + Send
{
}

impl<K, F> LoadMany<K> for F where
    F: FnOnce(Vec<K>) -> BoxFuture<'static, Result<Vec<Bytes>, AppError>> + Send
{
}

/// One key's part of a batch: a fresh entry, an answer loaded (or served stale), or a miss
/// not yet loaded (with the expired entry that may stand in for a failing database).
enum Part {
    Fresh(Entry),
    Ready(CachedResponse),
    Missed(Option<Entry>),
}

/// Every key's answer, in order, and what the batch's answer is made of.
struct Parts {
    answers: Vec<CachedResponse>,
    /// The cache was off or unreachable.
    bypass: bool,
    /// When every part was a fresh entry: the first moment one of them is no longer fresh.
    fresh_until_ms: Option<u64>,
}

impl CacheAside {
    /// The answer assembled from the entries under the keys of `requests`: each key's
    /// body is its entry's, computed on a miss by `load` (given the requests' items of
    /// every key this read loads, answering one body per item, in order). `assemble` joins
    /// the bodies, in the order of `requests`, into the answer's body.
    ///
    /// The answer is `HIT` when every entry was fresh, `STALE` when any was served stale,
    /// `MISS` when any was loaded, `BYPASS` with the cache off or unreachable; its max-age is
    /// the least any entry has left, and its ETag that of the assembled body.
    ///
    /// # Errors
    /// What `load` or `assemble` returns, unless stale entries within the stale-if-error
    /// window can stand in for an unavailable database for every key that missed.
    pub async fn read_many<K, F, A>(
        &self,
        family: KeyFamily,
        requests: Vec<(EntryKey, K)>,
        load: F,
        assemble: A,
    ) -> Result<CachedResponse, AppError>
    where
        K: Send + 'static,
        F: LoadMany<K>,
        A: FnOnce(&[Bytes]) -> Result<Bytes, AppError>,
    {
        let parts = self.read_parts(family, requests, load, now_ms()).await?;
        combine(&parts, assemble)
    }

    /// [`CacheAside::read_many`], with the assembled answer kept under `answer_key` (which
    /// names the requests and the assembly: the same key, the same answer) and reused while
    /// the cache vouches that none of its entries changed ([`assembled`](super::assembled)).
    /// `requests` is only built when the answer cannot be reused. A reused answer counts a
    /// hit per entry, as the lookups would have.
    ///
    /// # Errors
    /// As [`CacheAside::read_many`].
    pub async fn read_assembled<K, R, F, A>(
        &self,
        family: KeyFamily,
        answer_key: String,
        requests: R,
        load: F,
        assemble: A,
    ) -> Result<CachedResponse, AppError>
    where
        K: Send + 'static,
        R: FnOnce() -> Vec<(EntryKey, K)>,
        F: LoadMany<K>,
        A: FnOnce(&[Bytes]) -> Result<Bytes, AppError>,
    {
        let now = now_ms();
        // Read before the entries are, so that an invalidation during their lookup moves it.
        let coherence = self.cache.coherence();
        if let Some(coherence) = coherence {
            if let Some((answer, count)) = self.assembled.reuse(&answer_key, coherence.mark, now) {
                for _ in 0..count {
                    self.metrics.record(family, CacheEvent::Hit);
                }
                return Ok(answer);
            }
        }
        let parts = self.read_parts(family, requests(), load, now).await?;
        let answer = combine(&parts, assemble)?;
        if let (Some(coherence), Some(fresh_until_ms)) = (coherence, parts.fresh_until_ms) {
            let unmoved = self
                .cache
                .coherence()
                .is_some_and(|after| after.mark == coherence.mark);
            if unmoved {
                self.assembled.keep(
                    answer_key,
                    coherence,
                    now,
                    fresh_until_ms,
                    &answer,
                    parts.answers.len(),
                );
            }
        }
        Ok(answer)
    }

    /// Every key's part: looked up in one round trip, the misses loaded together.
    async fn read_parts<K, F>(
        &self,
        family: KeyFamily,
        requests: Vec<(EntryKey, K)>,
        load: F,
        now: u64,
    ) -> Result<Parts, AppError>
    where
        K: Send + 'static,
        F: LoadMany<K>,
    {
        let (keys, items): (Vec<EntryKey>, Vec<K>) = requests.into_iter().unzip();
        let (mut parts, bypass) = self.look_up(family, &keys, now).await;
        let missed: Vec<usize> = (0..parts.len())
            .filter(|i| matches!(parts[*i], Part::Missed(_)))
            .collect();
        if !missed.is_empty() {
            let missed_keys: Vec<EntryKey> = missed.iter().map(|i| keys[*i].clone()).collect();
            let flight_keys: Vec<String> = missed_keys.iter().map(|k| k.entry.clone()).collect();
            let mut items: Vec<Option<K>> = items.into_iter().map(Some).collect();
            let flights = self.flights.join_many(&flight_keys, |led| {
                let led_keys = led.iter().map(|n| missed_keys[*n].clone()).collect();
                let led_items = led
                    .iter()
                    .filter_map(|n| items[missed[*n]].take())
                    .collect();
                let count = led.len();
                self.guarded(
                    || self.batch_flight(family, led_keys, load(led_items), !bypass),
                    |results| {
                        results
                            .iter()
                            .any(|r| matches!(r, Err(LoadFailure::Unavailable(_))))
                    },
                    move |failure| vec![Err(failure); count],
                )
            });
            let stale_at_hand = missed.iter().all(
                |i| matches!(&parts[*i], Part::Missed(Some(entry)) if self.servable(entry, now)),
            );
            let loaded = self
                .patiently(join_all(flights), stale_at_hand, |failure| {
                    vec![Err(failure); missed.len()]
                })
                .await;
            for (index, result) in missed.into_iter().zip(loaded) {
                let answer = match result {
                    Ok((entry, ttl_ms)) => CachedResponse::loaded(entry, ttl_ms, bypass),
                    Err(LoadFailure::Unavailable(why)) => {
                        let expired = match std::mem::replace(&mut parts[index], Part::Missed(None))
                        {
                            Part::Missed(expired) => expired,
                            Part::Fresh(_) | Part::Ready(_) => None,
                        };
                        expired
                            .and_then(|entry| self.stale(entry, now, &why))
                            .ok_or_else(|| AppError::from(LoadFailure::Unavailable(why)))?
                    }
                    Err(other) => return Err(other.into()),
                };
                parts[index] = Part::Ready(answer);
            }
        }
        let fresh_until_ms = parts.iter().try_fold(u64::MAX, |first, part| match part {
            Part::Fresh(entry) => Some(first.min(entry.fresh_until_ms)),
            Part::Ready(_) | Part::Missed(_) => None,
        });
        let answers = parts
            .into_iter()
            .filter_map(|part| match part {
                Part::Fresh(entry) => Some(CachedResponse::hit(entry, now)),
                Part::Ready(answer) => Some(answer),
                Part::Missed(_) => None,
            })
            .collect();
        Ok(Parts {
            answers,
            bypass,
            fresh_until_ms,
        })
    }

    /// Every key's part as the cache has it, in one round trip for the entries and their
    /// generations, and whether the cache is bypassed (off or unreachable). Counts a hit or a
    /// miss per key.
    async fn look_up(&self, family: KeyFamily, keys: &[EntryKey], now: u64) -> (Vec<Part>, bool) {
        let asked: Vec<String> = keys
            .iter()
            .map(|k| k.entry.clone())
            .chain(keys.iter().map(|k| k.generation.clone()))
            .collect();
        let mut values = match self.cache.get_many(&asked).await {
            Ok(values) if values.len() == asked.len() => values,
            Ok(_) => {
                let wrong = crate::ports::CacheError::Unavailable(
                    "the cache answered a batch with another number of values".to_owned(),
                );
                self.unreachable(family, &wrong, keys.len());
                return (keys.iter().map(|_| Part::Missed(None)).collect(), true);
            }
            Err(error) => {
                self.unreachable(family, &error, keys.len());
                return (keys.iter().map(|_| Part::Missed(None)).collect(), true);
            }
        };
        let generations = values.split_off(keys.len());
        let parts = keys
            .iter()
            .zip(values)
            .zip(generations)
            .map(|((key, raw), generation)| {
                match self.found(family, &key.entry, raw, generation, now) {
                    Found::Fresh(entry) => {
                        self.metrics.record(family, CacheEvent::Hit);
                        Part::Fresh(entry)
                    }
                    Found::Expired(expired) => {
                        self.metrics.record(family, CacheEvent::Miss);
                        Part::Missed(Some(expired))
                    }
                    Found::Nothing => {
                        self.metrics.record(family, CacheEvent::Miss);
                        Part::Missed(None)
                    }
                }
            })
            .collect();
        (parts, false)
    }

    /// One load of `keys` together: their generations (when `store`), the load, then each
    /// entry stored. Answers one result per key, in order.
    fn batch_flight(
        &self,
        family: KeyFamily,
        keys: Vec<EntryKey>,
        load: BoxFuture<'static, Result<Vec<Bytes>, AppError>>,
        store: bool,
    ) -> impl Future<Output = Vec<Result<(Entry, u64), LoadFailure>>> + Send + 'static {
        let stored = self.store_for(family);
        let ttl = self.policy.ttl(family);
        let stale_if_error = self.policy.stale_if_error;
        async move {
            let generation_keys: Vec<String> = keys.iter().map(|k| k.generation.clone()).collect();
            let mut generations = if store {
                stored.generations(&generation_keys).await
            } else {
                None
            }
            .unwrap_or_else(|| vec![None; keys.len()])
            .into_iter();
            for _ in &keys {
                stored.metrics.record(family, CacheEvent::Load);
            }
            let bodies = match load.await {
                Ok(bodies) if bodies.len() == keys.len() => bodies,
                Ok(bodies) => {
                    let failure = LoadFailure::Other(format!(
                        "a batch load answered {} bodies for {} keys",
                        bodies.len(),
                        keys.len()
                    ));
                    return vec![Err(failure); keys.len()];
                }
                Err(error) => return vec![Err(LoadFailure::from(&error)); keys.len()],
            };
            let entries: Vec<(Entry, u64)> = bodies
                .into_iter()
                .map(|body| {
                    let ttl_ms = millis(jittered(ttl));
                    let generation = generations.next().flatten().unwrap_or_default();
                    (Entry::new(body, ttl_ms, generation), ttl_ms)
                })
                .collect();
            let stored = &stored;
            join_all(keys.iter().zip(&entries).map(|(key, (entry, ttl_ms))| {
                stored.put(
                    &key.entry,
                    entry,
                    Duration::from_millis(*ttl_ms) + stale_if_error,
                )
            }))
            .await;
            entries.into_iter().map(Ok).collect()
        }
    }
}

/// The batch's answer from every key's: the assembled body, the most telling outcome, the
/// least max-age, the oldest age.
fn combine<A>(parts: &Parts, assemble: A) -> Result<CachedResponse, AppError>
where
    A: FnOnce(&[Bytes]) -> Result<Bytes, AppError>,
{
    let Parts {
        answers, bypass, ..
    } = parts;
    let bodies: Vec<Bytes> = answers.iter().map(|a| a.body.clone()).collect();
    let body = assemble(&bodies)?;
    let any = |outcome| answers.iter().any(|a| a.outcome == outcome);
    let outcome = if *bypass {
        CacheOutcome::Bypass
    } else if any(CacheOutcome::Stale) {
        CacheOutcome::Stale
    } else if any(CacheOutcome::Miss) {
        CacheOutcome::Miss
    } else {
        CacheOutcome::Hit
    };
    Ok(CachedResponse {
        etag: etag_of(&body),
        body,
        outcome,
        max_age: answers.iter().map(|a| a.max_age).min().unwrap_or(0),
        age: answers.iter().filter_map(|a| a.age).max(),
    })
}
