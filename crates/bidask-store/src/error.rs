//! What can go wrong in the store, sorted by what the caller should do.

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timeout,
    /// connection lost): the caller answers 503 and tries again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database did not answer within the caller's bound; what was
    /// asked may or may not have happened.
    #[error("the database did not answer in time")]
    TimedOut,
    /// A unique constraint refused the write (a taken username, a reused
    /// key): the caller answers 409.
    #[error("a unique constraint refused the write ({constraint})")]
    Conflict {
        /// The name of the constraint, or the database's message when the
        /// backend does not name it (SQLite).
        constraint: String,
    },
    /// The database URL names no backend this store speaks.
    #[error("the database URL must start with postgres://, postgresql:// or sqlite: (got {0:?})")]
    InvalidUrl(String),
    /// A stored value does not fit the schema this code expects.
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// Any other database error: a bug, or a broken database.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite database's lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    LockFile {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another session holds the writer's lock past the wait: another
    /// server writes to this database, or a dead one's last commit is
    /// still running. On SQLite, another process holds the lock file.
    #[error("another bidask server is writing to this database (it holds the writer's lock)")]
    WriterElsewhere,
}

impl StoreError {
    /// Whether retrying later can help: the database was unreachable
    /// rather than refusing what was asked.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::TimedOut | Self::WriterElsewhere
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Self::Unavailable(error),
            sqlx::Error::Database(ref database) if database.is_unique_violation() => {
                Self::Conflict {
                    constraint: database
                        .constraint()
                        .map_or_else(|| database.message().to_owned(), str::to_owned),
                }
            }
            // PostgreSQL reports a server shutting down or restarting as
            // database errors of class 57 (operator intervention) and 08
            // (connection exception); SQLite reports a lock held past the
            // busy timeout as SQLITE_BUSY (5) or SQLITE_LOCKED (6). All pass
            // like a lost connection.
            sqlx::Error::Database(ref database)
                if database.code().is_some_and(|code| {
                    code.starts_with("57") || code.starts_with("08") || code == "5" || code == "6"
                }) =>
            {
                Self::Unavailable(error)
            }
            error => Self::Database(error),
        }
    }
}
