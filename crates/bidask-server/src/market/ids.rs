//! Ids the server assigns itself, so that a batch can refer to rows before
//! they are committed.
//!
//! Each counter continues after the largest id in the database, and the
//! queue places after the last resting order's (a finished order's place
//! may be given again: it never returns to a book). An id taken by a
//! command whose commit then failed is never reused; ids may have gaps,
//! never duplicates.

use std::sync::atomic::{AtomicI64, Ordering};

use bidask_store::reads::LastIds;

/// The counters.
#[derive(Debug)]
pub struct Ids {
    product: AtomicI64,
    order: AtomicI64,
    matches: AtomicI64,
    priority: AtomicI64,
}

impl Ids {
    /// Counters that continue after `last`.
    pub fn after(last: LastIds) -> Self {
        Self {
            product: AtomicI64::new(last.product),
            order: AtomicI64::new(last.order),
            matches: AtomicI64::new(last.matches),
            priority: AtomicI64::new(last.priority),
        }
    }

    /// A new product id.
    pub fn product(&self) -> i64 {
        self.product.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new order id.
    pub fn order(&self) -> i64 {
        self.order.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new match id.
    pub fn matches(&self) -> i64 {
        self.matches.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new place at the back of a queue.
    pub fn priority(&self) -> i64 {
        self.priority.fetch_add(1, Ordering::Relaxed) + 1
    }
}
