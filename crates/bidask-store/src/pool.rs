//! Connecting to the database and migrating it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Executor, PgPool, Row};

use crate::error::StoreError;
use crate::read_only::ReadOnlySessions;

/// The migration that makes usernames case-insensitive (0003 on both
/// backends), which names an earlier version took can refuse.
const USERNAMES_FOLDED: i64 = 3;
/// PostgreSQL's migration that folds usernames as ASCII whatever the
/// database's locale, which names a Turkish one took can refuse.
const USERNAMES_FOLDED_AS_ASCII: i64 = 11;

/// A username folded as the index `users_username_folded` folds it:
/// ASCII letters only, whatever the database's locale. (SQLite's
/// `lower()` folds ASCII only, and knows no collation "C".)
pub(crate) fn folded(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Postgres => format!("lower({column} COLLATE \"C\")"),
        Backend::Sqlite => format!("lower({column})"),
    }
}

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`: the production store.
    Postgres,
    /// `sqlite:`: the embedded default, one file in WAL mode.
    Sqlite,
}

impl Backend {
    /// The backend a database URL names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else {
            None
        }
    }
}

/// A SQLite URL read the way sqlx reads it: `sqlite:` or `sqlite://`, a
/// percent-encoded path, then `?key=value&…`. Read from the text rather
/// than searched, so that a directory named `mode=…` or `my%20db` means
/// what it means to sqlx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteUrl {
    /// The file; `None` for a database in memory, or for SQLite's
    /// temporary one (an empty path), which each connection gets anew.
    pub file: Option<PathBuf>,
    /// Whether the URL gives a `mode` at all.
    pub names_mode: bool,
    /// `mode=ro` or `immutable=1`: connections through it cannot write.
    pub read_only: bool,
    /// Whether the store's connections create the file if it is missing:
    /// the URL names no mode (the store asks for `rwc`) or names `rwc`,
    /// and is not read-only.
    pub creates: bool,
}

impl SqliteUrl {
    /// `None` for another scheme, or a path that is not UTF-8 once
    /// decoded (which sqlx refuses too).
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        // As sqlx reads them: each `mode` can only switch something on
        // (`ro&rw` is read-only, `memory&rwc` in memory); the last
        // `immutable` counts.
        let (mut names_mode, mut read_only, mut in_memory, mut immutable, mut rwc) =
            (false, false, database == ":memory:", false, false);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match (&*key, &*value) {
                ("mode", mode) => {
                    names_mode = true;
                    read_only |= mode == "ro";
                    in_memory |= mode == "memory";
                    rwc |= mode == "rwc";
                }
                ("immutable", value) => immutable = matches!(value, "1" | "true"),
                _ => {}
            }
        }
        let path = percent_encoding::percent_decode_str(database)
            .decode_utf8()
            .ok()?;
        let read_only = read_only || immutable;
        let file = (!in_memory && !path.is_empty()).then(|| PathBuf::from(&*path));
        Some(Self {
            creates: file.is_some() && !read_only && (rwc || !names_mode),
            file,
            names_mode,
            read_only,
        })
    }
}

/// A SQLite `url` that opens its file in `mode` (`rwc`, `ro`), unless it
/// names a mode itself or is not a file.
pub fn with_sqlite_mode(url: &str, mode: &str) -> String {
    match SqliteUrl::parse(url) {
        Some(parsed) if !parsed.names_mode && parsed.file.is_some() => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}mode={mode}")
        }
        _ => url.to_owned(),
    }
}

/// Creates the file of a SQLite `url` that is opened to be created
/// ([`SqliteUrl::creates`]) readable and writable by its owner only, as the backup
/// and the kept token secret are: it holds password hashes, and SQLite
/// makes a file anyone may read. SQLite gives the `-wal` and `-shm` files
/// the database file's permissions. A file that exists keeps what its
/// owner gave it; one that cannot be made here (a missing directory) is
/// left to SQLite, whose error says why.
fn create_owner_only(url: &str) {
    use std::os::unix::fs::OpenOptionsExt;

    let Some(SqliteUrl {
        file: Some(file),
        creates: true,
        ..
    }) = SqliteUrl::parse(url)
    else {
        return;
    };
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
}

/// The file of a SQLite URL (`sqlite:my%20db.db?mode=rwc` → `my db.db`);
/// `None` for another backend or a database that is not a file.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    SqliteUrl::parse(url)?.file
}

/// The query parameters sqlx's PostgreSQL driver reads (besides
/// `options[…]` and [`FILE_PARAMETERS`]); it logs any other with its
/// value and goes on.
const PLAIN_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The parameters that name a file: sqlx reads them only when it
/// connects, and its error then says what failed but not which file.
const FILE_PARAMETERS: &[&str] = &[
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
];

/// Every query parameter the PostgreSQL driver reads, for the message
/// that refuses another.
pub fn postgres_parameters() -> impl Iterator<Item = &'static str> {
    PLAIN_PARAMETERS.iter().chain(FILE_PARAMETERS).copied()
}

/// Whether a certificate parameter holds the PEM itself rather than a
/// path: sqlx's own test (`CertificateInput::from`).
fn is_inline_pem(value: &str) -> bool {
    let trimmed = value.trim();
    trimmed.starts_with("-----BEGIN") && trimmed.ends_with("-----")
}

/// Refuses a PostgreSQL URL parameter the driver does not read, naming
/// the key only: a misspelt `pasword=…` would otherwise be logged, value
/// and all, at every connection, and silently do nothing. A certificate
/// or key file that cannot be read is refused here too, by its path,
/// unless TLS is off. A URL that does not parse is left to sqlx, which
/// says why.
fn check_postgres_parameters(url: &str) -> Result<(), StoreError> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let mut files = Vec::new();
    for (key, value) in parsed.query_pairs() {
        let known = postgres_parameters().any(|known| known == key)
            || (key.starts_with("options[") && key.ends_with(']'));
        if !known {
            return Err(StoreError::UnknownParameter(key.into_owned()));
        }
        if FILE_PARAMETERS.contains(&&*key) && !is_inline_pem(&value) {
            files.push((key.into_owned(), PathBuf::from(&*value)));
        }
    }
    // Without TLS sqlx reads none of them. It takes the mode from the
    // URL, else from PGSSLMODE, in any case.
    let mode = parsed
        .query_pairs()
        .find(|(key, _)| matches!(&**key, "sslmode" | "ssl-mode"))
        .map(|(_, value)| value.into_owned())
        .or_else(|| std::env::var("PGSSLMODE").ok());
    if mode.is_some_and(|mode| mode.eq_ignore_ascii_case("disable")) {
        return Ok(());
    }
    for (parameter, path) in files {
        // Read, not just opened: a directory opens.
        if let Err(source) = std::fs::read(&path) {
            return Err(StoreError::UnreadableFile {
                parameter,
                path,
                source,
            });
        }
    }
    Ok(())
}

/// What can be shown of a database URL that names no backend: its scheme
/// if it has one (`mysql`), or nothing of it at all, since a keyword
/// string (`host=… password=…`) or a typo may hold a password.
fn scheme_of(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.bytes().all(|byte| {
                    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.')
                }) =>
        {
            format!("{scheme:?}")
        }
        _ => "something that is not a URL".to_owned(),
    }
}

/// `bidask.db` → `bidask.db.{suffix}`: the files kept beside a database.
pub fn beside(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (the server's group-commit writer has a
    /// store of its own).
    pub max_connections: u32,
    /// How long a caller waits for a connection before the store reports
    /// itself unavailable. Short, so requests fail fast while the database
    /// is down instead of piling up.
    pub acquire_timeout: Duration,
    /// How long to wait for the writer's lock (PostgreSQL; see
    /// [`crate::Committer::fence`]) before reporting
    /// [`StoreError::WriterElsewhere`]: a dead server's last statement
    /// takes milliseconds, a frozen database longer.
    pub writer_lock_wait: Duration,
    /// How long a PostgreSQL connection may sit idle before it is tested
    /// with a round trip ahead of its next use, and replaced if dead: a
    /// database restarted while the server was quiet leaves every
    /// connection dead, and each would fail the request that used it.
    /// Long enough that connections in use under load never are tested,
    /// and that the writer's is not in the middle of a burst.
    pub idle_check: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(2),
            writer_lock_wait: Duration::from_secs(30),
            idle_check: Duration::from_secs(2),
        }
    }
}

/// A pool of connections to one database, PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// PostgreSQL's native driver, for the group commit only: it binds
    /// whole columns as arrays, which the `Any` driver cannot (see
    /// [`crate::batch`]). Lazy, so a store that never commits never
    /// connects through it.
    pub(crate) postgres: Option<PgPool>,
    backend: Backend,
    pub(crate) writer_lock_wait: Duration,
    /// A SQLite database opened read-only (`mode=ro`), which takes no
    /// writer's lock: it would keep the real writer out.
    pub(crate) read_only: bool,
    /// Where the database is, for errors: host, port and database name, or
    /// the SQLite file; never a user or password.
    target: String,
    /// See [`StoreOptions::idle_check`]; the writer's committer reads it.
    pub(crate) idle_check: Duration,
    /// Sessions a read-only database may have left so; see
    /// [`crate::read_only`].
    read_only_sessions: ReadOnlySessions,
}

/// SQLite's primary result code for a write to a database opened
/// read-only.
const SQLITE_READONLY: u32 = 8;

/// What every SQLite connection is set to. WAL lets readers run beside
/// the one writer; synchronous=FULL makes a commit durable when it
/// returns, which is what a 201 promises.
async fn prepare_sqlite(connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
    connection.execute("PRAGMA journal_mode = WAL").await?;
    connection.execute("PRAGMA synchronous = FULL").await?;
    connection.execute("PRAGMA foreign_keys = ON").await?;
    connection.execute("PRAGMA busy_timeout = 5000").await?;
    Ok(())
}

impl Store {
    /// Connects to `url`; a SQLite file is created if it does not exist.
    ///
    /// Connecting is lazy: a database that is down makes the first query
    /// fail with [`StoreError::Unavailable`] rather than this call. The
    /// server calls [`Store::reach`] at start, and stops, saying why, if
    /// the database cannot be reached; one that goes away later makes
    /// requests fail with 503 until it is back.
    pub fn connect_lazy(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| StoreError::InvalidUrl(scheme_of(url)))?;
        if backend == Backend::Postgres {
            check_postgres_parameters(url)?;
        }
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite => {
                create_owner_only(url);
                with_sqlite_mode(url, "rwc")
            }
            Backend::Postgres => url.to_owned(),
        };
        // sqlx tests a connection with a round trip on checkout unless told
        // not to, and again when it is returned. One is enough: a
        // connection that died in between fails its query, which the
        // caller sees as `Unavailable` (503), and the test on return
        // discards it. Only one idle for a while is tested before use
        // (`idle_check`); SQLite's, in-process, cannot die that way.
        let idle_check = options.idle_check;
        let read_only_sessions = ReadOnlySessions::new();
        let suspects = read_only_sessions.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(move |connection, metadata| {
                let suspect = suspects.may_hold(metadata.age);
                Box::pin(async move {
                    if suspect {
                        // Closed; the pool opens another.
                        return Ok(false);
                    }
                    if backend == Backend::Sqlite || metadata.idle_for < idle_check {
                        return Ok(true);
                    }
                    // An error closes the connection, logged, and the
                    // pool opens another.
                    sqlx::Connection::ping(connection).await?;
                    Ok(true)
                })
            })
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        prepare_sqlite(connection).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy(&url)
            .map_err(StoreError::from)?;
        let postgres = match backend {
            Backend::Postgres => Some(
                PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(false)
                    .connect_lazy(&url)
                    .map_err(StoreError::from)?,
            ),
            Backend::Sqlite => None,
        };
        let target = match &postgres {
            Some(postgres) => {
                let options = postgres.connect_options();
                let place = match options.get_socket() {
                    Some(socket) => format!("the socket in {}", socket.display()),
                    None => format!("{}:{}", options.get_host(), options.get_port()),
                };
                match options.get_database() {
                    Some(database) => format!("PostgreSQL at {place}, database {database:?}"),
                    None => format!("PostgreSQL at {place}"),
                }
            }
            None => match sqlite_file(&url) {
                Some(file) => format!("the SQLite file {}", file.display()),
                None => "an in-memory SQLite database".to_owned(),
            },
        };
        Ok(Self {
            pool,
            postgres,
            backend,
            writer_lock_wait: options.writer_lock_wait,
            read_only: SqliteUrl::parse(&url).is_some_and(|parsed| parsed.read_only),
            target,
            idle_check: options.idle_check,
            read_only_sessions,
        })
    }

    /// A failed write's error, noting first whether a read-only session
    /// refused it, so that the pool replaces its sessions of that time.
    pub(crate) fn write_error(&self, error: sqlx::Error) -> StoreError {
        self.read_only_sessions.note(&error);
        error.into()
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The file SQLite opened as the main database, as SQLite names it
    /// (its URL may spell it otherwise: percent-escapes, a relative path,
    /// a link), with links resolved; `None` for an in-memory database or
    /// PostgreSQL.
    pub(crate) async fn database_file(&self) -> Result<Option<PathBuf>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let rows = sqlx::query("PRAGMA database_list")
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let name: String = row.try_get("name")?;
            let file: String = row.try_get("file")?;
            if name == "main" && !file.is_empty() {
                let path = PathBuf::from(file);
                return Ok(Some(std::fs::canonicalize(&path).unwrap_or(path)));
            }
        }
        Ok(None)
    }

    /// The migrations of this backend, as this build embeds them.
    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        }
    }

    /// Whether some of this build's migrations have not run on this
    /// database (all of them, on a database that has none); the check
    /// itself writes nothing. On PostgreSQL the record is looked for
    /// where sqlx keeps it, in the schema it creates tables in.
    pub async fn has_pending_migrations(&self) -> Result<bool, StoreError> {
        let recorded = match self.backend {
            Backend::Postgres => {
                "SELECT COUNT(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'"
            }
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
                 AND name = '_sqlx_migrations'"
            }
        };
        let (tables,): (i64,) = sqlx::query_as(recorded).fetch_one(&self.pool).await?;
        if tables == 0 {
            return Ok(true);
        }
        let applied: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?;
        Ok(self
            .migrator()
            .iter()
            .any(|migration| !applied.contains(&(migration.version,))))
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let error = match self.migrator().run(&self.pool).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::VersionMissing(version)) => {
                return Err(StoreError::NewerSchema(version));
            }
            Err(error) => error,
        };
        // The one failure old data is known to cause, named with what to
        // do: the database's own message names only an index. Any other
        // failure is told as it is.
        let folding_refused = match &error {
            MigrateError::ExecuteMigration(sqlx::Error::Database(refused), version)
                if refused.is_unique_violation()
                    && (*version == USERNAMES_FOLDED
                        || (*version == USERNAMES_FOLDED_AS_ASCII
                            && self.backend == Backend::Postgres)) =>
            {
                Some(*version)
            }
            _ => None,
        };
        if let Some(migration) = folding_refused
            && let Ok(clashes) = self.names_differing_only_in_case().await
            && !clashes.is_empty()
        {
            return Err(StoreError::UsernamesDifferOnlyInCase { migration, clashes });
        }
        Err(StoreError::Migrate(error))
    }

    /// Usernames that differ only in case, a group per folded name, as
    /// `"Ann" (id 2) and "ann" (id 3)`, at most ten groups. The folded
    /// names are found first: before migration 3 no index serves
    /// `lower(username)`, and joining every user to every other would be
    /// quadratic on SQLite.
    async fn names_differing_only_in_case(&self) -> Result<Vec<String>, StoreError> {
        let fold = folded(self.backend, "username");
        let rows: Vec<(String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT clash.folded, users.username, users.id FROM users JOIN \
             (SELECT {fold} AS folded FROM users GROUP BY {fold} \
              HAVING COUNT(*) > 1 ORDER BY {fold} LIMIT 10) AS clash \
             ON {users_fold} = clash.folded ORDER BY clash.folded, users.id",
            users_fold = folded(self.backend, "users.username"),
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for (folded, username, id) in rows {
            let name = format!("{username:?} (id {id})");
            match groups.last_mut() {
                Some((last, names)) if *last == folded => names.push(name),
                _ => groups.push((folded, vec![name])),
            }
        }
        Ok(groups
            .into_iter()
            // Each group holds two names at least (`HAVING`).
            .map(|(_, mut names)| {
                let last = names.pop().unwrap_or_default();
                format!("{} and {last}", names.join(", "))
            })
            .collect())
    }

    /// Refuses a SQLite file this process may only read: SQLite opens a
    /// file it cannot write (another user's, or on a read-only mount)
    /// read-only without a word, and the server started, said it was
    /// ready, and refused every command with 503. A write that changes
    /// nothing, the header's `user_version` set to what it is (no table
    /// is needed, so it can come before the migrations, which would fail
    /// with less to say), tells at start instead. (A URL that asks for
    /// read-only is refused by name before this.)
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite || self.read_only {
            return Ok(());
        }
        let mut connection = self.pool.acquire().await?;
        let (version,): (i64,) = sqlx::query_as("PRAGMA user_version")
            .fetch_one(&mut *connection)
            .await?;
        match sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {version}"
        )))
        .execute(&mut *connection)
        .await
        {
            Err(sqlx::Error::Database(error))
                if error
                    .code()
                    .and_then(|code| code.parse::<u32>().ok())
                    .is_some_and(|code| code & 0xff == SQLITE_READONLY) =>
            {
                Err(StoreError::ReadOnly {
                    target: self.target.clone(),
                    reason: error.message().to_owned(),
                })
            }
            result => result.map(drop).map_err(StoreError::from),
        }
    }

    /// Opens one connection, to say why it cannot be made when it cannot
    /// (refused, unknown role, no such file): a pool only says that it
    /// timed out waiting. Start-up calls this first. On PostgreSQL the
    /// connection is made outside the pool, within the pool's wait, and
    /// closed.
    pub async fn reach(&self) -> Result<(), StoreError> {
        let Some(postgres) = &self.postgres else {
            // Outside the pool too: a file that is not a database fails
            // the pool's set-up of each connection, which the pool retries
            // until its wait is over, and then says only that.
            let unreachable = |source| StoreError::Unreachable {
                target: self.target.clone(),
                source,
            };
            let mut connection =
                <AnyConnection as sqlx::Connection>::connect_with(&self.pool.connect_options())
                    .await
                    .map_err(unreachable)?;
            let prepared = prepare_sqlite(&mut connection).await;
            let _ = sqlx::Connection::close(connection).await;
            return prepared.map_err(unreachable);
        };
        let options = postgres.connect_options();
        let wait = postgres.options().get_acquire_timeout();
        let unreachable = |source| StoreError::Unreachable {
            target: self.target.clone(),
            source,
        };
        let connection = tokio::time::timeout(
            wait,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| {
            unreachable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", wait.as_secs_f64()),
            )))
        })?
        .map_err(unreachable)?;
        let _ = sqlx::Connection::close(connection).await;
        Ok(())
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; queries after this fail.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(postgres) = &self.postgres {
            postgres.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{
        SqliteUrl, Store, StoreError, StoreOptions, check_postgres_parameters, sqlite_file,
        with_sqlite_mode,
    };

    #[test]
    fn sqlite_urls_are_read_as_sqlx_reads_them() {
        let file = |url: &str| sqlite_file(url);
        assert_eq!(file("sqlite:bidask.db"), Some(PathBuf::from("bidask.db")));
        assert_eq!(
            file("sqlite:///tmp/x.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(file("sqlite://my%20db.db"), Some(PathBuf::from("my db.db")));
        assert_eq!(
            file("sqlite:/a/mode=x/b.db"),
            Some(PathBuf::from("/a/mode=x/b.db"))
        );
        for not_a_file in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x.db?mode=memory&cache=shared",
            "sqlite://x.db?mode=memory&mode=rwc",
            "sqlite:",
            "sqlite://",
            "sqlite://?mode=rwc",
            "postgres://host/db",
        ] {
            assert_eq!(file(not_a_file), None, "{not_a_file}");
        }
        let read_only = |url: &str| SqliteUrl::parse(url).is_some_and(|url| url.read_only);
        assert!(read_only("sqlite:x.db?mode=ro"));
        assert!(read_only("sqlite:x.db?immutable=1"));
        assert!(read_only("sqlite:x.db?mode=rwc&mode=ro"));
        assert!(read_only("sqlite:x.db?mode=ro&mode=rw"), "a mode only adds");
        assert!(
            !read_only("sqlite:x.db?immutable=1&immutable=0"),
            "the last counts"
        );
        assert!(!read_only("sqlite:/srv/mode=ro/x.db"), "a directory's name");
        let creates = |url: &str| SqliteUrl::parse(url).is_some_and(|url| url.creates);
        assert!(creates("sqlite:x.db"));
        assert!(creates("sqlite:x.db?mode=rwc"));
        assert!(creates("sqlite:x.db?cache=shared"));
        for opens_only in [
            "sqlite:x.db?mode=rw",
            "sqlite:x.db?mode=ro",
            "sqlite:x.db?mode=rwc&mode=ro",
            "sqlite:x.db?mode=rwc&immutable=1",
            "sqlite::memory:",
            "sqlite:",
        ] {
            assert!(!creates(opens_only), "{opens_only}");
        }
        assert_eq!(
            with_sqlite_mode("sqlite:/srv/mode=ro/x.db", "rwc"),
            "sqlite:/srv/mode=ro/x.db?mode=rwc"
        );
        assert_eq!(
            with_sqlite_mode("sqlite:x.db?cache=shared", "ro"),
            "sqlite:x.db?cache=shared&mode=ro"
        );
        assert_eq!(
            with_sqlite_mode("sqlite:x.db?mode=rw", "rwc"),
            "sqlite:x.db?mode=rw"
        );
        assert_eq!(
            with_sqlite_mode("sqlite::memory:", "rwc"),
            "sqlite::memory:"
        );
    }

    /// Why `url` is refused before any connection is made.
    fn refusal(url: &str) -> String {
        Store::connect_lazy(url, &StoreOptions::default())
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default()
    }

    /// A URL that names no backend is refused by its scheme alone: the
    /// rest, a keyword string's above all, may hold a password.
    #[test]
    fn an_unknown_url_never_shows_its_password() {
        let keywords = refusal("host=db port=5432 user=ann password=secret123 dbname=x");
        assert!(keywords.contains("not a URL"), "{keywords}");
        let mysql = refusal("mysql://ann:secret123@db/x");
        assert!(mysql.contains("\"mysql\""), "{mysql}");
        for message in [keywords, mysql] {
            assert!(!message.contains("secret123"), "{message}");
        }
    }

    /// A parameter the driver would ignore is refused by its key, and its
    /// value never shown; the known ones, `options[…]` included, pass.
    #[test]
    fn an_unknown_postgres_parameter_is_refused_by_name() {
        let misspelt = refusal("postgres://ann@db/x?sslmode=require&pasword=secret123");
        assert!(misspelt.contains("\"pasword\""), "{misspelt}");
        assert!(!misspelt.contains("secret123"), "{misspelt}");
        assert!(matches!(
            Store::connect_lazy("postgres://db/x?sslpassword=k", &StoreOptions::default()),
            Err(StoreError::UnknownParameter(key)) if key == "sslpassword"
        ));
        let known = "postgres://ann@db/x?sslmode=verify-full&sslrootcert=/dev/null\
                     &application_name=bidask&options[statement_timeout]=5s#frag";
        assert!(check_postgres_parameters(known).is_ok());
        assert!(check_postgres_parameters("postgres://ann@db/x?").is_ok());
    }

    /// A certificate or key file that cannot be read is refused before
    /// any connection, by parameter and path (percent-decoded); sqlx
    /// would read it only when connecting, and its error names no file.
    #[test]
    fn an_unreadable_certificate_file_is_named() {
        let missing =
            refusal("postgres://ann@db/x?sslmode=verify-full&sslrootcert=/no%20such/ca.pem");
        assert!(
            missing.contains("sslrootcert") && missing.contains("/no such/ca.pem"),
            "{missing}"
        );
        let key = refusal("postgres://ann@db/x?sslcert=/dev/null&sslkey=/no/such/key.pem");
        assert!(
            key.contains("sslkey") && key.contains("/no/such/key.pem"),
            "{key}"
        );
        let directory = refusal("postgres://ann@db/x?sslrootcert=/tmp");
        assert!(directory.contains("cannot read /tmp"), "{directory}");
        let inline = "postgres://ann@db/x?sslrootcert=-----BEGIN%20CERTIFICATE-----%0A-----END%20CERTIFICATE-----";
        assert!(check_postgres_parameters(inline).is_ok());
        let plain = "postgres://ann@db/x?sslmode=DISABLE&sslrootcert=/no/such/ca.pem";
        assert!(check_postgres_parameters(plain).is_ok(), "never read");
    }
}
