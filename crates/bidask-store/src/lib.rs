//! Persistence for bidask: the database is the log.
//!
//! The server keeps every book in memory and writes what its matching
//! actors decided here, in batches: a [`Committer`] writes one [`Batch`]
//! (orders, matches, feed events, notifications, new products, idempotent
//! responses from many requests) in one transaction, so a request's reply
//! can wait for exactly the commit that made it durable. On start the books
//! are rebuilt from [`Store::open_orders`] and the feed's sequence numbers
//! continue from [`Store::last_seqs`].
//!
//! Read in this order:
//! - [`pool`]: connecting to PostgreSQL or the embedded SQLite file, and
//!   running the migrations of the matching backend;
//! - [`records`]: the rows, as plain values (ids, integer ticks, microsecond
//!   times) that mean the same on both backends;
//! - [`batch`]: the group-commit write;
//! - [`committer`]: the one connection that commits, with the writer's
//!   lock and generation that keep every other writer out;
//! - [`reads`]: what the API and recovery read back;
//! - `read_only`: the sessions a read-only database leaves read-only;
//! - [`retention`]: what is forgotten with age (old feed events,
//!   idempotency keys past their day);
//! - [`backup`]: a consistent copy of the embedded database, taken while a
//!   server runs;
//! - [`error`]: what can go wrong, sorted by what a caller should do.
//!
//! Reads go through sqlx's `Any` driver with one set of SQL statements
//! (numbered `$N` parameters, which both understand). The batch write has
//! a PostgreSQL statement of its own, which binds whole columns as arrays
//! (see [`batch`]); the schema lives in `migrations/postgres` and
//! `migrations/sqlite` and differs only where the two dialects do.

pub mod backup;
pub mod batch;
pub mod committer;
pub mod error;
pub mod pool;
mod read_only;
pub mod reads;
pub mod records;
pub mod retention;

pub use batch::Batch;
pub use committer::{Committer, WRITER_LOCK};
pub use error::StoreError;
pub use pool::{Backend, SqliteUrl, Store, StoreOptions, beside, sqlite_file, with_sqlite_mode};
pub use records::{
    FeedEventRecord, IdempotencyRecord, MatchRecord, NewUser, NotificationRecord, OrderRecord,
    ProductRecord, UserRecord,
};
pub use retention::PrunedFeed;
