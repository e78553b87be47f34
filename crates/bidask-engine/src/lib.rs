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
//! - `book`: price levels (FIFO queues) and the sorted ladders that hold them;
//! - [`engine`]: the commands (place, cancel, amend, expire, restore) and queries;
//! - [`error`]: why a command was refused.
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
//! | place that rests at an existing level | O(k) with k levels scanned from the best (k ≤ 8, then O(log L)) + O(1) queue append |
//! | place that opens a level | the same, plus moving the ladder entries better than it |
//! | each fill | O(1): pop the level's head |
//! | cancel by id | O(1) hash lookup and unlink; O(log L) plus a move if its level empties |
//! | expire | O(log n) per expired order (binary heap) |
//!
//! Orders and levels live in slabs with free lists and link to each other by
//! 32-bit keys, so a warmed-up engine allocates nothing per command: the
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
