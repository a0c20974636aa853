//! Counters of cache traffic by key family, for `/metrics` and `/api/cache/status`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache_keys::KeyFamily;

/// What happened to one cached read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    Miss,
    Error,
    /// The database computed the answer on a miss.
    Load,
}

/// This process's cache counters since it started. Lock-free: a hit costs one atomic add.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    counters: [[AtomicU64; KeyFamily::ALL.len()]; 4],
}

impl CacheMetrics {
    pub fn record(&self, family: KeyFamily, event: CacheEvent) {
        self.counters[event as usize][family.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one event in one family.
    pub fn count(&self, family: KeyFamily, event: CacheEvent) -> u64 {
        self.counters[event as usize][family.index()].load(Ordering::Relaxed)
    }

    /// The count of one event over all families.
    pub fn total(&self, event: CacheEvent) -> u64 {
        KeyFamily::ALL.iter().map(|f| self.count(*f, event)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_family_and_event() {
        let metrics = CacheMetrics::default();
        metrics.record(KeyFamily::Detail, CacheEvent::Hit);
        metrics.record(KeyFamily::Detail, CacheEvent::Hit);
        metrics.record(KeyFamily::List, CacheEvent::Load);
        assert_eq!(metrics.count(KeyFamily::Detail, CacheEvent::Hit), 2);
        assert_eq!(metrics.count(KeyFamily::List, CacheEvent::Hit), 0);
        assert_eq!(metrics.total(CacheEvent::Load), 1);
    }
}
