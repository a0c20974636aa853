//! The one integration-test binary of stockpile-infrastructure.

mod cache;
mod repository;
