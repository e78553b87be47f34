//! Which product each resting order rests in, so that cancelling or
//! amending one takes no database read.
//!
//! The actors keep it: an order is added when a command leaves it resting
//! and removed when it leaves the book, and a rebuilt book replaces its
//! product's entries. It may briefly name an order whose commit then
//! failed; the handlers treat an entry as a hint and ask the database
//! when the actor does not have the order.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Shards, so that actors of different products rarely share a lock.
const SHARDS: usize = 16;

/// Order id to product id, for resting orders.
#[derive(Debug)]
pub struct RestingIndex {
    shards: [RwLock<HashMap<i64, i64>>; SHARDS],
}

impl Default for RestingIndex {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }
}

impl RestingIndex {
    fn shard(&self, order_id: i64) -> &RwLock<HashMap<i64, i64>> {
        &self.shards[usize::try_from(order_id.rem_euclid(SHARDS as i64)).unwrap_or(0)]
    }

    /// Records that `order_id` rests in `product_id`.
    pub fn insert(&self, order_id: i64, product_id: i64) {
        self.shard(order_id)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(order_id, product_id);
    }

    /// Forgets `order_id`.
    pub fn remove(&self, order_id: i64) {
        self.shard(order_id)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&order_id);
    }

    /// The product `order_id` rests in, if it rests.
    pub fn product_of(&self, order_id: i64) -> Option<i64> {
        self.shard(order_id)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&order_id)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::RestingIndex;

    #[test]
    fn orders_are_found_until_removed() {
        let index = RestingIndex::default();
        index.insert(17, 3);
        index.insert(33, 4);
        assert_eq!(
            (index.product_of(17), index.product_of(33)),
            (Some(3), Some(4))
        );
        index.remove(17);
        assert_eq!(
            (index.product_of(17), index.product_of(33)),
            (None, Some(4))
        );
    }
}
