//! The queue of expiry times: which resting order leaves the book next.
//!
//! Almost every order expires a fixed time after it is placed (30 days by
//! default), so expiry times arrive in increasing order: those go to the
//! back of a sorted deque in O(1) with one comparison. The few that arrive
//! out of order go to a binary heap. The earliest entry is the smaller of
//! the two fronts.
//!
//! Orders that leave early (filled, cancelled, amended) are not searched
//! for: their entries stay, dead, and are skipped when they surface. An
//! entry names the order's arena slot and the slot's generation, which the
//! engine bumps whenever it frees the slot, so telling a dead entry costs
//! one read of a small dense array. Once dead entries could outnumber the
//! live ones, both halves are pruned in one pass, which keeps memory at a
//! few entries per resting order and costs amortized O(1) per order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::order::{OrderId, Timestamp};

/// `(expires_at, order, arena key, slot generation)`: ordered by time,
/// then by order id, which fixes the order in which simultaneous expiries
/// are reported.
pub(crate) type Entry = (Timestamp, OrderId, u32, u32);

#[derive(Debug, Clone, Default)]
pub(crate) struct ExpiryQueue {
    /// Entries pushed in non-decreasing order, earliest first.
    ordered: VecDeque<Entry>,
    /// Entries that arrived earlier than the back of `ordered`.
    out_of_order: BinaryHeap<Reverse<Entry>>,
}

impl ExpiryQueue {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            ordered: VecDeque::with_capacity(capacity),
            out_of_order: BinaryHeap::new(),
        }
    }

    /// Entries held, dead ones included.
    pub(crate) fn len(&self) -> usize {
        self.ordered.len() + self.out_of_order.len()
    }

    #[inline]
    pub(crate) fn push(&mut self, entry: Entry) {
        match self.ordered.back() {
            Some(last) if *last > entry => self.out_of_order.push(Reverse(entry)),
            _ => self.ordered.push_back(entry),
        }
    }

    /// The earliest entry, dead or alive.
    #[inline]
    pub(crate) fn peek(&self) -> Option<Entry> {
        let ordered = self.ordered.front().copied();
        let other = self.out_of_order.peek().map(|Reverse(entry)| *entry);
        match (ordered, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns the earliest entry.
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let take_ordered = match (self.ordered.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => a <= b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_ordered {
            self.ordered.pop_front()
        } else {
            self.out_of_order.pop().map(|Reverse(entry)| entry)
        }
    }

    /// Drops every entry `live` says is dead.
    pub(crate) fn prune(&mut self, live: impl Fn(&Entry) -> bool) {
        self.ordered.retain(&live);
        self.out_of_order.retain(|Reverse(entry)| live(entry));
    }

    /// Bytes of heap memory held.
    pub(crate) fn allocated_bytes(&self) -> usize {
        (self.ordered.capacity() + self.out_of_order.capacity()) * size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, id: u64) -> Entry {
        (Timestamp(at), OrderId(id), 0, 0)
    }

    #[test]
    fn pops_in_time_then_id_order_whatever_the_push_order() {
        let mut queue = ExpiryQueue::with_capacity(8);
        for (at, id) in [(10, 1), (20, 2), (5, 3), (20, 1), (30, 4), (15, 5), (15, 6)] {
            queue.push(entry(at, id));
        }
        assert_eq!(queue.len(), 7);
        assert_eq!(queue.peek(), Some(entry(5, 3)));
        let mut popped = Vec::new();
        while let Some((at, id, _, _)) = queue.pop() {
            popped.push((at.0, id.0));
        }
        assert_eq!(
            popped,
            [(5, 3), (10, 1), (15, 5), (15, 6), (20, 1), (20, 2), (30, 4)]
        );
    }

    #[test]
    fn prune_keeps_the_live_entries_in_order() {
        let mut queue = ExpiryQueue::with_capacity(8);
        for (at, id) in [(10, 1), (20, 2), (5, 3), (30, 4), (15, 5)] {
            queue.push(entry(at, id));
        }
        queue.prune(|(_, id, _, _)| id.0 % 2 == 1);
        assert_eq!(queue.len(), 3);
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop())
            .map(|(_, id, _, _)| id.0)
            .collect();
        assert_eq!(order, [3, 1, 5]);
    }
}
