//! The confirmations that the other instances applied an invalidation to their first tiers,
//! which a write waits for before it answers: without them, a read sent to another instance
//! right after the write's answer could still be served the older entry from that instance's
//! memory, its invalidation still on the way (seen about once in 300 such reads behind a load
//! balancer).
//!
//! Every invalidation payload carries an id. `PUBLISH` answers how many subscribers received
//! it; each of them applies it and then publishes the id back on the sender's own channel
//! (the sender's own subscriber counts its own payloads here directly). The sender waits until
//! as many confirmations as receivers have arrived, or its patience runs out: an instance
//! that is frozen or cut off from Redis must not stall every write, so that wait is bounded
//! and counted, never failed.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The invalidations this instance awaits confirmations of, by payload id.
#[derive(Debug, Default)]
pub(super) struct Acknowledgements {
    next_id: AtomicU64,
    awaited: Mutex<HashMap<u64, Arc<Tally>>>,
}

/// The confirmations of one announcement's payloads received so far.
#[derive(Debug, Default)]
struct Tally {
    received: AtomicU64,
    arrived: Notify,
}

/// One announcement's payload ids, registered before they are published (a confirmation can
/// arrive before `PUBLISH` answers), and forgotten when this is dropped.
#[derive(Debug)]
pub(super) struct Awaited<'a> {
    owner: &'a Acknowledgements,
    ids: Range<u64>,
    tally: Arc<Tally>,
}

impl Acknowledgements {
    /// Registers `payloads` new ids, numbered from the first one's.
    pub(super) fn expect(&self, payloads: usize) -> Awaited<'_> {
        let count = u64::try_from(payloads).unwrap_or(u64::MAX);
        let first = self.next_id.fetch_add(count, Ordering::Relaxed);
        let tally = Arc::new(Tally::default());
        let ids = first..first.saturating_add(count);
        let mut awaited = self.awaited.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids.clone() {
            awaited.insert(id, Arc::clone(&tally));
        }
        Awaited {
            owner: self,
            ids,
            tally,
        }
    }

    /// Counts a confirmation of payload `id`; one of an announcement no longer awaited (its
    /// wait ran out) is ignored.
    pub(super) fn confirm(&self, id: u64) {
        let tally = self
            .awaited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some(tally) = tally {
            tally.received.fetch_add(1, Ordering::SeqCst);
            tally.arrived.notify_waiters();
        }
    }
}

impl Awaited<'_> {
    /// The id of the first payload; the others follow it.
    pub(super) fn first_id(&self) -> u64 {
        self.ids.start
    }

    /// Whether `receivers` confirmations arrived within `patience`.
    pub(super) async fn all(&self, receivers: u64, patience: Duration) -> bool {
        let arrived = async {
            loop {
                let notified = self.tally.arrived.notified();
                tokio::pin!(notified);
                // Registered before the count is read, so that no confirmation in between is
                // missed.
                notified.as_mut().enable();
                if self.tally.received.load(Ordering::SeqCst) >= receivers {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(patience, arrived).await.is_ok()
    }
}

impl Drop for Awaited<'_> {
    fn drop(&mut self) {
        let mut awaited = self
            .owner
            .awaited
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for id in self.ids.clone() {
            awaited.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_wait_ends_when_every_receiver_confirmed_any_of_the_payloads() {
        let acknowledgements = Acknowledgements::default();
        let awaited = acknowledgements.expect(2);
        let first = awaited.first_id();
        // Confirmations may come before the wait starts, and for any payload.
        acknowledgements.confirm(first);
        acknowledgements.confirm(first + 1);
        let confirming = async {
            tokio::task::yield_now().await;
            acknowledgements.confirm(first + 1);
        };
        let (all, ()) = tokio::join!(awaited.all(3, PATIENCE), confirming);
        assert!(all);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_confirmation_ends_the_wait_at_its_patience() {
        let acknowledgements = Acknowledgements::default();
        let awaited = acknowledgements.expect(1);
        acknowledgements.confirm(awaited.first_id());
        let started = tokio::time::Instant::now();
        assert!(!awaited.all(2, Duration::from_millis(300)).await);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn no_receiver_needs_no_wait_and_others_ids_are_not_counted() {
        let acknowledgements = Acknowledgements::default();
        let earlier = acknowledgements.expect(1);
        let awaited = acknowledgements.expect(1);
        assert_ne!(earlier.first_id(), awaited.first_id());
        assert!(awaited.all(0, Duration::ZERO).await);
        acknowledgements.confirm(earlier.first_id());
        assert!(!awaited.all(1, Duration::from_millis(20)).await);
    }

    #[test]
    fn ids_are_forgotten_with_their_announcement() {
        let acknowledgements = Acknowledgements::default();
        let awaited = acknowledgements.expect(3);
        let first = awaited.first_id();
        drop(awaited);
        assert!(acknowledgements
            .awaited
            .lock()
            .unwrap()
            .keys()
            .all(|id| !(first..first + 3).contains(id)));
        // A late confirmation of a forgotten id is harmless.
        acknowledgements.confirm(first);
    }
}
