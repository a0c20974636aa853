//! Translation of driver errors into the port's [`RepositoryError`].
//!
//! Messages never carry the database URL (it may hold a password): connection problems get a
//! fixed phrase, and only query errors, whose text names tables and constraints, pass through.

use sea_orm::sqlx;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
use stockpile_application::ports::RepositoryError;

/// SQLite's result code for "the database is locked" after the busy timeout ran out.
const SQLITE_BUSY: &str = "5";

/// PostgreSQL's `query_canceled`: here, a statement that ran past `statement_timeout`.
const POSTGRES_QUERY_CANCELED: &str = "57014";

pub(crate) fn db_error(error: DbErr) -> RepositoryError {
    match error {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
            RepositoryError::Unavailable("timed out waiting for a database connection".into())
        }
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => {
            RepositoryError::Unavailable("the database connection was closed".into())
        }
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_error(e),
        // sea-orm's own connection errors quote the connection string: say only what failed.
        DbErr::Conn(RuntimeErr::Internal(_)) => {
            RepositoryError::Internal("cannot open the database connection".into())
        }
        other => RepositoryError::Internal(other.to_string()),
    }
}

fn sqlx_error(error: sqlx::Error) -> RepositoryError {
    match error {
        sqlx::Error::Io(e) => {
            RepositoryError::Unavailable(format!("cannot reach the database ({})", e.kind()))
        }
        sqlx::Error::Tls(_) => {
            RepositoryError::Unavailable("TLS handshake with the database failed".into())
        }
        sqlx::Error::PoolTimedOut => {
            RepositoryError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => {
            RepositoryError::Unavailable("the connection pool is closed".into())
        }
        sqlx::Error::WorkerCrashed => {
            RepositoryError::Unavailable("the database worker stopped".into())
        }
        // The text of a configuration error may quote parts of the URL.
        sqlx::Error::Configuration(_) => {
            RepositoryError::Internal("invalid database configuration".into())
        }
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            // PostgreSQL's class 08 is "connection exception" and 57P0x "operator intervention"
            // (the server is shutting down or restarting); SQLite's BUSY means another writer
            // held the lock past the busy timeout. All of these pass, so callers may retry.
            if code.starts_with("08") || code.starts_with("57P") {
                RepositoryError::Unavailable("the database server is not accepting work".into())
            } else if code == SQLITE_BUSY {
                RepositoryError::Unavailable("the database is busy".into())
            } else if code == POSTGRES_QUERY_CANCELED {
                RepositoryError::Unavailable(
                    "the database did not finish the query within the statement timeout".into(),
                )
            } else {
                RepositoryError::Internal(db.to_string())
            }
        }
        other => RepositoryError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_network_trouble_is_unavailable() {
        for error in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::PoolTimedOut)),
            DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::Io(
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ))),
        ] {
            assert!(
                matches!(db_error(error), RepositoryError::Unavailable(_)),
                "should be unavailable"
            );
        }
    }

    #[test]
    fn connection_strings_never_reach_the_message() {
        let secret = "postgres://user:hunter2@db/app";
        let error = DbErr::Conn(RuntimeErr::Internal(format!(
            "The connection string '{secret}' has no supporting driver."
        )));
        assert!(!db_error(error).to_string().contains("hunter2"));
        let error = DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::Configuration(
            secret.into(),
        )));
        assert!(!db_error(error).to_string().contains("hunter2"));
    }
}
