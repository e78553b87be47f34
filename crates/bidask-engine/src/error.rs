//! Why the engine refused a command. A refused command changes nothing.

use crate::order::{MarketId, OrderId};

/// A command the engine did not carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The product has no size with this index.
    #[error("market {} does not exist in this product", .0.0)]
    UnknownMarket(MarketId),
    /// No resting order has this id: it never existed here, or it has
    /// already filled, been cancelled or expired.
    #[error("order {} is not resting in this book", .0.0)]
    UnknownOrder(OrderId),
    /// An order with this id is already resting.
    #[error("order {} is already resting in this book", .0.0)]
    DuplicateOrder(OrderId),
    /// A good-till-cancelled order whose `expires_at` is not after the
    /// placement time would leave the book the moment it arrived.
    #[error("expires_at must be later than the time of placement")]
    AlreadyExpired,
    /// An amendment may not reduce an order to what has already traded.
    #[error("quantity must be greater than the {filled} units already filled")]
    QuantityNotAboveFilled {
        /// Units of the order that have already traded.
        filled: u32,
    },
    /// A restored order's remaining quantity is zero or above its quantity.
    #[error("order {} has a remaining quantity outside 1..=quantity", .0.0)]
    InvalidRemaining(OrderId),
    /// A restored order would cross the book: the orders handed to
    /// [`crate::Engine::restore`] are not a book that could have existed.
    #[error("order {} would cross the restored book", .0.0)]
    RestoreCrossed(OrderId),
}
