//! One integration-test binary for the HTTP layer: the real routing and middleware over a
//! `MockStockService` (or, where a value cannot be built outside the application crate, the
//! real `Stockpile` over mock ports).

// A panic in a test is a failed assertion, not a crashed request.
#![allow(clippy::unwrap_used)]

mod admin_auth;
mod cache_admin;
mod compression;
mod errors;
mod openapi;
mod operations;
mod quotes;
mod reads;
mod server;
mod streams;
mod support;
mod writes;
