//! A copy of the embedded SQLite database, taken while a server runs.
//!
//! Copying `bidask.db` with `cp` while a server writes is not a backup:
//! the last commits live in `bidask.db-wal` until a checkpoint moves them
//! into the file, and two files copied at two moments can disagree.
//! `VACUUM INTO` reads one snapshot, as every reader beside the writer
//! does in WAL mode, and writes it out as a whole database of its own.
//! (On PostgreSQL, `pg_dump` does the same; it needs nothing from here.)
//!
//! A backup holds what the database does, password hashes among it, so
//! its files are its owner's alone; and it is either whole and on disk
//! under its name, or not there: each file is written under a name of its
//! own first, synced, and then linked to its name, which never replaces a
//! file that is there.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::error::StoreError;
use crate::pool::{Backend, Store, beside};

impl Store {
    /// Writes a consistent copy of the SQLite database to `destination`,
    /// which must not exist. When this returns, the copy is whole, has
    /// passed SQLite's `quick_check` and is on disk. When it fails,
    /// `destination` was not created, unless the last step, syncing the
    /// directory that now holds it, is what failed (the error says so).
    pub async fn back_up(&self, destination: &Path) -> Result<(), StoreError> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::BackupUnsupported);
        }
        let failed = |source: std::io::Error| StoreError::Backup {
            path: destination.to_owned(),
            source,
        };
        // SQLite takes a name that starts with `file:` for a URI, which
        // would put the copy somewhere else; an absolute path never does.
        let destination = std::path::absolute(destination).map_err(failed)?;
        if destination.symlink_metadata().is_ok() {
            return Err(failed(ErrorKind::AlreadyExists.into()));
        }
        let partial = partial(&destination);
        let name = partial.to_str().ok_or_else(|| {
            failed(std::io::Error::new(
                ErrorKind::InvalidInput,
                "the path is not UTF-8",
            ))
        })?;
        // SQLite writes into an empty file as into none, keeping its mode;
        // creating it here also says plainly when the directory is missing
        // or not writable.
        create_private(&partial).map_err(failed)?;
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(name)
            .execute(&self.pool)
            .await;
        let checked = match copied {
            Ok(_) => check(&partial).await,
            Err(error) => Err(StoreError::from(error)),
        };
        if let Err(error) = checked {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
        publish(&partial, &destination).map_err(failed)
    }
}

/// Writes `contents` to `destination`, a new file readable by its owner
/// only, as [`Store::back_up`] writes the database: whole and synced under
/// that name, or not there.
pub fn write_new(destination: &Path, contents: &[u8]) -> std::io::Result<()> {
    let partial = partial(destination);
    let written = create_private(&partial).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    publish(&partial, destination)
}

/// Where a file is written before it gets its name: beside it, named for
/// this process, so that two backups to one place do not meet.
fn partial(destination: &Path) -> PathBuf {
    beside(destination, &format!("partial-{}", std::process::id()))
}

/// A new, empty file only its owner may read. A leftover of an earlier
/// attempt by a process with this pid is replaced.
fn create_private(path: &Path) -> std::io::Result<File> {
    let _ = std::fs::remove_file(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Opens the copy on its own, read-only, and has SQLite check it: a copy
/// nobody can restore is no backup.
async fn check(copy: &Path) -> Result<(), StoreError> {
    let mut connection = SqliteConnectOptions::new()
        .filename(copy)
        .read_only(true)
        .connect()
        .await?;
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut connection)
        .await?;
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master")
        .fetch_one(&mut connection)
        .await?;
    if verdict == "ok" && tables > 0 {
        return Ok(());
    }
    Err(StoreError::Backup {
        path: copy.to_owned(),
        source: std::io::Error::other(format!(
            "the copy failed SQLite's check ({verdict}, {tables} schema entries)"
        )),
    })
}

/// Syncs the file at `partial` and gives it its name, without replacing a
/// file that appeared there meanwhile, then makes the name durable.
fn publish(partial: &Path, destination: &Path) -> std::io::Result<()> {
    let linked = File::open(partial)
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::hard_link(partial, destination));
    // Linked or not, the other name goes; it was only ever this one's.
    let _ = std::fs::remove_file(partial);
    linked?;
    let directory = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "{} is written, but its directory could not be synced: {error}",
                    destination.display()
                ),
            )
        })
}
