//! A copy of the embedded SQLite database, taken while a server runs.
//!
//! Copying `bidask.db` with `cp` while a server writes is not a backup:
//! the last commits live in `bidask.db-wal` until a checkpoint moves them
//! into the file, and two files copied at two moments can disagree.
//! `VACUUM INTO` reads one snapshot, as every reader beside the writer
//! does in WAL mode, and writes it out as a whole database of its own.
//! (On PostgreSQL, `pg_dump` does the same; it needs nothing from here.)

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use crate::error::StoreError;
use crate::pool::{Backend, Store, beside};

impl Store {
    /// Writes a consistent copy of the SQLite database to `destination`,
    /// which must not exist. When this returns, the copy is whole and on
    /// disk; when it fails, `destination` was not created.
    ///
    /// SQLite writes the copy without syncing it, so it is written under
    /// another name first, synced, and only then linked to `destination`.
    pub async fn back_up(&self, destination: &Path) -> Result<(), StoreError> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::BackupUnsupported);
        }
        let failed = |source: std::io::Error| StoreError::Backup {
            path: destination.to_owned(),
            source,
        };
        if destination.symlink_metadata().is_ok() {
            return Err(failed(ErrorKind::AlreadyExists.into()));
        }
        let partial = beside(destination, &format!("partial-{}", std::process::id()));
        let name = partial.to_str().ok_or_else(|| {
            failed(std::io::Error::new(
                ErrorKind::InvalidInput,
                "the path is not UTF-8",
            ))
        })?;
        // A leftover of an earlier attempt by a process with this pid.
        let _ = std::fs::remove_file(&partial);
        // SQLite writes into an empty file as into none; creating it here
        // says plainly when the directory is missing or not writable.
        File::create_new(&partial).map_err(failed)?;
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(name)
            .execute(&self.pool)
            .await;
        let finished = match copied {
            Ok(_) => publish(&partial, destination).map_err(failed),
            Err(error) => Err(StoreError::from(error)),
        };
        if finished.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        finished
    }
}

/// Syncs the copy at `partial` and gives it its name, without replacing
/// a file that appeared there meanwhile.
fn publish(partial: &Path, destination: &Path) -> std::io::Result<()> {
    File::open(partial)?.sync_all()?;
    std::fs::hard_link(partial, destination)?;
    std::fs::remove_file(partial)?;
    let directory = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}
