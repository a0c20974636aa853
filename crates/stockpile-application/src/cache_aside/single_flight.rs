//! One computation per key at a time inside this process: concurrent callers asking for the
//! same key join the computation already under way instead of starting their own.
//!
//! A computation runs as a task of its own, so it finishes (and its result is kept) even when
//! every caller stopped waiting for it: a read that answered stale after its soft timeout, or
//! a client that hung up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};

pub(crate) type Flight<T> = Shared<BoxFuture<'static, T>>;
type Registry<T> = Arc<Mutex<HashMap<String, Flight<T>>>>;

/// Computations in progress by key; each removes itself when it ends.
pub(crate) struct SingleFlight<T: Clone> {
    /// A `std` mutex: it is held only to look up or insert, never across an await.
    flights: Registry<T>,
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    pub(crate) fn new() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The computation under `key`: the one under way, or the one `start` begins when there is
    /// none (`start` is not called then). It runs whether or not the caller awaits it; must be
    /// called inside a Tokio runtime.
    pub(crate) fn join<F, Fut>(&self, key: String, start: F) -> Flight<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: From<Aborted>,
    {
        let mut flights = lock(&self.flights);
        if let Some(flight) = flights.get(&key) {
            return flight.clone();
        }
        let computation = start();
        // Removes the flight when the task ends, even by a panic. It cannot run before the
        // insertion below: that needs the lock held here.
        let leaving = Leaving {
            registry: Arc::clone(&self.flights),
            keys: vec![key.clone()],
        };
        let task = tokio::spawn(async move {
            let _leaving = leaving;
            computation.await
        });
        let flight = async move { task.await.unwrap_or_else(|_| T::from(Aborted)) }
            .boxed()
            .shared();
        flights.insert(key, flight.clone());
        flight
    }

    /// The computations under `keys` (distinct), in their order: each key joins the one
    /// already under way for it, and `start` begins one computation, run as one task, for all
    /// the others at once (it is given their positions in `keys` and must answer one result
    /// per position, in that order; it is not called when every key has a computation).
    ///
    /// Each key it leads is registered as a computation of its own, which takes its result
    /// from the shared one, so a later call wanting any one of those keys joins it; all of
    /// them are removed when the shared task ends, even by a panic.
    pub(crate) fn join_many<F, Fut>(&self, keys: &[String], start: F) -> Vec<Flight<T>>
    where
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Vec<T>> + Send + 'static,
        T: From<Aborted>,
    {
        let mut flights = lock(&self.flights);
        let mut joined: Vec<Option<Flight<T>>> =
            keys.iter().map(|key| flights.get(key).cloned()).collect();
        let led: Vec<usize> = (0..keys.len()).filter(|i| joined[*i].is_none()).collect();
        if !led.is_empty() {
            let computation = start(led.clone());
            // As in `join`: the removal needs the lock held here, so it follows the insertions.
            let leaving = Leaving {
                registry: Arc::clone(&self.flights),
                keys: led.iter().map(|i| keys[*i].clone()).collect(),
            };
            let task = tokio::spawn(async move {
                let _leaving = leaving;
                Arc::new(computation.await)
            });
            let together = async move { task.await.map_err(|_| Aborted) }
                .boxed()
                .shared();
            for (nth, index) in led.into_iter().enumerate() {
                let together = together.clone();
                let flight = async move {
                    match together.await {
                        Ok(results) => results.get(nth).cloned().unwrap_or(T::from(Aborted)),
                        Err(aborted) => T::from(aborted),
                    }
                }
                .boxed()
                .shared();
                flights.insert(keys[index].clone(), flight.clone());
                joined[index] = Some(flight);
            }
        }
        joined.into_iter().flatten().collect()
    }

    /// True while no computation is under way.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        lock(&self.flights).is_empty()
    }
}

struct Leaving<T: Clone> {
    registry: Registry<T>,
    keys: Vec<String>,
}

impl<T: Clone> Drop for Leaving<T> {
    fn drop(&mut self) {
        let mut flights = lock(&self.registry);
        for key in &self.keys {
            flights.remove(key);
        }
    }
}

/// A computation that panicked (or whose runtime shut down) before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aborted;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
