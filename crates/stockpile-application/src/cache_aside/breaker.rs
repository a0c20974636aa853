//! Failing fast while the database is down: after a load finds the database unavailable, loads
//! are refused at once instead of each waiting out the pool's acquire timeout, until a single
//! trial load (one a second at most) finds it back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long the breaker stays open before it lets one trial load through.
pub const TRIAL_INTERVAL: Duration = Duration::from_secs(1);

/// Whether loads reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Loads go to the database.
    Closed,
    /// The database failed: loads are refused at once, but for one trial a second.
    Open,
}

#[derive(Debug)]
enum State {
    Closed,
    Open {
        next_trial: Instant,
        trial_running: bool,
    },
}

/// What one load may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The breaker is closed: load.
    Load,
    /// The breaker is open and this load is its trial: load, and report how it went.
    Trial,
    /// The breaker is open: do not load.
    Refused,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    opened: AtomicU64,
}

impl Breaker {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::Closed),
            opened: AtomicU64::new(0),
        }
    }

    pub(crate) fn admit(&self) -> Admission {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            State::Closed => Admission::Load,
            State::Open {
                next_trial,
                trial_running,
            } => {
                if *trial_running || Instant::now() < *next_trial {
                    Admission::Refused
                } else {
                    *trial_running = true;
                    Admission::Trial
                }
            }
        }
    }

    /// Records how an admitted load ended: `database_failed` when the database was unavailable.
    pub(crate) fn record(&self, admission: Admission, database_failed: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match (&*state, database_failed) {
            (State::Closed, false) => {}
            (_, false) => {
                *state = State::Closed;
                tracing::info!("the database answers again; loads reach it again");
            }
            (State::Open { .. }, true) if admission != Admission::Trial => {}
            (was, true) => {
                if matches!(was, State::Closed) {
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "the database is unavailable; refusing loads at once, trying one a second"
                    );
                }
                *state = State::Open {
                    next_trial: Instant::now() + TRIAL_INTERVAL,
                    trial_running: false,
                };
            }
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
        }
    }

    /// How many times the breaker opened since the process started.
    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_failure_opens_it_and_one_trial_a_second_closes_it() {
        let breaker = Breaker::new();
        assert_eq!(breaker.admit(), Admission::Load);
        breaker.record(Admission::Load, true);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.times_opened(), 1);
        assert_eq!(breaker.admit(), Admission::Refused);

        tokio::time::advance(TRIAL_INTERVAL).await;
        assert_eq!(breaker.admit(), Admission::Trial);
        assert_eq!(breaker.admit(), Admission::Refused, "one trial at a time");
        breaker.record(Admission::Trial, true);
        assert_eq!(
            breaker.admit(),
            Admission::Refused,
            "a failed trial waits again"
        );
        assert_eq!(breaker.times_opened(), 1, "still the same opening");

        tokio::time::advance(TRIAL_INTERVAL).await;
        assert_eq!(breaker.admit(), Admission::Trial);
        breaker.record(Admission::Trial, false);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit(), Admission::Load);
    }

    #[tokio::test(start_paused = true)]
    async fn a_load_admitted_before_the_opening_neither_reopens_nor_closes_it_by_failing() {
        let breaker = Breaker::new();
        breaker.record(Admission::Load, true);
        // A load let through while closed fails late: the next trial time stays.
        tokio::time::advance(TRIAL_INTERVAL / 2).await;
        breaker.record(Admission::Load, true);
        tokio::time::advance(TRIAL_INTERVAL / 2).await;
        assert_eq!(breaker.admit(), Admission::Trial);
        // Any load that succeeds shows the database is back.
        breaker.record(Admission::Load, false);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
