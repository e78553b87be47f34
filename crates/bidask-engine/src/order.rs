//! Orders as the engine sees them: who, where, which side, how long.

use crate::price::{Price, Quantity};

/// An order's id, assigned by the caller (the database), unique per engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(pub u64);

/// The trader who owns an order; used for self-trade prevention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(pub u64);

/// One size of the engine's product, by position in its size list.
/// Each size is a market of its own: orders never match across sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarketId(pub u16);

/// Microseconds since the Unix epoch. The engine has no clock: every
/// command that depends on time is handed the time, so replays are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A buy offer: the highest price rests at the front.
    Bid,
    /// A sell offer: the lowest price rests at the front.
    Ask,
}

impl Side {
    /// The side an order of this side trades against.
    pub const fn opposite(self) -> Self {
        match self {
            Self::Bid => Self::Ask,
            Self::Ask => Self::Bid,
        }
    }

    /// Whether an order of this side at `limit` may trade with a resting order at `resting`.
    pub fn crosses(self, limit: Price, resting: Price) -> bool {
        match self {
            Self::Bid => limit >= resting,
            Self::Ask => limit <= resting,
        }
    }
}

/// How long an order may wait for a counterparty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests until filled, cancelled or expired.
    #[default]
    GoodTillCancelled,
    /// Buy Now / Sell Now: trade what crosses now, cancel the rest.
    ImmediateOrCancel,
    /// Fill the whole quantity now or trade nothing.
    FillOrKill,
}

/// Why an order left the book without filling completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// Its owner asked.
    Requested,
    /// It reached a resting order of the same user (cancel-newest prevention).
    SelfTrade,
    /// An immediate-or-cancel order's unfilled remainder.
    ImmediateOrCancel,
    /// A fill-or-kill order that could not fill completely.
    FillOrKill,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Resting, nothing filled yet.
    Open,
    /// Some filled; the rest is resting (or, once cancelled, not).
    PartiallyFilled,
    /// Fully traded.
    Filled,
    /// Taken out before it filled completely.
    Cancelled(CancelReason),
    /// Reached its `expires_at` while resting.
    Expired,
}

impl OrderStatus {
    /// Whether the order can still trade.
    pub const fn is_resting(self) -> bool {
        matches!(self, Self::Open | Self::PartiallyFilled)
    }
}

/// A command to place an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    /// Unique among the engine's resting orders.
    pub id: OrderId,
    /// Owner, for self-trade prevention.
    pub user: UserId,
    /// The size the order is for.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// Limit price: the worst price the order trades at.
    pub price: Price,
    /// Units wanted.
    pub quantity: Quantity,
    /// How long it may wait.
    pub time_in_force: TimeInForce,
    /// When a resting remainder leaves the book; must be later than the
    /// placement time handed to [`crate::Engine::place`].
    pub expires_at: Timestamp,
}

/// A resting order, as queried or as handed to [`crate::Engine::restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder {
    /// The order's id.
    pub id: OrderId,
    /// Owner.
    pub user: UserId,
    /// The size it rests in.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// The price it rests at.
    pub price: Price,
    /// The order's total quantity, filled part included.
    pub quantity: Quantity,
    /// What is still for trade: 1 up to `quantity`.
    pub remaining: u32,
    /// When it leaves the book.
    pub expires_at: Timestamp,
}

impl RestingOrder {
    /// `Open` before the first fill, `PartiallyFilled` after.
    pub const fn status(&self) -> OrderStatus {
        if self.remaining == self.quantity.units() {
            OrderStatus::Open
        } else {
            OrderStatus::PartiallyFilled
        }
    }
}
