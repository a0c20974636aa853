//! Answers assembled from many entries (a batch of quotes), kept for reuse while the cache
//! vouches that none of those entries changed ([`Coherence`]).
//!
//! A batch hit looks up two keys per entry and joins their bodies; the joined answer is the
//! same until one of the entries changes, which only an invalidation or expiry does. So the
//! joined answer is kept under the request's own key with the cache's mark, and reused while
//! the mark stands, for no longer than the cache's word holds ([`Coherence::for_at_most`]),
//! and never past the first of its entries' freshness: reused, it answers exactly as the
//! lookups would have.

use crate::ports::Coherence;

use super::entry::Entry;
use super::CachedResponse;

/// How many bytes of assembled bodies one process keeps: a few hundred batches of 100 quotes.
const KEPT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Clone)]
struct Assembled {
    mark: u64,
    reusable_until_ms: u64,
    /// The joined body, fresh until the first of its parts stops being fresh.
    entry: Entry,
    /// How many entries it was assembled from: each is a hit again when it is reused.
    parts: usize,
}

/// An answer weighs its key's and its body's bytes.
#[derive(Clone, Copy)]
struct Bytesize;

impl quick_cache::Weighter<String, Assembled> for Bytesize {
    fn weight(&self, key: &String, kept: &Assembled) -> u64 {
        u64::try_from(key.len() + kept.entry.body.len()).unwrap_or(u64::MAX)
    }
}

/// The kept answers, bounded by bytes.
pub(super) struct AssembledAnswers {
    answers: quick_cache::sync::Cache<
        String,
        Assembled,
        Bytesize,
        foldhash::fast::RandomState,
        quick_cache::sync::DefaultLifecycle<String, Assembled>,
    >,
}

impl AssembledAnswers {
    pub(super) fn new() -> Self {
        // A 30-ticker answer is about 7 KB.
        const TYPICAL_BYTES: u64 = 8 * 1024;
        Self {
            answers: quick_cache::sync::Cache::with(
                usize::try_from(KEPT_BYTES / TYPICAL_BYTES).unwrap_or(usize::MAX),
                KEPT_BYTES,
                Bytesize,
                foldhash::fast::RandomState::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
        }
    }

    /// The answer kept under `key` and how many entries it stands for, when it may still be
    /// reused under the cache's `mark` at `now`.
    pub(super) fn reuse(&self, key: &str, mark: u64, now: u64) -> Option<(CachedResponse, usize)> {
        let kept = self.answers.get(key)?;
        let reusable =
            kept.mark == mark && now < kept.reusable_until_ms && kept.entry.is_fresh_at(now);
        reusable.then(|| (CachedResponse::hit(kept.entry, now), kept.parts))
    }

    /// Keeps `answer`, assembled at `now` from `parts` entries read under `coherence` and
    /// fresh until `fresh_until_ms`.
    pub(super) fn keep(
        &self,
        key: String,
        coherence: Coherence,
        now: u64,
        fresh_until_ms: u64,
        answer: &CachedResponse,
        parts: usize,
    ) {
        let window = u64::try_from(coherence.for_at_most.as_millis()).unwrap_or(u64::MAX);
        let kept = Assembled {
            mark: coherence.mark,
            reusable_until_ms: now.saturating_add(window),
            entry: Entry::assembled(answer, now, fresh_until_ms),
            parts,
        };
        self.answers.insert(key, kept);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::cache_aside::entry::etag_of;
    use crate::cache_aside::CacheOutcome;

    fn answer(body: &'static str) -> CachedResponse {
        CachedResponse {
            body: Bytes::from_static(body.as_bytes()),
            etag: etag_of(body.as_bytes()),
            outcome: CacheOutcome::Hit,
            max_age: 1,
            age: None,
        }
    }

    fn vouching(mark: u64, millis: u64) -> Coherence {
        Coherence {
            mark,
            for_at_most: Duration::from_millis(millis),
        }
    }

    #[test]
    fn an_answer_is_reused_under_its_mark_inside_its_window_while_fresh() {
        let kept = AssembledAnswers::new();
        kept.keep(
            "a,b".to_owned(),
            vouching(7, 500),
            1_000,
            1_300,
            &answer("[a,b]"),
            2,
        );

        let (reused, parts) = kept.reuse("a,b", 7, 1_100).expect("reusable");
        assert_eq!(parts, 2);
        assert_eq!(reused.body, answer("[a,b]").body);
        assert_eq!(reused.etag, answer("[a,b]").etag);
        assert_eq!(reused.outcome, CacheOutcome::Hit);
        // As a hit on its first-expiring part would say.
        assert_eq!(reused.max_age, 1);

        assert!(kept.reuse("a,b", 8, 1_100).is_none(), "the mark moved");
        assert!(kept.reuse("b,a", 7, 1_100).is_none(), "another answer");
        assert!(
            kept.reuse("a,b", 7, 1_300).is_none(),
            "a part is no longer fresh"
        );
        kept.keep(
            "a,b".to_owned(),
            vouching(7, 100),
            1_000,
            9_000,
            &answer("[a,b]"),
            2,
        );
        assert!(kept.reuse("a,b", 7, 1_099).is_some());
        assert!(
            kept.reuse("a,b", 7, 1_100).is_none(),
            "past the cache's word"
        );
    }
}
