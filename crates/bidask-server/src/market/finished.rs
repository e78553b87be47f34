//! Orders that recently left the book, as committed.
//!
//! Traders cancel orders the market has just filled: under load about a
//! third of all cancels arrive too late. Without this memory each of them
//! costs a database read to tell 409 (the caller's order, already done)
//! from 404 (not the caller's). The writer records every order it commits
//! in a final state; the most recent ones per shard are kept, older ones
//! fall back to the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Shards, so that the writer and the handlers rarely share a lock.
const SHARDS: usize = 16;

/// Orders remembered per shard.
const PER_SHARD: usize = 4_096;

/// A committed order that will never rest again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Its owner: anyone else is told it does not exist.
    pub user_id: i64,
    /// `filled`, `cancelled` or `expired`.
    pub status: &'static str,
}

impl Finished {
    /// The final state named `status`, if it is one.
    pub fn new(user_id: i64, status: &str) -> Option<Self> {
        let status = match status {
            "filled" => "filled",
            "cancelled" => "cancelled",
            "expired" => "expired",
            _ => return None,
        };
        Some(Self { user_id, status })
    }
}

#[derive(Debug, Default)]
struct Shard {
    orders: HashMap<i64, Finished>,
    /// Insertion order, for forgetting the oldest.
    age: VecDeque<i64>,
}

/// The most recently finished orders, by id.
#[derive(Debug)]
pub struct RecentlyFinished {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for RecentlyFinished {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }
}

impl RecentlyFinished {
    fn shard(&self, order_id: i64) -> &Mutex<Shard> {
        &self.shards[usize::try_from(order_id.rem_euclid(SHARDS as i64)).unwrap_or(0)]
    }

    /// Records that `order_id` was committed as `finished`.
    pub fn insert(&self, order_id: i64, finished: Finished) {
        let mut shard = self
            .shard(order_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.orders.insert(order_id, finished).is_none() {
            shard.age.push_back(order_id);
            if shard.age.len() > PER_SHARD
                && let Some(oldest) = shard.age.pop_front()
            {
                shard.orders.remove(&oldest);
            }
        }
    }

    /// How `order_id` finished, if it is remembered.
    pub fn get(&self, order_id: i64) -> Option<Finished> {
        self.shard(order_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .orders
            .get(&order_id)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::{Finished, PER_SHARD, RecentlyFinished, SHARDS};

    #[test]
    fn only_final_states_are_finished() {
        assert_eq!(
            Finished::new(7, "filled"),
            Some(Finished {
                user_id: 7,
                status: "filled"
            })
        );
        assert_eq!(Finished::new(7, "open"), None);
        assert_eq!(Finished::new(7, "partially_filled"), None);
    }

    #[test]
    fn the_oldest_are_forgotten_first() {
        let finished = RecentlyFinished::default();
        let done = Finished {
            user_id: 1,
            status: "cancelled",
        };
        let (total, pushed_out) = ((SHARDS * PER_SHARD) as i64, 2 * SHARDS as i64);
        for id in 0..total + pushed_out {
            finished.insert(id, done);
        }
        // Two per shard were pushed out: the first ids of each.
        assert_eq!(finished.get(0), None);
        assert_eq!(finished.get(pushed_out - 1), None);
        assert_eq!(finished.get(pushed_out), Some(done));
        assert_eq!(finished.get(total + pushed_out - 1), Some(done));
        // Recording an order again does not make it count twice: counted
        // twice, its shard would overflow and forget its oldest, this one.
        finished.insert(pushed_out, done);
        assert_eq!(finished.get(pushed_out), Some(done));
    }
}
