//! End-to-end tests: the real server on port 0, over SQLite (and PostgreSQL where it answers),
//! spoken to over HTTP.

// Helpers of this test binary may unwrap too: a panic anywhere here is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

// First in name order, which is the order libtest starts tests in: see the module.
mod after_idling;
mod backends;
mod browser;
mod bulk_load;
mod cache;
mod compose;
mod deployment_guide;
mod docs;
mod durability;
mod fleet;
mod invalidation;
mod load_balancer;
mod outage;
mod quotes;
mod readme;
mod reads;
mod schemathesis;
mod secrets;
mod streams;
mod topologies;
mod two_instances;
mod writes;
