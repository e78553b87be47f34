//! How a product's actor learns that the writer failed to commit what it
//! decided, so that it rebuilds from the database before deciding more.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// How a product's actor learns that a commit of its units failed.
#[derive(Debug, Default)]
pub struct Staleness {
    /// The newest epoch whose units failed: the actor's book is stale
    /// while its epoch is not above it.
    up_to: AtomicU64,
    /// Woken on each failure, so an actor with no request to serve rebuilds
    /// now (its replica and `seq` included), not at its next request.
    failed: Notify,
    /// The epoch the actor is at, or is rebuilding into: what
    /// [`Staleness::force`] marks.
    current: AtomicU64,
}

impl Staleness {
    /// Marks everything up to `epoch` stale and wakes the actor.
    pub fn mark(&self, epoch: u64) {
        self.up_to.fetch_max(epoch, Ordering::AcqRel);
        self.failed.notify_one();
    }

    /// The newest epoch whose units failed (0 for none).
    pub fn up_to(&self) -> u64 {
        self.up_to.load(Ordering::Acquire)
    }

    /// Records the epoch the actor is at, or is about to read the database
    /// for: set before the reads, so a [`Staleness::force`] during them
    /// still leaves the result stale.
    pub fn set_current(&self, epoch: u64) {
        self.current.store(epoch, Ordering::Release);
    }

    /// Makes the actor rebuild from the database whatever its epoch, and
    /// refuses what it decided before: for a commit that landed after it
    /// last read the database.
    pub fn force(&self) {
        self.mark(self.current.load(Ordering::Acquire) + 1);
    }

    /// Returns at the next [`Staleness::mark`] (at once if one came since
    /// the last call returned).
    pub async fn marked(&self) {
        self.failed.notified().await;
    }
}
