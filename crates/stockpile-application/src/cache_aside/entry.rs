//! The stored form of a cached answer: the response body, its ETag, two timestamps and the
//! token of the generation it was loaded under.
//!
//! Encoded with a magic and version so that an entry from another version is recognised and
//! treated as a miss, and with the body's length so that a truncated one is. A hit does not
//! hash the body again: the length catches what a cache can do to a value (cut it short, or
//! hand back another version's layout), and re-hashing 25 KB on every hit cost more CPU than
//! any other step of a first-tier hit (see `docs/benchmarks.md`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The strong ETag of a body: a hash of the bytes alone, identical on every instance.
pub fn etag_of(body: &[u8]) -> Arc<str> {
    Arc::from(format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body)))
}

/// A stored answer, the times that decide whether it may be served, and the generation that
/// must still be current for it to be served at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stored_at_ms: u64,
    pub(crate) fresh_until_ms: u64,
    /// The token its generation held when its load began; empty for an answer not stored.
    pub(crate) generation: Bytes,
    pub(crate) etag: Arc<str>,
    pub(crate) body: Bytes,
}

const ENTRY_MAGIC: &[u8; 4] = b"SPE3";

/// Magic, two timestamps, the generation's length, the ETag's length and the body's length.
const ENTRY_HEADER_LEN: usize = 4 + 8 + 8 + 2 + 2 + 4;

impl Entry {
    /// A body computed now, fresh for `ttl_ms`, loaded under `generation`.
    pub(crate) fn new(body: Bytes, ttl_ms: u64, generation: Bytes) -> Self {
        let stored_at_ms = now_ms();
        Self {
            stored_at_ms,
            fresh_until_ms: stored_at_ms + ttl_ms,
            generation,
            etag: etag_of(&body),
            body,
        }
    }

    /// An answer assembled at `now` from entries, kept in this process only (no generation),
    /// fresh until the first of them stops being fresh.
    pub(crate) fn assembled(answer: &super::CachedResponse, now: u64, fresh_until_ms: u64) -> Self {
        Self {
            stored_at_ms: now,
            fresh_until_ms,
            generation: Bytes::new(),
            etag: Arc::clone(&answer.etag),
            body: answer.body.clone(),
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            ENTRY_HEADER_LEN + self.generation.len() + self.etag.len() + self.body.len(),
        );
        out.put_slice(ENTRY_MAGIC);
        out.put_u64(self.stored_at_ms);
        out.put_u64(self.fresh_until_ms);
        // Tokens and ETags are a few dozen bytes; a longer one would decode as corrupt.
        out.put_u16(u16::try_from(self.generation.len()).unwrap_or(u16::MAX));
        out.put_u16(u16::try_from(self.etag.len()).unwrap_or(0));
        // Bodies are bounded far below 4 GiB (a page of 200 stocks, 20 years of bars); a body
        // past it would decode as truncated, a miss, never as another body.
        out.put_u32(u32::try_from(self.body.len()).unwrap_or(u32::MAX));
        out.put_slice(&self.generation);
        out.put_slice(self.etag.as_bytes());
        out.put_slice(&self.body);
        out.freeze()
    }

    /// The entry `raw` holds, or `None` when it is corrupt, truncated or of another layout.
    pub(crate) fn decode(mut raw: Bytes) -> Option<Self> {
        if raw.len() < ENTRY_HEADER_LEN || &raw[..4] != ENTRY_MAGIC {
            return None;
        }
        raw.advance(4);
        let stored_at_ms = raw.get_u64();
        let fresh_until_ms = raw.get_u64();
        let generation_len = usize::from(raw.get_u16());
        let etag_len = usize::from(raw.get_u16());
        let body_len = usize::try_from(raw.get_u32()).ok()?;
        if raw.len()
            != generation_len
                .checked_add(etag_len)?
                .checked_add(body_len)?
        {
            return None;
        }
        let generation = raw.split_to(generation_len);
        let etag = std::str::from_utf8(&raw[..etag_len]).ok()?.into();
        raw.advance(etag_len);
        Some(Self {
            stored_at_ms,
            fresh_until_ms,
            generation,
            etag,
            body: raw,
        })
    }

    /// Whether `generation` (what its generation key holds now) is the one this entry was
    /// loaded under. A generation key that is gone (deleted by a write, evicted, lost in a
    /// restart) matches nothing, and a new one holds a new random token, so an entry once
    /// superseded never becomes current again.
    pub(crate) fn is_current(&self, generation: Option<&Bytes>) -> bool {
        !self.generation.is_empty() && generation == Some(&self.generation)
    }

    /// Whether it may still be served as fresh at `now`.
    pub(crate) fn is_fresh_at(&self, now: u64) -> bool {
        self.fresh_until_ms > now
    }

    /// The entry `raw` holds when it is still fresh and current under `generation`, with its
    /// milliseconds left.
    pub(crate) fn fresh(raw: Option<Bytes>, generation: Option<&Bytes>) -> Option<(Self, u64)> {
        let entry = Self::decode(raw?)?;
        if !entry.is_current(generation) {
            return None;
        }
        let left = entry.fresh_until_ms.checked_sub(now_ms())?;
        (left > 0).then_some((entry, left))
    }
}

/// A new generation token: 128 random bits, so a generation key that is deleted, evicted or
/// lost and then started again never holds a token an older entry carries.
pub(crate) fn new_generation() -> Bytes {
    Bytes::from(format!("{:032x}", rand::random::<u128>()))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
