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

    /// True while no computation is under way.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        lock(&self.flights).is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
