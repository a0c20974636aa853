//! One load per cold key across a fleet: before loading, a flight takes a short lease on the
//! key in the shared cache ([`Cache::try_lease`]). When another instance holds it, the flight
//! polls the cache for the entry that instance is about to store, and loads itself only when
//! the lease frees up without an entry (its holder died or failed) or after the lease's
//! lifetime at the most.

use std::time::Duration;

use rand::Rng;

use super::entry::Entry;
use super::look;
use crate::cache_keys::EntryKey;
use crate::ports::{Cache, CacheError};

/// How long a lease on a key lasts, and so the longest a flight waits for another instance's
/// load before loading itself: longer than a load takes, short enough that a holder that
/// died costs little.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// The range of the pause between two looks at the cache while another instance loads.
const POLL_MIN_MS: u64 = 5;
const POLL_MAX_MS: u64 = 20;

/// What a flight may do after trying the lease.
pub(crate) enum Claim {
    /// This instance holds the lease: load, store, release.
    Leased,
    /// Load without a lease: the cache could not be asked, or the wait ran out.
    Load,
    /// Another instance stored a fresh entry: serve it, load nothing. With its milliseconds
    /// of freshness left.
    Found(Entry, u64),
}

/// Takes the lease on `key`, or waits for the instance holding it to store the entry.
///
/// While another instance holds the lease, looks at the cache every 5 to 20 ms and tries the
/// lease again, so that when the holder dies one waiting instance (not all) takes over once
/// the lease expires. Right after taking the lease the cache is read once more: the previous
/// holder stores before it releases, so an entry stored just after this flight's first miss
/// is found rather than loaded again. Only an entry of the current generation counts: one
/// that a write made stale while its load was under way is waited past, and loaded again.
/// Gives up waiting, and loads, after `lease_ttl` and on any cache error.
pub(crate) async fn claim(cache: &dyn Cache, key: &EntryKey, lease_ttl: Duration) -> Claim {
    let deadline = tokio::time::Instant::now() + lease_ttl;
    let mut waited = false;
    loop {
        match cache.try_lease(&key.entry, lease_ttl).await {
            Ok(true) => {
                return match current(cache, key).await {
                    Ok(Some((entry, left))) => {
                        let _ = cache.release_lease(&key.entry).await;
                        Claim::Found(entry, left)
                    }
                    _ => Claim::Leased,
                };
            }
            Ok(false) => {
                if !waited {
                    tracing::debug!(
                        key = key.entry,
                        "another instance is loading; waiting for its entry"
                    );
                    waited = true;
                }
            }
            Err(e) => {
                tracing::debug!(
                    key = key.entry,
                    error = %e,
                    "could not take the load lease; loading"
                );
                return Claim::Load;
            }
        }
        let pause = Duration::from_millis(rand::thread_rng().gen_range(POLL_MIN_MS..=POLL_MAX_MS));
        if tokio::time::Instant::now() + pause > deadline {
            tracing::debug!(
                key = key.entry,
                "no entry within the lease's lifetime; loading"
            );
            return Claim::Load;
        }
        tokio::time::sleep(pause).await;
        match current(cache, key).await {
            Ok(Some((entry, left))) => return Claim::Found(entry, left),
            Ok(None) => {}
            Err(_) => return Claim::Load,
        }
    }
}

/// The entry under `key` when it is fresh and of the current generation.
async fn current(cache: &dyn Cache, key: &EntryKey) -> Result<Option<(Entry, u64)>, CacheError> {
    let (raw, generation) = look(cache, key.clone()).await.0?;
    Ok(Entry::fresh(raw, generation.as_ref()))
}

/// Gives the lease back after the entry was stored, so whoever takes it next finds the entry.
pub(crate) async fn release(cache: &dyn Cache, key: &str) {
    if let Err(e) = cache.release_lease(key).await {
        tracing::debug!(key, error = %e, "could not release the load lease");
    }
}
