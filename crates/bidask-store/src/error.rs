//! What can go wrong in the store, sorted by what the caller should do.

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timeout,
    /// connection lost): the caller answers 503 and tries again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database could not be reached at start (see
    /// [`crate::Store::reach`]); `target` says where it was looked for.
    #[error("cannot connect to {target} (DATABASE_URL): {}", reason(source))]
    Unreachable {
        /// Host, port and database, or the SQLite file: never a password.
        target: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
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
    /// The database URL names no backend this store speaks. It holds the
    /// URL's scheme only, since the rest may hold a password.
    #[error("the database URL must start with postgres://, postgresql:// or sqlite: (got {0})")]
    InvalidUrl(String),
    /// The PostgreSQL URL has a parameter the driver would ignore, after
    /// logging its value (which may be a password) at every connection.
    #[error(
        "the database URL has a parameter the PostgreSQL driver does not know: {0:?} \
         (known: {known})",
        known = crate::pool::postgres_parameters().collect::<Vec<_>>().join(", ")
    )]
    UnknownParameter(String),
    /// A file the PostgreSQL URL names (a certificate or key) cannot be
    /// read.
    #[error("cannot read {path} ({parameter} in DATABASE_URL): {source}")]
    UnreadableFile {
        /// The URL parameter naming the file.
        parameter: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database opened, but this process may not write to it.
    #[error(
        "{target} can only be read by this process ({reason}): bidask writes to it, and \
         beside it; check the owner and permissions of the file, its -wal and -shm files \
         and its directory, and that its file system is mounted read-write"
    )]
    ReadOnly {
        /// Which database.
        target: String,
        /// SQLite's words.
        reason: String,
    },
    /// A stored value does not fit the schema this code expects.
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// Any other database error: a bug, or a broken database.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The database holds a migration this build does not have: a newer
    /// bidask migrated it, and this one would misread what it stored.
    #[error(
        "the database was migrated by a newer bidask (it has migration {0}, which this one does \
         not know): run that version or a later one"
    )]
    NewerSchema(i64),
    /// The migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Usernames that differ only in case, which versions before migration
    /// 3 took (and, on a PostgreSQL database with a Turkish locale, before
    /// 11), stop the upgrade that makes names case-insensitive: which
    /// account is meant by a name is not for the server to choose.
    #[error(
        "migration {migration} makes usernames case-insensitive, and these differ only in \
         case: {}; rename one of each (UPDATE users SET username = '<new name>' WHERE id = \
         <id>) and start again",
        clashes.join(", ")
    )]
    UsernamesDifferOnlyInCase {
        /// The migration that stopped.
        migration: i64,
        /// The names, a group per account they would all name.
        clashes: Vec<String>,
    },
    /// [`crate::Store::back_up`] copies the embedded SQLite database only.
    #[error(
        "bidask backup copies the embedded SQLite database; for PostgreSQL use pg_dump, which \
         takes a consistent copy while bidask runs (pg_dump --format=custom \
         --file=bidask.dump \"$DATABASE_URL\")"
    )]
    BackupUnsupported,
    /// The copy could not be written.
    #[error("cannot write the backup {path}: {source}")]
    Backup {
        /// Where it was to go.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
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
    /// Another server claimed this database while this committer's
    /// connection, and with it the writer's lock, was gone: what this
    /// server holds in memory is no longer what is stored. It must stop
    /// writing for good (see [`crate::Committer::claim`]).
    #[error(
        "another bidask server has claimed this database since this one lost the writer's lock"
    )]
    WriterReplaced,
    /// [`crate::Committer::claim`] was called without the lock that
    /// [`crate::Committer::fence`] takes: a bug in the caller. (A lock
    /// connection that died before the claim fails the claim's statement,
    /// as [`StoreError::Unavailable`].)
    #[error("the database was claimed without the writer's lock")]
    LockLost,
}

/// What the database said, without the location in PostgreSQL's own
/// source code that sqlx appends to it (`at line 768`).
fn reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database) => database.message().to_owned(),
        other => other.to_string(),
    }
}

impl StoreError {
    /// Whether retrying later can help: the database was unreachable
    /// rather than refusing what was asked.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::Unreachable { .. }
                | Self::TimedOut
                | Self::WriterElsewhere
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
            sqlx::Error::Database(ref database)
                if database.code().is_some_and(|code| is_outage(&code)) =>
            {
                Self::Unavailable(error)
            }
            error => Self::Database(error),
        }
    }
}

/// Whether a database error code says the storage, not the request, is at
/// fault, so that the same request may well succeed later.
///
/// PostgreSQL's codes are five-character SQLSTATEs: class 08 (connection
/// exception), 53 (insufficient resources: disk full, out of memory, too
/// many connections), 57 (operator intervention: shutdown, restart, a
/// cancelled statement) and 58 (system error: I/O), and 25006, a write
/// to a database that is read-only (a standby after a failover, or one
/// an operator set so). SQLite's are its
/// extended result codes, at most four digits, whose low byte is the
/// primary code: BUSY and LOCKED (a lock held past the busy timeout),
/// NOMEM, READONLY (a file or disk that became read-only), IOERR, FULL
/// and CANTOPEN.
fn is_outage(code: &str) -> bool {
    if code.len() == 5 {
        return code == "25006"
            || ["08", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class));
    }
    const BUSY: u32 = 5;
    const LOCKED: u32 = 6;
    const NOMEM: u32 = 7;
    const READONLY: u32 = 8;
    const IOERR: u32 = 10;
    const FULL: u32 = 13;
    const CANTOPEN: u32 = 14;
    code.parse::<u32>().is_ok_and(|code| {
        matches!(
            code & 0xff,
            BUSY | LOCKED | NOMEM | READONLY | IOERR | FULL | CANTOPEN
        )
    })
}

#[cfg(test)]
mod tests {
    use super::is_outage;

    #[test]
    fn outages_are_told_from_refusals_on_both_backends() {
        for code in [
            "08006", "53100", "53300", "57P01", "57014", "58030", "25006",
        ] {
            assert!(is_outage(code), "PostgreSQL {code}");
        }
        for code in ["23505", "23514", "22003", "42P01", "40001"] {
            assert!(!is_outage(code), "PostgreSQL {code}");
        }
        // BUSY, BUSY_RECOVERY, LOCKED_SHAREDCACHE, NOMEM, READONLY_DIRECTORY,
        // IOERR_FSYNC, FULL, CANTOPEN.
        for code in ["5", "261", "262", "7", "1544", "1034", "13", "14"] {
            assert!(is_outage(code), "SQLite {code}");
        }
        // CONSTRAINT_CHECK, CONSTRAINT_UNIQUE, ERROR, CORRUPT.
        for code in ["275", "2067", "1", "11"] {
            assert!(!is_outage(code), "SQLite {code}");
        }
    }
}
