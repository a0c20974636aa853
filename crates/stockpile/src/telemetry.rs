//! Logging: `tracing` to standard error, pretty on a terminal and JSON otherwise (or as
//! `LOG_FORMAT` says), filtered by `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSection};

/// The filter when `RUST_LOG` is unset: the drivers' per-query lines only when they warn.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// sqlx's parser of connection URLs, silenced below.
const SILENCED_SQLX_URL_PARSER: &str = "sqlx_postgres::options::parse=error";

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(log: &LogSection) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
        // sqlx warns of a connect parameter it does not know with its value, which may be a
        // password (`?PASSWORD=…`); whatever `RUST_LOG` says, that line is never written.
        .add_directive(SILENCED_SQLX_URL_PARSER.parse().expect("a valid directive"));
    let format = log.format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
