//! The one writer of a database: the connection that commits batches,
//! the lock it holds for as long as it lives, and the generation that
//! tells it whether another writer came between.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::batch::{Batch, commit_postgres};
use crate::error::StoreError;
use crate::pool::Store;

/// The longest the test of a quiet connection may take before the
/// connection is given up for a new one.
const PING_WAIT: Duration = Duration::from_secs(2);

/// Writes batches on one connection that it keeps between them.
///
/// Every checkout from a sqlx pool costs a round trip to test the
/// connection and another to return it, and the writer commits hundreds of
/// batches a second one after another: on its own connection the commit
/// is the statement's one round trip. The connection is taken out of the
/// pool, since it holds the writer's lock (see [`Committer::fence`]),
/// which must end with it rather than pass to the pool's next user. A
/// connection that failed is closed and the next batch opens a fresh one,
/// which waits for the lock: for the failed one's statement to end, if
/// its server is still running it.
///
/// On SQLite the lock is an exclusive `flock` of a file beside the
/// database, held from [`Committer::fence`] until the committer goes: a
/// second server on the same file would hand out the same ids, and the
/// order upsert would merge their rows without a word. The kernel lets go
/// of it when the process ends, however it ends.
///
/// The lock alone cannot tell a writer whether it was held by someone
/// else while its connection was gone: see [`Committer::claim`].
#[derive(Debug)]
pub struct Committer {
    store: Store,
    connection: Option<PgConnection>,
    lock_file: Option<std::fs::File>,
    /// The writer generation this committer claimed, checked whenever it
    /// takes the lock again.
    generation: Option<i64>,
    /// When `connection` was last used, to test it before a batch after a
    /// quiet spell (see [`crate::StoreOptions::idle_check`]).
    last_used: Instant,
}

impl Committer {
    /// Writes `batch` in one transaction: all of it, or none of it on a
    /// refusal. After [`StoreError::Unavailable`], or when the returned
    /// future is cancelled (a timeout), the outcome is unknown: the
    /// database may have committed a transaction whose answer was lost,
    /// and SQLite runs a `COMMIT` it was sent to its end even when no one
    /// waits for it. The caller reads back what was stored; on SQLite
    /// that read queues behind such a `COMMIT` only because the writer's
    /// store has one connection.
    ///
    /// Cancelling drops the PostgreSQL connection with the future, so a
    /// statement cut off mid-way never reaches the next batch.
    pub async fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let Some(postgres) = &self.store.postgres else {
            return self.store.commit_sqlite(batch).await;
        };
        // A connection that died while the writer was idle (a database
        // restart) is found by a ping instead of by the batch, which would
        // then fail: a batch sent is one whose outcome may be unknown. Out
        // of `self` meanwhile, like the batch's connection below, so that
        // a ping cut off by the caller's timeout takes the connection with
        // it; and bounded by `PING_WAIT`, so that one that stopped
        // answering is replaced rather than waited for.
        if self.last_used.elapsed() >= self.store.idle_check
            && let Some(mut connection) = self.connection.take()
            && let Ok(Ok(())) = tokio::time::timeout(PING_WAIT, connection.ping()).await
        {
            self.connection = Some(connection);
        }
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                locked_connection(postgres, self.store.writer_lock_wait, self.generation).await?
            }
        };
        let result = commit_postgres(&mut connection, batch).await;
        self.last_used = Instant::now();
        // A refused statement leaves the connection usable, and it holds
        // the writer's lock, which a dropped one would hand to a server
        // waiting for it; a broken one is not kept. Writes to a database
        // that has become read-only count as broken (25006 is an outage),
        // since its session stays read-only while a new connection finds
        // the writable primary once it is back.
        if !result.as_ref().is_err_and(StoreError::is_unavailable) {
            self.connection = Some(connection);
        }
        result
    }

    /// Takes the writer's lock, for as long as this committer lives; a
    /// server takes it before it reads anything it rebuilds from (its
    /// catalog, books, ids and feed counters).
    ///
    /// A killed server's connection closes, but PostgreSQL finishes the
    /// statement it was running, and may commit it, before its backend
    /// notices and exits: a restart that read the largest order id first
    /// would hand it out again, and an order written as an upsert would
    /// silently merge into the old one. The lock goes with that backend,
    /// so waiting for it waits for the commit. A second server on the same
    /// database waits in vain and refuses to start
    /// ([`StoreError::WriterElsewhere`]). On SQLite, whose writes end with
    /// the process that made them, the lock file is taken at once or not
    /// at all.
    pub async fn fence(&mut self) -> Result<(), StoreError> {
        let Some(postgres) = &self.store.postgres else {
            return self.lock_file().await;
        };
        if self.connection.is_none() {
            self.connection = Some(
                locked_connection(postgres, self.store.writer_lock_wait, self.generation).await?,
            );
            self.last_used = Instant::now();
        }
        Ok(())
    }

    /// Makes this committer the database's writer from now on, once the
    /// migrations ran: it counts up the stored writer generation, on the
    /// connection that has held the lock since [`Committer::fence`], and
    /// remembers it.
    ///
    /// A connection can be lost without the server stopping (a restarted
    /// database, an operator's `pg_terminate_backend`, a proxy's idle
    /// cut), and with it the lock. Another server may then start, claim,
    /// write and stop before this one takes the lock again, and this one's
    /// ids and books no longer match the database: its next order would
    /// upsert over the other's order with the same id. So every later
    /// taking of the lock compares the stored generation with the claimed
    /// one, and refuses with [`StoreError::WriterReplaced`] if it moved.
    /// On SQLite the lock file is held for the life of the process, so
    /// there is nothing to claim.
    pub async fn claim(&mut self) -> Result<(), StoreError> {
        if self.store.postgres.is_none() {
            return Ok(());
        }
        // Taken out so that a connection that fails is not kept.
        let Some(mut connection) = self.connection.take() else {
            return Err(StoreError::LockLost);
        };
        let claimed: Option<(i64,)> = sqlx::query_as(
            "UPDATE writer_generation SET generation = generation + 1 RETURNING generation",
        )
        .fetch_optional(&mut connection)
        .await?;
        let (generation,) = claimed.ok_or_else(missing_generation)?;
        self.generation = Some(generation);
        self.connection = Some(connection);
        Ok(())
    }

    /// Closes the connection, and with it the writer's lock.
    pub async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close().await;
        }
        self.lock_file = None;
    }

    /// Locks the SQLite database's lock file, unless this committer holds
    /// it already or the database is in memory or read-only. The file is
    /// named after the database file SQLite opened, so two URLs that
    /// spell one file differently still meet at one lock.
    async fn lock_file(&mut self) -> Result<(), StoreError> {
        if self.lock_file.is_some() || self.store.read_only {
            return Ok(());
        }
        let Some(database) = self.store.database_file().await? else {
            return Ok(());
        };
        let path = &crate::pool::beside(&database, "lock");
        let failed = |source| StoreError::LockFile {
            path: path.clone(),
            source,
        };
        // Reading is enough to lock a file, and one another account made
        // (an operator's `sudo bidask migrate`) may be only readable here.
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(failed)?
            }
            Err(error) => return Err(failed(error)),
        };
        match file.try_lock() {
            Ok(()) => {
                self.lock_file = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::WriterElsewhere),
            Err(std::fs::TryLockError::Error(error)) => Err(failed(error)),
        }
    }
}

impl Store {
    /// The group-commit writer's handle, see [`Committer`].
    pub fn committer(&self) -> Committer {
        Committer {
            store: self.clone(),
            connection: None,
            lock_file: None,
            generation: None,
            last_used: Instant::now(),
        }
    }
}

/// The advisory lock of the connection that commits batches (the bytes
/// of "bidask", and 1). Advisory locks are per database, so servers on
/// different databases of one cluster do not meet. Public so that an
/// operator's script, or a test standing in for a second server, can
/// tell who holds it (`pg_locks.objid`) or take it.
pub const WRITER_LOCK: i64 = 0x6269_6461_736b_0001;

/// A connection of its own, out of `postgres`'s pool (so the lock ends
/// with it), holding the writer's lock: tried every 50 ms for up to
/// `wait`. With a `claimed` generation, none if the stored one moved on.
async fn locked_connection(
    postgres: &PgPool,
    wait: Duration,
    claimed: Option<i64>,
) -> Result<PgConnection, StoreError> {
    let mut connection = postgres.acquire().await?.detach();
    // A writer whose host vanished without closing its connection (a
    // power cut, a NAT that forgot the flow) would leave its backend, and
    // with it the lock, until the operating system's keepalive gave up:
    // over two hours on Linux, in which no server could write. With these
    // the backend finds its client gone within about 25 s (15 s with
    // unanswered data), inside the next writer's wait.
    sqlx::raw_sql(
        "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
         SET tcp_keepalives_count = 3; SET tcp_user_timeout = 15000",
    )
    .execute(&mut connection)
    .await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (held,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_LOCK)
            .fetch_one(&mut connection)
            .await?;
        // Read after the lock is held, so that no claim comes between the
        // check and this writer's next commit; and also while another
        // session holds it, so that a replaced writer learns so then
        // rather than waiting out the lock. Dropping the connection lets
        // go of the lock.
        if let Some(claimed) = claimed {
            let stored: Option<(i64,)> = sqlx::query_as("SELECT generation FROM writer_generation")
                .fetch_optional(&mut connection)
                .await?;
            let (stored,) = stored.ok_or_else(missing_generation)?;
            if stored != claimed {
                return Err(StoreError::WriterReplaced);
            }
        }
        if held {
            return Ok(connection);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::WriterElsewhere);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The migration inserts the one row and nothing deletes it: without it
/// no writer can tell whether it is still the writer.
fn missing_generation() -> StoreError {
    StoreError::Corrupt("the writer_generation table has no row".to_owned())
}
