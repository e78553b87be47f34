//! [`orderbook-rs`](https://crates.io/crates/orderbook-rs) 0.15: a
//! thread-safe limit order book (lock-free skip lists of `pricelevel` price
//! levels, `DashMap` order index) with many order types, self-trade
//! prevention, risk checks, listeners and journaling, all left at their
//! defaults (off) here.
//!
//! How the stream maps onto it:
//!
//! - **Markets**: one `OrderBook<()>` per market, built with
//!   `OrderBook::new` (wall-clock `MonotonicClock`, no tick or lot size, no
//!   self-trade prevention, no risk limits, no listeners).
//! - **Ids**: the crate takes the caller's id; the stream's `u64` id becomes
//!   `Id::Sequential(id)`, so the adapter keeps no id map.
//! - **Prices and quantities**: prices are `u128` in orderbook-rs, quantities
//!   `u64`; the stream's `u64` ticks are widened losslessly on the way in and
//!   narrowed back (always in range, since every price came from a `u64`)
//!   when reading the books.
//! - **Orders**: `add_limit_order` (a `Standard` order, `user_id` zero,
//!   since self-trade prevention is off) with `TimeInForce::Gtc`, or the
//!   native `TimeInForce::Ioc` for immediate-or-cancel. An IOC that leaves a
//!   remainder returns `Err(InsufficientLiquidity)` after its trades: that is
//!   the expected outcome, not a failure.
//! - **Cancels**: `cancel_order(Id)`, which answers `Ok(None)` for an unknown
//!   or already-filled id.
//! - **Books**: read from `levels_with_cumulative_depth(side)`, the crate's
//!   level iterator (best price first, total quantity of each level).
//!
//! Any other error the crate returns is counted in
//! [`OrderbookRsPeer::rejected`] (it should stay 0). The crate's API is built
//! for concurrent use (`&self` methods behind atomics and a submit gate) and
//! reads the clock on every order; the benchmark measures it that way.

use ::orderbook_rs::{Id, OrderBook, OrderBookError, Side, TimeInForce};

use super::{LevelBook, Peer};
use crate::workload::{StreamCommand, StreamSide};

/// Replays streams through one `orderbook_rs::OrderBook<()>` per market.
pub struct OrderbookRsPeer {
    books: Vec<OrderBook<()>>,
    rejected: u64,
}

impl std::fmt::Debug for OrderbookRsPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderbookRsPeer")
            .field("markets", &self.books.len())
            .field("rejected", &self.rejected)
            .finish()
    }
}

impl OrderbookRsPeer {
    /// Creates a peer with one empty book for each of `markets` markets
    /// (more are added on demand if the stream names a higher market).
    pub fn new(markets: usize) -> Self {
        Self {
            books: (0..markets).map(new_book).collect(),
            rejected: 0,
        }
    }

    /// Number of commands orderbook-rs refused with an unexpected error
    /// (always 0 for a valid stream; IOC remainders are not counted).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn book(&mut self, market: u32) -> &OrderBook<()> {
        let index = market as usize;
        if index >= self.books.len() {
            let len = self.books.len();
            self.books.extend((len..=index).map(new_book));
        }
        &self.books[index]
    }
}

fn new_book(market: usize) -> OrderBook<()> {
    OrderBook::new(&format!("market-{market}"))
}

impl Peer for OrderbookRsPeer {
    fn name(&self) -> &'static str {
        "orderbook-rs 0.15"
    }

    fn apply(&mut self, command: &StreamCommand) {
        match *command {
            StreamCommand::Place {
                market,
                order_id,
                side,
                price,
                quantity,
                immediate_or_cancel,
            } => {
                let side = match side {
                    StreamSide::Bid => Side::Buy,
                    StreamSide::Ask => Side::Sell,
                };
                let time_in_force = if immediate_or_cancel {
                    TimeInForce::Ioc
                } else {
                    TimeInForce::Gtc
                };
                let result = self.book(market).add_limit_order(
                    Id::Sequential(order_id),
                    u128::from(price),
                    quantity,
                    side,
                    time_in_force,
                    None,
                );
                match result {
                    Ok(_) => {}
                    Err(OrderBookError::InsufficientLiquidity { .. }) if immediate_or_cancel => {}
                    Err(_) => self.rejected += 1,
                }
            }
            StreamCommand::Cancel { market, order_id } => {
                if self
                    .book(market)
                    .cancel_order(Id::Sequential(order_id))
                    .is_err()
                {
                    self.rejected += 1;
                }
            }
        }
    }

    fn books(&self) -> Vec<LevelBook> {
        self.books
            .iter()
            .map(|book| LevelBook {
                bids: levels(book, Side::Buy),
                asks: levels(book, Side::Sell),
            })
            .collect()
    }
}

/// One side of `book`, best level first, as `(price_ticks, total_quantity)`.
fn levels(book: &OrderBook<()>, side: Side) -> Vec<(u64, u64)> {
    book.levels_with_cumulative_depth(side)
        .map(|level| {
            let level = level.expect("orderbook-rs could not total a price level");
            let price =
                u64::try_from(level.price).expect("every price in the book came from a u64 tick");
            (price, level.quantity)
        })
        .collect()
}
