//! What a command did, in the order it happened.
//!
//! The server persists and publishes these without looking inside the book:
//! an `Accepted` becomes an order row, a `Trade` a match row, an
//! `OrderUpdated` a status change and a private notification, a
//! `LevelChanged` a public `BID_UPDATED` / `ASK_UPDATED` message.

use crate::order::{MarketId, NewOrder, OrderId, OrderStatus, Side, UserId};
use crate::price::{Price, Quantity};

/// One thing a command changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new order passed the engine's checks; everything after it in the
    /// same command follows from it.
    Accepted(NewOrder),
    /// A resting order's price or quantity was changed by its owner.
    Amended(Amended),
    /// A taker traded with a maker at the maker's price.
    Trade(Trade),
    /// An order's status or remaining quantity changed.
    OrderUpdated(OrderUpdate),
    /// A price level's totals changed.
    LevelChanged(LevelChange),
}

/// An amendment that took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amended {
    /// The amended order.
    pub order: OrderId,
    /// Its owner.
    pub user: UserId,
    /// Its market.
    pub market: MarketId,
    /// Its side.
    pub side: Side,
    /// The new limit price.
    pub price: Price,
    /// The new total quantity (filled part included).
    pub quantity: Quantity,
    /// What is for trade after the amendment, before a requeued order is
    /// matched again (the trades and the `OrderUpdated` after it say what
    /// that matching took).
    pub remaining: u32,
    /// True when the order lost its time priority (new price or larger
    /// quantity) and went through matching again; false when it kept its
    /// place (smaller quantity at the same price).
    pub requeued: bool,
}

/// A trade between an incoming order (taker) and a resting one (maker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// The market both orders are in.
    pub market: MarketId,
    /// The maker's resting price.
    pub price: Price,
    /// Units traded.
    pub quantity: u32,
    /// The resting order.
    pub maker_order: OrderId,
    /// Its owner.
    pub maker_user: UserId,
    /// The incoming order.
    pub taker_order: OrderId,
    /// Its owner.
    pub taker_user: UserId,
    /// The incoming order's side: `Bid` means the buyer took the ask.
    pub taker_side: Side,
}

impl Trade {
    /// The bid side of the trade: `(order, user)`.
    pub const fn buyer(&self) -> (OrderId, UserId) {
        match self.taker_side {
            Side::Bid => (self.taker_order, self.taker_user),
            Side::Ask => (self.maker_order, self.maker_user),
        }
    }

    /// The ask side of the trade: `(order, user)`.
    pub const fn seller(&self) -> (OrderId, UserId) {
        match self.taker_side {
            Side::Bid => (self.maker_order, self.maker_user),
            Side::Ask => (self.taker_order, self.taker_user),
        }
    }
}

/// An order's new status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderUpdate {
    /// The order.
    pub order: OrderId,
    /// Its owner, who gets the private notification.
    pub user: UserId,
    /// Its market.
    pub market: MarketId,
    /// Its side.
    pub side: Side,
    /// Where it stands now.
    pub status: OrderStatus,
    /// What is still for trade (0 once it is off the book).
    pub remaining: u32,
}

/// A price level's new totals, and the side's best level after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    /// The market of the level.
    pub market: MarketId,
    /// Bid or ask side.
    pub side: Side,
    /// The level's price.
    pub price: Price,
    /// Units resting at the price now (0: the level is gone).
    pub quantity: u64,
    /// Orders resting at the price now.
    pub orders: u32,
    /// The side's best level after the change, if any is left.
    pub best: Option<LevelView>,
}

/// A price level's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelView {
    /// The level's price.
    pub price: Price,
    /// Units resting at the price.
    pub quantity: u64,
    /// Orders resting at the price.
    pub orders: u32,
}
