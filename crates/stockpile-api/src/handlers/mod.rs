//! The request handlers, one module per section of the contract.

pub mod cache_admin;
pub(crate) mod documentation;
pub mod operations;
pub mod reads;
pub mod streams;
pub mod writes;
