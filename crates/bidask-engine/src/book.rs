//! Price levels and the sorted ladders that hold them.
//!
//! A level is a FIFO queue of orders at one price, kept as an intrusive
//! doubly linked list through the order slab, so appending, taking the head
//! and unlinking any order by its slab key are all O(1) and allocate nothing.
//!
//! A ladder is one side of one market: the prices that have resting orders,
//! in a sorted vector with the *best price last*. Orders cluster near the
//! best price, so the common operations touch the end of the vector: reading
//! the best level is O(1), popping an emptied best level is O(1), and finding
//! the level for a new order scans a few entries back from the end before it
//! falls back to a binary search. Inserting or removing a level away from the
//! top moves the entries above it — a `memmove` of a few cache lines for the
//! hundreds of levels a real market has, which beats a tree's pointer chasing
//! on every lookup.

use crate::order::Side;
use crate::price::Price;

/// "No order": the end of a level's list.
pub(crate) const NIL: u32 = u32::MAX;

/// How many entries a ladder scans back from the best before it bisects.
const SCAN_FROM_BEST: usize = 8;

/// The orders resting at one price, oldest first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    /// The level's price.
    pub price: Price,
    /// Sum of the resting orders' remaining quantities.
    pub quantity: u64,
    /// Number of resting orders.
    pub orders: u32,
    /// Slab key of the oldest order: the next to trade.
    pub head: u32,
    /// Slab key of the newest order: where an arrival queues.
    pub tail: u32,
}

impl Level {
    pub(crate) const fn new(price: Price) -> Self {
        Self {
            price,
            quantity: 0,
            orders: 0,
            head: NIL,
            tail: NIL,
        }
    }
}

/// The active price levels of one side of one market, best last.
///
/// Keys and level slab keys are kept in two parallel vectors so that a
/// search reads eight keys per cache line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ladder {
    /// Sort keys, ascending: better prices have larger keys.
    keys: Vec<u64>,
    /// Slab keys of the levels, in the same order as `keys`.
    levels: Vec<u32>,
}

/// Maps a price to a key that grows as the price gets better for `side`:
/// higher bids and lower asks sort towards the end.
pub(crate) const fn sort_key(side: Side, price: Price) -> u64 {
    match side {
        Side::Bid => price.ticks(),
        Side::Ask => !price.ticks(),
    }
}

impl Ladder {
    /// Slab key of the best level, if the side has any.
    #[inline]
    pub(crate) fn best(&self) -> Option<u32> {
        self.levels.last().copied()
    }

    /// Position of `key`: `Ok` where it is, `Err` where it would be inserted.
    #[inline]
    pub(crate) fn find(&self, key: u64) -> Result<usize, usize> {
        let len = self.keys.len();
        let scan_start = len.saturating_sub(SCAN_FROM_BEST);
        for position in (scan_start..len).rev() {
            let here = self.keys[position];
            if here == key {
                return Ok(position);
            }
            if here < key {
                return Err(position + 1);
            }
        }
        self.keys[..scan_start].binary_search(&key)
    }

    /// Slab key of the level at `position` (from [`Ladder::find`]).
    #[inline]
    pub(crate) fn level_at(&self, position: usize) -> u32 {
        self.levels[position]
    }

    /// Adds a level at `position` (from a failed [`Ladder::find`]).
    #[inline]
    pub(crate) fn insert(&mut self, position: usize, key: u64, level: u32) {
        if position == self.keys.len() {
            self.keys.push(key);
            self.levels.push(level);
        } else {
            self.keys.insert(position, key);
            self.levels.insert(position, level);
        }
    }

    /// Drops the level with `key`, which must be present.
    #[inline]
    pub(crate) fn remove(&mut self, key: u64) {
        if self.keys.last() == Some(&key) {
            self.keys.pop();
            self.levels.pop();
        } else if let Ok(position) = self.find(key) {
            self.keys.remove(position);
            self.levels.remove(position);
        }
    }

    /// Slab keys of the levels, best first.
    pub(crate) fn best_first(&self) -> impl Iterator<Item = u32> + '_ {
        self.levels.iter().rev().copied()
    }
}

/// Both sides of one market.
#[derive(Debug, Clone, Default)]
pub(crate) struct Book {
    /// Buy levels.
    pub bids: Ladder,
    /// Sell levels.
    pub asks: Ladder,
}

impl Book {
    #[inline]
    pub(crate) fn side(&self, side: Side) -> &Ladder {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    #[inline]
    pub(crate) fn side_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(ticks: u64) -> Price {
        Price::from_ticks(ticks).expect("non-zero")
    }

    #[test]
    fn ladder_keeps_the_best_price_last_on_both_sides() {
        for (side, expected_best) in [(Side::Bid, 30), (Side::Ask, 10)] {
            let mut ladder = Ladder::default();
            let prices = [20, 10, 30, 25, 15];
            for (level, &ticks) in prices.iter().enumerate() {
                let key = sort_key(side, price(ticks));
                let position = ladder.find(key).expect_err("new price");
                ladder.insert(position, key, level as u32);
            }
            let best = ladder.best().expect("levels present") as usize;
            assert_eq!(prices[best], expected_best);
            assert_eq!(ladder.keys.len(), 5);
            ladder.remove(sort_key(side, price(expected_best)));
            ladder.remove(sort_key(side, price(20)));
            assert_eq!(ladder.keys.len(), 3);
            assert!(ladder.find(sort_key(side, price(20))).is_err());
            assert!(ladder.find(sort_key(side, price(25))).is_ok());
        }
    }

    #[test]
    fn find_agrees_with_binary_search_beyond_the_scanned_window() {
        let mut ladder = Ladder::default();
        for ticks in (2..200).step_by(2) {
            let key = sort_key(Side::Bid, price(ticks));
            let position = ladder.find(key).expect_err("new price");
            ladder.insert(position, key, ticks as u32);
        }
        for ticks in 1..210 {
            let key = sort_key(Side::Bid, price(ticks));
            assert_eq!(
                ladder.find(key),
                ladder.keys.binary_search(&key),
                "ticks {ticks}"
            );
        }
    }
}
