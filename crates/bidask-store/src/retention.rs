//! What the store forgets with age: idempotency keys after their day, and
//! feed events past the feed's retention.
//!
//! The feed table is the log that a resume (`since_seq`) reads, and it
//! would otherwise grow by every event ever published. Pruning it keeps
//! two promises of the contract:
//! - every channel keeps its newest event, whatever its age, because that
//!   row's `seq` is where numbering continues after a restart;
//! - only the oldest events of a channel go, so what is left is still
//!   gap-free, and a resume from before it is answered with a `reset`
//!   snapshot instead of events with a hole in them.

use sqlx::Row;

use crate::error::StoreError;
use crate::pool::Store;

/// Rows one `DELETE` removes at most: on SQLite each statement holds the
/// database's one write lock, which the group commit waits behind.
const DELETE_CHUNK: i64 = 2_000;

/// What one pass over the feed removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunedFeed {
    /// Channels that lost events.
    pub channels: u64,
    /// Events removed.
    pub events: u64,
}

impl Store {
    /// Forgets idempotency keys made before `before`; returns how many.
    ///
    /// A chunk at a time, as the feed is pruned: after a day of keyed
    /// orders, or a start after a long stop, one `DELETE` of them all held
    /// SQLite's write lock for seconds (7.8 s for a million), and every
    /// commit waiting behind it failed.
    ///
    /// A chunk is the oldest keys up to the time of the `DELETE_CHUNK`th
    /// (a few more when keys share that time, as a batch's do), found and
    /// removed through the index on their age alone. Selecting the keys
    /// themselves (`(user_id, key) IN (…)`) made SQLite look each one up
    /// by user, reading every key of a user with many: 0.6 s of CPU per
    /// chunk when one user held a million, against 4 ms this way (the
    /// sqlite3 3.40 shell, on this schema).
    pub async fn prune_idempotency(&self, before: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let chunk = sqlx::query(
                "DELETE FROM idempotency_keys WHERE created_at <= \
                 (SELECT max(created_at) FROM (SELECT created_at FROM idempotency_keys \
                  WHERE created_at < $1 ORDER BY created_at LIMIT $2) AS oldest)",
            )
            .bind(before)
            .bind(DELETE_CHUNK)
            .execute(&self.pool)
            .await
            .map_err(|error| self.write_error(error))?
            .rows_affected();
            removed += chunk;
            if chunk < DELETE_CHUNK.unsigned_abs() {
                return Ok(removed);
            }
        }
    }

    /// Removes the feed events made before `before`, except each channel's
    /// newest.
    ///
    /// Channels are visited one index probe at a time, in name order, so
    /// a pass reads the first event of each channel and then only the rows
    /// it removes; no statement scans the table. Events of a channel are
    /// taken to be made in `seq` order: a clock that stepped back can only
    /// make a pass keep more, never remove an event made after `before`.
    pub async fn prune_feed(&self, before: i64) -> Result<PrunedFeed, StoreError> {
        let mut pruned = PrunedFeed::default();
        // Channel names are never empty, so every one sorts after "".
        let mut after = String::new();
        loop {
            let Some(row) = sqlx::query(
                "SELECT channel, seq, created_at FROM feed_events WHERE channel > $1 \
                 ORDER BY channel, seq LIMIT 1",
            )
            .bind(after)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(pruned);
            };
            let channel: String = row.try_get(0)?;
            let first: i64 = row.try_get(1)?;
            let created_at: i64 = row.try_get(2)?;
            if created_at < before {
                let removed = self.prune_channel(&channel, first, before).await?;
                if removed > 0 {
                    pruned.channels += 1;
                    pruned.events += removed;
                }
            }
            after = channel;
        }
    }

    /// Removes the events of `channel` from `first` up to, not including,
    /// its first event made at or after `before`, or its newest event.
    async fn prune_channel(
        &self,
        channel: &str,
        first: i64,
        before: i64,
    ) -> Result<u64, StoreError> {
        let recent = sqlx::query(
            "SELECT seq FROM feed_events WHERE channel = $1 AND created_at >= $2 \
             ORDER BY seq LIMIT 1",
        )
        .bind(channel.to_owned())
        .bind(before)
        .fetch_optional(&self.pool)
        .await?;
        let keep = match recent {
            Some(row) => row.try_get(0)?,
            None => self.channel_seq(channel).await?,
        };
        let mut removed = 0;
        let mut from = first;
        while from < keep {
            let to = keep.min(from.saturating_add(DELETE_CHUNK));
            removed += sqlx::query(
                "DELETE FROM feed_events WHERE channel = $1 AND seq >= $2 AND seq < $3",
            )
            .bind(channel.to_owned())
            .bind(from)
            .bind(to)
            .execute(&self.pool)
            .await
            .map_err(|error| self.write_error(error))?
            .rows_affected();
            from = to;
        }
        Ok(removed)
    }
}
