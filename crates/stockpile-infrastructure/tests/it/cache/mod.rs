//! The cache adapters: the glob matcher, memory, null, Redis (against a real server) and the
//! fallback between them (against servers the tests start, stop and black-hole themselves);
//! and the quote changes carried between instances.

mod fallback;
mod glob;
mod memory;
mod null_and_settings;
mod quote_events;
mod redis;
mod redis_glob;
mod support;
mod tiered;
mod topologies;
