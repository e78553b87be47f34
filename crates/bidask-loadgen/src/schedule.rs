//! The open-loop timetable of `orders --rate`: request `k` is due at
//! `start + k / rate`, whoever is free to send it.
//!
//! A closed loop (each trader sends when its last answer arrives) measures
//! latency at whatever rate the server allows, and a slow server slows the
//! load down with it, so its slow moments are sampled less often. A fixed
//! timetable offers the same load whatever the answers do, and each
//! request's latency counts from when it was due, not from when a trader got
//! round to it: a queue in front of the server is counted, not hidden.

use std::time::{Duration, Instant};

/// Request `k` of a run offered at a fixed rate is due at `start + k / rate`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: u32,
    length: Duration,
}

impl Schedule {
    /// A timetable of `rate` requests a second for `length` from `start`.
    pub fn new(start: Instant, rate: u32, length: Duration) -> Self {
        Self {
            start,
            rate: rate.max(1),
            length,
        }
    }

    /// When request `index` is due, or `None` when that is past the end.
    pub fn due(&self, index: u64) -> Option<Instant> {
        let offset = self.offset(index)?;
        (offset < self.length).then(|| self.start + offset)
    }

    /// How many requests fall inside the timetable: the load offered.
    pub fn slots(&self) -> u64 {
        let nanos = self.length.as_nanos().saturating_mul(u128::from(self.rate));
        u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }

    /// The rate it offers, per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    fn offset(&self, index: u64) -> Option<Duration> {
        let nanos = u128::from(index) * 1_000_000_000 / u128::from(self.rate);
        Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_due_evenly_from_the_start() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 4, Duration::from_secs(1));
        let due: Vec<Option<Duration>> = (0..6)
            .map(|index| schedule.due(index).map(|at| at - start))
            .collect();
        assert_eq!(
            due,
            vec![
                Some(Duration::ZERO),
                Some(Duration::from_millis(250)),
                Some(Duration::from_millis(500)),
                Some(Duration::from_millis(750)),
                None,
                None,
            ]
        );
        assert_eq!(schedule.slots(), 4);
    }

    #[test]
    fn the_offered_count_matches_the_slots_that_are_due() {
        let start = Instant::now();
        for (rate, millis) in [(1, 1), (3, 1_000), (7, 1_001), (20_000, 2_500), (999, 333)] {
            let schedule = Schedule::new(start, rate, Duration::from_millis(millis));
            let slots = schedule.slots();
            assert!(schedule.due(slots.saturating_sub(1)).is_some(), "{rate}/s");
            assert!(schedule.due(slots).is_none(), "{rate}/s for {millis} ms");
        }
    }

    #[test]
    fn huge_indices_are_past_the_end_not_a_panic() {
        let schedule = Schedule::new(Instant::now(), 1, Duration::from_secs(10));
        assert_eq!(schedule.due(u64::MAX), None);
    }
}
