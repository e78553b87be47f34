//! The matching core of bidask: one [`Engine`] per product holds the order
//! books of all its sizes and matches bids and asks by price-time priority.
//!
//! It is pure: no I/O, no async, no clock (time comes in with each command),
//! so the same commands always give the same events. The server gives each
//! product one thread of control that owns its engine.
//!
//! Read it in this order:
//! - [`price`]: [`Price`] in integer ticks and [`Quantity`], parsed from
//!   decimals at the edge with the product's [`TickSize`];
//! - [`order`]: ids, sides, time in force, statuses and the [`NewOrder`] command;
//! - [`event`]: the [`Event`]s every command returns, in order;
//! - `arena`: the storage of orders and levels, with 32-bit keys;
//! - `book`: price levels (FIFO queues) and the sorted ladders that hold them;
//! - `expiry`: the queue that says which order expires next;
//! - [`engine`]: the commands (place, cancel, amend, expire, restore) and queries;
//! - [`error`]: why a command was refused;
//! - `reference` (feature `reference-model`): the simple model the engine is
//!   tested against, and the harness that runs both side by side.
//!
//! # Example
//!
//! A seller asks 220.00, a buyer bids 225.00: they trade one pair at the
//! resting ask's price.
//!
//! ```
//! use bidask_engine::*;
//! use rust_decimal::dec;
//!
//! let tick = TickSize::CENT;
//! let now = Timestamp(1_700_000_000_000_000);
//! let in_30_days = Timestamp(now.0 + 30 * 86_400 * 1_000_000);
//! let order = |id, user, side, price| NewOrder {
//!     id: OrderId(id),
//!     user: UserId(user),
//!     market: MarketId(0),
//!     side,
//!     price: tick.price(price).expect("a valid price"),
//!     quantity: Quantity::ONE,
//!     time_in_force: TimeInForce::GoodTillCancelled,
//!     expires_at: in_30_days,
//! };
//!
//! let mut engine = Engine::new(1); // one size
//! let mut events = Vec::new();
//! engine.place(order(1, 7, Side::Ask, dec!(220.00)), now, &mut events)?;
//! events.clear();
//! engine.place(order(2, 8, Side::Bid, dec!(225.00)), now, &mut events)?;
//!
//! let trades: Vec<Trade> = events
//!     .iter()
//!     .filter_map(|event| match event {
//!         Event::Trade(trade) => Some(*trade),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(trades.len(), 1);
//! assert_eq!(tick.decimal(trades[0].price), dec!(220.00));
//! assert_eq!(trades[0].seller(), (OrderId(1), UserId(7)));
//! assert!(engine.is_empty());
//! # Ok::<(), EngineError>(())
//! ```
//!
//! # Invariant
//!
//! After every command, no market is crossed (its highest bid is below its
//! lowest ask), and every unit ever placed is exactly once either filled,
//! resting, cancelled or expired. A refused command changes nothing.
//!
//! # Data structures and their cost
//!
//! | operation | cost |
//! |---|---|
//! | best bid / best ask | O(1): the last entry of a sorted ladder |
//! | place that rests at a price the ladder holds | O(1): price hash lookup + queue append + id index insert + expiry push (O(1) for increasing expiries) |
//! | place at a price the ladder never held | the same, plus finding its position (≤ 8 entries from the best, else O(log L)) and moving the entries better than it |
//! | each fill | O(1): pop the level's head |
//! | cancel by id | O(1): id hash lookup and unlink; a level that empties inside the book stays for reuse (empties are compacted in amortized O(1)) |
//! | expire | O(1) per expired order from the sorted deque, O(log n) for the rare out-of-order expiry in the heap |
//!
//! Orders and levels live in arenas with free lists and link to each other
//! by 32-bit keys; the part of an order that matching reads is 32 bytes, two
//! to a cache line. A warmed-up engine allocates nothing per command: the
//! caller hands in the event vector and clears it between commands.
//!
//! # Self-trade prevention
//!
//! An incoming order never trades with its own user's resting order. When
//! matching reaches one, the incoming order's remainder is cancelled with
//! [`CancelReason::SelfTrade`] (cancel newest); what it traded before stays
//! traded.

pub mod engine;
pub mod error;
pub mod event;
pub mod order;
pub mod price;

mod arena;
mod book;
mod expiry;

#[cfg(feature = "reference-model")]
pub mod reference;

pub use engine::{Command, Engine};
pub use error::EngineError;
pub use event::{Amended, Event, LevelChange, LevelView, OrderUpdate, Trade};
pub use order::{
    CancelReason, MarketId, NewOrder, OrderId, OrderStatus, RestingOrder, Side, TimeInForce,
    Timestamp, UserId,
};
pub use price::{MAX_PRICE, MAX_QUANTITY, Price, PriceError, Quantity, QuantityError, TickSize};
