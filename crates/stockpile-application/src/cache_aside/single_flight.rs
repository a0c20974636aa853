//! One computation per key at a time inside this process: concurrent callers asking for the
//! same key join the computation already under way instead of starting their own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};

type Flight<T> = Shared<BoxFuture<'static, T>>;

/// Computations in progress by key; each removes itself when it ends.
pub(crate) struct SingleFlight<T: Clone> {
    /// A `std` mutex: it is held only to look up or insert, never across an await.
    flights: Arc<Mutex<HashMap<String, Flight<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    pub(crate) fn new() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The result of the computation under `key`: the one under way, or the one `start`
    /// begins when there is none (`start` is not called then).
    pub(crate) async fn run<F, Fut>(&self, key: String, start: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some(flight) = flights.get(&key) {
                flight.clone()
            } else {
                let computation = start();
                let registry = Arc::clone(&self.flights);
                let own_key = key.clone();
                let flight = async move {
                    let result = computation.await;
                    lock(&registry).remove(&own_key);
                    result
                }
                .boxed()
                .shared();
                flights.insert(key, flight.clone());
                flight
            }
        };
        flight.await
    }

    /// The results under `keys` (distinct), in their order, computed together: each key joins the
    /// computation already under way for it, and `start` begins one computation for all the
    /// others at once (it is given their positions in `keys` and must answer one result per
    /// position, in that order; it is not called when every key has a computation).
    ///
    /// Each key it leads is registered as a computation of its own, which takes its result
    /// from the shared one, so a later call wanting any one of those keys joins it.
    pub(crate) async fn run_many<F, Fut>(&self, keys: &[String], start: F) -> Vec<T>
    where
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Vec<T>> + Send + 'static,
    {
        let flights: Vec<Flight<T>> = {
            let mut flights = lock(&self.flights);
            let mut joined: Vec<Option<Flight<T>>> =
                keys.iter().map(|key| flights.get(key).cloned()).collect();
            let led: Vec<usize> = (0..keys.len()).filter(|i| joined[*i].is_none()).collect();
            if !led.is_empty() {
                let together = start(led.clone()).map(Arc::new).boxed().shared();
                for (nth, index) in led.into_iter().enumerate() {
                    let together = together.clone();
                    let registry = Arc::clone(&self.flights);
                    let own_key = keys[index].clone();
                    let flight = async move {
                        let result = together.await[nth].clone();
                        lock(&registry).remove(&own_key);
                        result
                    }
                    .boxed()
                    .shared();
                    flights.insert(keys[index].clone(), flight.clone());
                    joined[index] = Some(flight);
                }
            }
            joined.into_iter().flatten().collect()
        };
        futures::future::join_all(flights).await
    }

    /// True while no computation is under way.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        lock(&self.flights).is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
