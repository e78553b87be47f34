//! [`lobster`](https://crates.io/crates/lobster) 0.7: a single-threaded
//! price-time limit order book (`BTreeMap` of price levels, each a `Vec` of
//! arena slots, orders found by id through a std `HashMap`).
//!
//! How the stream maps onto it:
//!
//! - **Markets**: one `lobster::OrderBook` per market, built empty with
//!   `OrderBook::new(0, 10, false)` (no pre-allocated order slots, level
//!   queues of capacity 10, statistics tracking off), as every engine of
//!   the benchmark is; see `empty_book`.
//! - **Ids**: lobster takes the caller's id as a `u128` and keeps its own
//!   id → slot map, so the stream's `u64` id is passed as is (widened); the
//!   adapter keeps no id map.
//! - **Prices and quantities**: both `u64` in lobster, the stream's ticks and
//!   units unchanged.
//! - **Matching**: `OrderType::Limit` matches at the resting order's price
//!   while the limit crosses and rests the remainder, which is the stream's
//!   semantics.
//! - **Immediate-or-cancel**: lobster's only immediate order is
//!   `OrderType::Market`, which has no limit price. An IOC is therefore
//!   emulated: it is placed as a limit order and, unless the returned event
//!   is `Filled`, the resting remainder is cancelled by id right away (one
//!   extra `execute` call).
//! - **Cancels**: `OrderType::Cancel` by id; unknown or already-filled ids
//!   are no-ops in lobster (it still answers `Canceled`).
//! - **Books**: read from `OrderBook::depth`, which sums the live quantity of
//!   every level and skips empty ones. In 0.7 its `levels` argument is only
//!   a capacity hint (all levels are returned). Lobster lists bid levels
//!   lowest price first, so they are reversed to the best-first order of
//!   [`LevelBook`].
//!
//! What it cannot do: no IOC limit order (emulated as above), and every
//! `execute` returns an event owning a freshly allocated `Vec` of fills,
//! which the benchmark pays for. Lobster never removes emptied price levels
//! from its maps nor frees the arena slots of orders filled as makers (only
//! a cancel frees a slot), so long streams leave it with growing
//! bookkeeping; that is the crate's behaviour, measured as is.

use ::lobster::{OrderBook, OrderEvent, OrderType, Side};

use super::{LevelBook, Peer};
use crate::workload::{StreamCommand, StreamSide};

/// Capacity hint handed to `OrderBook::depth` when reading the books.
const DEPTH_CAPACITY_HINT: usize = 64;

/// Orders each price level's queue starts with room for: lobster's own
/// default.
const QUEUE_CAPACITY: usize = 10;

/// A book built empty, as every engine of the benchmark is: lobster's
/// `Default` writes 10,000 order slots and reserves a 10,000-entry map,
/// which over the 1,000-market stream is about 400 MB touched before the
/// first command and books spread too thin for the caches.
fn empty_book() -> OrderBook {
    OrderBook::new(0, QUEUE_CAPACITY, false)
}

/// Replays streams through one `lobster::OrderBook` per market.
#[derive(Debug)]
pub struct LobsterPeer {
    books: Vec<OrderBook>,
}

impl LobsterPeer {
    /// Creates a peer with one empty book for each of `markets` markets
    /// (more are added on demand if the stream names a higher market).
    pub fn new(markets: usize) -> Self {
        Self {
            books: (0..markets).map(|_| empty_book()).collect(),
        }
    }

    fn book(&mut self, market: u32) -> &mut OrderBook {
        let index = market as usize;
        if index >= self.books.len() {
            self.books.resize_with(index + 1, empty_book);
        }
        &mut self.books[index]
    }
}

fn side(side: StreamSide) -> Side {
    match side {
        StreamSide::Bid => Side::Bid,
        StreamSide::Ask => Side::Ask,
    }
}

impl Peer for LobsterPeer {
    fn name(&self) -> &'static str {
        "lobster 0.7"
    }

    fn apply(&mut self, command: &StreamCommand) {
        match *command {
            StreamCommand::Place {
                market,
                order_id,
                side: order_side,
                price,
                quantity,
                immediate_or_cancel,
            } => {
                let book = self.book(market);
                let id = u128::from(order_id);
                let event = book.execute(OrderType::Limit {
                    id,
                    side: side(order_side),
                    qty: quantity,
                    price,
                });
                // `Placed` and `PartiallyFilled` both mean a remainder now rests.
                if immediate_or_cancel && !matches!(event, OrderEvent::Filled { .. }) {
                    book.execute(OrderType::Cancel { id });
                }
            }
            StreamCommand::Cancel { market, order_id } => {
                self.book(market).execute(OrderType::Cancel {
                    id: u128::from(order_id),
                });
            }
        }
    }

    fn books(&self) -> Vec<LevelBook> {
        self.books
            .iter()
            .map(|book| {
                // lobster 0.7 returns every non-empty level whatever `levels`
                // says: the argument is only the capacity of the two vectors.
                let depth = book.depth(DEPTH_CAPACITY_HINT);
                LevelBook {
                    // lobster lists bids ascending; best (highest) first here.
                    bids: depth
                        .bids
                        .iter()
                        .rev()
                        .map(|level| (level.price, level.qty))
                        .collect(),
                    asks: depth
                        .asks
                        .iter()
                        .map(|level| (level.price, level.qty))
                        .collect(),
                }
            })
            .collect()
    }
}
