//! The Stockpile binary's library half: settings, the composition root that wires the
//! adapters to the use cases and the HTTP server, and the seed and import commands.
//!
//! This is the only crate that knows every other one; nothing depends on it.

pub mod app;
pub mod import;
pub mod seed;
pub mod settings;
pub mod telemetry;

pub use app::{Application, StartupError};
pub use settings::Settings;
