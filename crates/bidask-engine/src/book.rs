//! Price levels and the sorted ladders that hold them.
//!
//! A level is a FIFO queue of orders at one price, kept as an intrusive
//! doubly linked list through the order arena, so appending, taking the head
//! and unlinking any order by its arena key are all O(1) and allocate nothing.
//!
//! A ladder is one side of one market: its price levels in a sorted vector
//! with the *best price last*. Orders cluster near the best price, so the
//! common operations touch the end of the vector: reading the best level is
//! O(1), popping an emptied best level is O(1), and the level for a new
//! order's price is found in O(1) through a small hash table by price. Only
//! a price the ladder has never held needs a position in the vector: found
//! by scanning a few entries back from the best, then by bisecting keys
//! packed eight to a cache line.
//!
//! A level that empties away from the top is not removed: it stays in the
//! ladder, empty, ready for the next order at its price, because prices
//! come back and removing it would move every entry above it. Empty levels
//! are dropped when they surface at the top, and all at once when they
//! outnumber the live ones (amortized O(1)). So the best level is never
//! empty, and readers skip empty levels.

use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use crate::arena::Arena;
use crate::order::{MarketId, Side};
use crate::price::Price;

/// "No order": the end of a level's list.
pub(crate) const NIL: u32 = u32::MAX;

/// How many entries a ladder scans back from the best before it bisects.
const SCAN_FROM_BEST: usize = 8;

/// The orders resting at one price, oldest first. Aligned so that one
/// level never straddles two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
pub(crate) struct Level {
    /// The level's price.
    pub price: Price,
    /// The market the level (and every order in it) belongs to.
    pub market: MarketId,
    /// The side the level (and every order in it) is on.
    pub side: Side,
    /// Sum of the resting orders' remaining quantities.
    pub quantity: u64,
    /// Number of resting orders.
    pub orders: u32,
    /// Arena key of the oldest order: the next to trade.
    pub head: u32,
    /// Arena key of the newest order: where an arrival queues.
    pub tail: u32,
}

impl Level {
    pub(crate) const fn new(price: Price, market: MarketId, side: Side) -> Self {
        Self {
            price,
            market,
            side,
            quantity: 0,
            orders: 0,
            head: NIL,
            tail: NIL,
        }
    }
}

/// The price levels of one side of one market (empty ones included, but
/// never at the best position), best last.
///
/// Keys and level arena keys are kept in two parallel vectors so that a
/// search reads eight keys per cache line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ladder {
    /// Sort keys, ascending: better prices have larger keys.
    keys: Vec<u64>,
    /// Arena keys of the levels, in the same order as `keys`.
    levels: Vec<u32>,
    /// How many of the levels are empty (never the best one).
    empty: usize,
    /// The same levels' keys, hashed by price.
    by_price: HashTable<u32>,
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
    /// Arena key of the best level, if the side has any.
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

    /// Arena key of the level at `price`, empty or not, if the ladder has one.
    #[inline]
    pub(crate) fn level(&self, price: Price, levels: &Arena<Level>) -> Option<u32> {
        let found = self
            .by_price
            .find(hash(price), |&level| levels[level].price == price);
        found.copied()
    }

    /// Adds the level `level` (already in `levels`) with sort key `key`,
    /// which the ladder must not hold yet.
    #[inline]
    pub(crate) fn add(&mut self, key: u64, level: u32, levels: &Arena<Level>) {
        match self.find(key) {
            Err(position) if position == self.keys.len() => {
                self.keys.push(key);
                self.levels.push(level);
            }
            Err(position) => {
                self.keys.insert(position, key);
                self.levels.insert(position, level);
            }
            Ok(_) => unreachable!("a ladder only adds prices it does not hold"),
        }
        let price = levels[level].price;
        self.by_price
            .insert_unique(hash(price), level, |&level| hash(levels[level].price));
    }

    /// Notes that an empty level found by [`Ladder::level`] gets an order again.
    #[inline]
    pub(crate) fn revive(&mut self) {
        self.empty -= 1;
    }

    /// Notes that the level with `key` has just lost its last order: the
    /// best level is dropped at once (with any empty ones behind it),
    /// another is kept, empty, until it surfaces or the empties pile up.
    #[inline]
    pub(crate) fn emptied(&mut self, key: u64, levels: &mut Arena<Level>) {
        if self.keys.last() == Some(&key) {
            self.pop_into(levels);
            while let Some(&level) = self.levels.last() {
                if levels[level].orders != 0 {
                    break;
                }
                self.pop_into(levels);
                self.empty -= 1;
            }
        } else {
            self.empty += 1;
            if self.empty > self.levels.len() / 2 + 64 {
                self.compact(levels);
            }
        }
    }

    fn pop_into(&mut self, levels: &mut Arena<Level>) {
        self.keys.pop();
        if let Some(level) = self.levels.pop() {
            self.unhash(level, levels);
            levels.remove(level);
        }
    }

    fn unhash(&mut self, level: u32, levels: &Arena<Level>) {
        let price = levels[level].price;
        if let Ok(entry) = self
            .by_price
            .find_entry(hash(price), |&other| other == level)
        {
            entry.remove();
        }
    }

    /// Drops every empty level.
    fn compact(&mut self, levels: &mut Arena<Level>) {
        let mut kept = 0;
        for position in 0..self.levels.len() {
            let level = self.levels[position];
            if levels[level].orders == 0 {
                self.unhash(level, levels);
                levels.remove(level);
            } else {
                self.keys[kept] = self.keys[position];
                self.levels[kept] = level;
                kept += 1;
            }
        }
        self.keys.truncate(kept);
        self.levels.truncate(kept);
        self.empty = 0;
    }

    /// Bytes of heap memory the ladder holds.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.keys.capacity() * size_of::<u64>()
            + self.levels.capacity() * size_of::<u32>()
            + self.by_price.allocation_size()
    }

    /// Arena keys of the non-empty levels, best first.
    pub(crate) fn best_first<'a>(
        &'a self,
        levels: &'a Arena<Level>,
    ) -> impl Iterator<Item = u32> + 'a {
        let live = move |level: &u32| levels[*level].orders != 0;
        self.levels.iter().rev().copied().filter(live)
    }
}

/// The hash of a price in a ladder's table.
#[inline]
fn hash(price: Price) -> u64 {
    fx_hash(price.ticks())
}

/// `FxHasher` over one integer: the fastest good hash for ids and prices,
/// which are not chosen by an attacker to collide (the server assigns ids,
/// and a product has at most a few thousand price levels).
#[inline]
pub(crate) fn fx_hash(value: u64) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_u64(value);
    hasher.finish()
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

    /// Builds a ladder with one order's worth of level at each price.
    fn ladder(side: Side, prices: &[u64], levels: &mut Arena<Level>) -> Ladder {
        let mut ladder = Ladder::default();
        for &ticks in prices {
            let mut level = Level::new(price(ticks), MarketId(0), side);
            level.orders = 1;
            let level = levels.insert(level);
            ladder.add(sort_key(side, price(ticks)), level, levels);
        }
        ladder
    }

    fn empty_out(ladder: &mut Ladder, side: Side, ticks: u64, levels: &mut Arena<Level>) {
        let level = ladder.level(price(ticks), levels).expect("present");
        levels[level].orders = 0;
        ladder.emptied(sort_key(side, price(ticks)), levels);
    }

    fn live_prices(ladder: &Ladder, levels: &Arena<Level>) -> Vec<u64> {
        let prices = ladder
            .best_first(levels)
            .map(|level| levels[level].price.ticks());
        prices.collect()
    }

    #[test]
    fn ladder_keeps_the_best_price_last_on_both_sides() {
        for (side, best_first) in [
            (Side::Bid, [30, 25, 20, 15, 10]),
            (Side::Ask, [10, 15, 20, 25, 30]),
        ] {
            let mut levels = Arena::with_capacity(0);
            let mut ladder = ladder(side, &[20, 10, 30, 25, 15], &mut levels);
            assert_eq!(live_prices(&ladder, &levels), best_first);
            let best = ladder.best().expect("levels present");
            assert_eq!(levels[best].price.ticks(), best_first[0]);
            // An emptied inner level stays, empty and skipped, until it surfaces.
            empty_out(&mut ladder, side, best_first[1], &mut levels);
            assert_eq!(ladder.keys.len(), 5);
            assert_eq!(live_prices(&ladder, &levels).len(), 4);
            // The empty level is still found by price, ready for reuse.
            assert!(ladder.level(price(best_first[1]), &levels).is_some());
            // Emptying the best drops it and the empty level behind it.
            empty_out(&mut ladder, side, best_first[0], &mut levels);
            assert_eq!(ladder.keys.len(), 3);
            assert_eq!(levels.len(), 3);
            let best = ladder.best().expect("levels left");
            assert_eq!(levels[best].price.ticks(), best_first[2]);
            assert_eq!(ladder.empty, 0);
        }
    }

    #[test]
    fn empty_levels_are_compacted_once_they_pile_up() {
        let mut levels = Arena::with_capacity(0);
        let prices: Vec<u64> = (1..=300).collect();
        let mut ladder = ladder(Side::Bid, &prices, &mut levels);
        // The 215th empty level outnumbers half the ladder plus 64: all go.
        for ticks in 1..=250 {
            empty_out(&mut ladder, Side::Bid, ticks, &mut levels);
        }
        assert_eq!(ladder.keys.len(), 300 - 215);
        assert_eq!(ladder.empty, 250 - 215);
        let live: Vec<u64> = (251..=300).rev().collect();
        assert_eq!(live_prices(&ladder, &levels), live);
        assert_eq!(levels.len(), ladder.keys.len());
        assert_eq!(ladder.by_price.len(), ladder.keys.len());
        assert!(ladder.level(price(100), &levels).is_none());
        assert!(ladder.level(price(240), &levels).is_some());
    }

    #[test]
    fn find_agrees_with_binary_search_beyond_the_scanned_window() {
        let mut levels = Arena::with_capacity(0);
        let prices: Vec<u64> = (2..200).step_by(2).collect();
        let ladder = ladder(Side::Bid, &prices, &mut levels);
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
