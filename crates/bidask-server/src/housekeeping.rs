//! Forgetting what has outlived its use, in the background.
//!
//! Two tables grow with every request and are read only for a while:
//! idempotency keys, replayed for a day, and feed events, which resumes
//! (`since_seq`) read. One task prunes both, and stops with the server so
//! that it never runs against a closed pool.

use std::time::Duration;

use bidask_store::Store;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::clock::{DAY, now_micros};

/// How often idempotency keys past their day are forgotten.
const KEYS_EVERY: Duration = Duration::from_secs(3_600);

/// The running task, stopped when dropped: a pass in progress ends
/// between two statements.
#[derive(Debug)]
pub struct Housekeeping(JoinHandle<()>);

impl Housekeeping {
    /// Starts pruning; feed events are kept for `feed_retention`, or for
    /// ever with `None`. The first pass runs at once, so a server started
    /// on a database that grew while it was down catches up.
    pub fn spawn(store: Store, feed_retention: Option<Duration>) -> Self {
        Self(tokio::spawn(async move {
            let mut keys = every(KEYS_EVERY);
            let mut feed =
                feed_retention.map(|retention| (retention, every(feed_period(retention))));
            loop {
                tokio::select! {
                    _ = keys.tick() => prune_keys(&store).await,
                    retention = tick(&mut feed) => prune_feed(&store, retention).await,
                }
            }
        }))
    }
}

impl Drop for Housekeeping {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the feed is pruned: every quarter of the retention, so an
/// event outlives it by at most a quarter, but at least hourly, so a long
/// retention's pass never has more than an hour's events to remove; at
/// least a second apart.
fn feed_period(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3_600))
}

fn every(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    // A pass that took longer than the period is not followed by a burst.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The feed's next tick and its retention; never, without one.
async fn tick(feed: &mut Option<(Duration, Interval)>) -> Duration {
    match feed {
        Some((retention, interval)) => {
            interval.tick().await;
            *retention
        }
        None => std::future::pending().await,
    }
}

async fn prune_keys(store: &Store) {
    match store.prune_idempotency(now_micros() - DAY).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "forgot old idempotency keys"),
        Err(error) => tracing::warn!(%error, "cannot prune idempotency keys"),
    }
}

async fn prune_feed(store: &Store, retention: Duration) {
    let retention_micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
    let before = now_micros().saturating_sub(retention_micros);
    let started = std::time::Instant::now();
    match store.prune_feed(before).await {
        Ok(pruned) if pruned.events == 0 => {}
        Ok(pruned) => {
            metrics::counter!("bidask_feed_events_pruned_total").increment(pruned.events);
            tracing::info!(
                events = pruned.events,
                channels = pruned.channels,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "pruned feed events past their retention"
            );
        }
        Err(error) => tracing::warn!(%error, "cannot prune feed events"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_is_pruned_four_times_per_retention_within_bounds() {
        let secs = Duration::from_secs;
        assert_eq!(feed_period(secs(2)), secs(1));
        assert_eq!(feed_period(secs(60)), secs(15));
        assert_eq!(feed_period(secs(7 * 86_400)), secs(3_600));
    }
}
