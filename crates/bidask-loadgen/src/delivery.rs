//! What every feed client of the `fanout` scenario records into: which
//! phase the run is in, and per shard a latency histogram and the count of
//! events received.
//!
//! A histogram per client would cost hundreds of megabytes at 19,000
//! clients, and one shared histogram would put every message of every
//! client behind one lock. So clients share a few dozen shards by index:
//! each message takes its shard's lock for a few nanoseconds, and with two
//! cores two clients rarely want the same shard at once. The counts are
//! exact at every moment, which the drain at the end of a run relies on.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::LoadgenError;
use crate::report::Latencies;

/// Shards of the shared record; a power of two well above the core count.
const SHARDS: usize = 64;

/// Where a run is; the clients read it on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting, subscribing, settling: nothing is published yet.
    Setup,
    /// The measured window: events count towards the rate and the latency.
    Measuring,
    /// After the window: events still arriving count towards the latency
    /// and the delivery ratio, not the rate.
    Draining,
    /// Done; whatever arrives now is not counted.
    Stopped,
}

/// The shared record; see the module docs.
#[derive(Debug)]
pub struct Delivery {
    phase: AtomicU8,
    shards: Box<[Mutex<Received>]>,
    /// Clients subscribed and still connected, for the progress bar and
    /// the expected message count.
    pub held: AtomicUsize,
    /// Clients whose connection ended before the run did.
    pub lost: AtomicUsize,
}

/// Events received, in one shard or all of them.
#[derive(Debug, Clone)]
pub struct Received {
    /// Receipt time minus the event's `ts`, for events received while
    /// measuring or draining.
    pub latencies: Latencies,
    /// Events received during the measured window.
    pub in_window: u64,
    /// Events received while draining.
    pub late: u64,
    /// Events received before the window (none are expected).
    pub early: u64,
    /// Events without a readable `ts`, counted but not timed.
    pub untimed: u64,
}

impl Phase {
    fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Setup,
            1 => Self::Measuring,
            2 => Self::Draining,
            _ => Self::Stopped,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Setup => 0,
            Self::Measuring => 1,
            Self::Draining => 2,
            Self::Stopped => 3,
        }
    }
}

impl Delivery {
    /// An empty record in the setup phase.
    pub fn new() -> Result<Self, LoadgenError> {
        let shards = (0..SHARDS)
            .map(|_| Received::new().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            phase: AtomicU8::new(Phase::Setup.code()),
            shards: shards.into_boxed_slice(),
            held: AtomicUsize::new(0),
            lost: AtomicUsize::new(0),
        })
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        Phase::from_code(self.phase.load(Ordering::Relaxed))
    }

    /// Moves the run to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase.code(), Ordering::Relaxed);
    }

    /// Records one event received by client `client`, `latency_micros`
    /// after its `ts` (`None` when it had no readable `ts`).
    pub fn record(&self, client: usize, latency_micros: Option<i64>) {
        let phase = self.phase();
        if phase == Phase::Stopped {
            return;
        }
        let mut shard = self.shard(client);
        match phase {
            Phase::Setup => shard.early += 1,
            Phase::Measuring => shard.in_window += 1,
            Phase::Draining => shard.late += 1,
            Phase::Stopped => {}
        }
        if phase == Phase::Setup {
            return;
        }
        match latency_micros {
            // A `ts` a little ahead of this clock (the clocks are one here,
            // but reads race) counts as no delay at all.
            Some(micros) => shard
                .latencies
                .record(Duration::from_micros(u64::try_from(micros).unwrap_or(0))),
            None => shard.untimed += 1,
        }
    }

    /// Events received so far: in the window, and in window plus drain.
    pub fn received(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(window, total), shard| {
            let shard = lock(shard);
            (
                window + shard.in_window,
                total + shard.in_window + shard.late,
            )
        })
    }

    /// Every shard merged into one.
    pub fn merged(&self) -> Result<Received, LoadgenError> {
        let mut total = Received::new()?;
        for shard in &self.shards {
            let shard = lock(shard);
            total.latencies.merge(&shard.latencies)?;
            total.in_window += shard.in_window;
            total.late += shard.late;
            total.early += shard.early;
            total.untimed += shard.untimed;
        }
        Ok(total)
    }

    fn shard(&self, client: usize) -> MutexGuard<'_, Received> {
        lock(&self.shards[client % self.shards.len()])
    }
}

impl Received {
    fn new() -> Result<Self, LoadgenError> {
        Ok(Self {
            latencies: Latencies::new()?,
            in_window: 0,
            late: 0,
            early: 0,
            untimed: 0,
        })
    }
}

/// A shard's lock; a client that panicked while holding it left counts
/// that are still counts, so poisoning is ignored.
fn lock(shard: &Mutex<Received>) -> MutexGuard<'_, Received> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_by_phase_and_only_timed_ones_are_timed() {
        let Ok(delivery) = Delivery::new() else {
            panic!("histogram bounds are valid");
        };
        delivery.record(0, Some(100));
        delivery.set_phase(Phase::Measuring);
        for client in 0..200 {
            delivery.record(client, Some(1_000));
        }
        delivery.record(3, None);
        delivery.record(4, Some(-5));
        delivery.set_phase(Phase::Draining);
        delivery.record(5, Some(3_000));
        delivery.set_phase(Phase::Stopped);
        delivery.record(6, Some(9_000));
        assert_eq!(delivery.received(), (202, 203));
        let Ok(total) = delivery.merged() else {
            panic!("merging equal histograms works");
        };
        assert_eq!(
            (total.in_window, total.late, total.early, total.untimed),
            (202, 1, 1, 1)
        );
        let summary = total.latencies.summary();
        assert_eq!(summary.count, 202);
        assert!((summary.p50_ms - 1.0).abs() < 0.01, "{summary:?}");
        assert!((summary.max_ms - 3.0).abs() < 0.01, "{summary:?}");
    }
}
