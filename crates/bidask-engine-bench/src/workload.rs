//! Deterministic order streams shaped like a busy sneaker market.

/// Which side of the book an order rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamSide {
    /// A buy offer.
    Bid,
    /// A sell offer.
    Ask,
}

/// One command of a benchmark stream, in the plainest form every order book can take.
///
/// Prices are integer ticks (> 0), quantities integers 1..=20, order ids unique
/// and increasing over the whole stream; every order of the stream belongs to a
/// distinct user, so self-trade prevention never fires and books without it agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCommand {
    /// Place a limit order: match at the resting price while it crosses, then
    /// rest the remainder unless `immediate_or_cancel`.
    Place {
        /// Index of the market (0..markets) the order belongs to.
        market: u32,
        /// Unique, increasing id.
        order_id: u64,
        /// Buy or sell.
        side: StreamSide,
        /// Limit price in ticks.
        price: u64,
        /// Units wanted.
        quantity: u64,
        /// Cancel whatever does not fill at once instead of resting it.
        immediate_or_cancel: bool,
    },
    /// Cancel a resting order (it may already have filled: then nothing happens).
    Cancel {
        /// Index of the market the order was placed in.
        market: u32,
        /// Id of the order to cancel.
        order_id: u64,
    },
}
