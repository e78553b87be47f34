//! Published order-book crates driven by the same streams as bidask-engine.

pub mod lobster;
pub mod matchcore;
pub mod orderbook_rs;

use crate::workload::StreamCommand;

/// Aggregated resting liquidity of one market: `(price_ticks, total_quantity)`
/// per level, best level first (bids highest first, asks lowest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelBook {
    /// Bid levels, highest price first.
    pub bids: Vec<(u64, u64)>,
    /// Ask levels, lowest price first.
    pub asks: Vec<(u64, u64)>,
}

/// An order book from crates.io that can replay a benchmark stream.
pub trait Peer {
    /// Crate name and version as printed in the report, e.g. `"lobster 0.7"`.
    fn name(&self) -> &'static str;
    /// Applies one command; cancels of unknown or already-filled orders are ignored.
    fn apply(&mut self, command: &StreamCommand);
    /// The final book of every market, indexed by market.
    fn books(&self) -> Vec<LevelBook>;
}

/// Every published order book this crate can drive, each with one empty book
/// for each of `markets` markets, in report order.
pub fn all(markets: usize) -> Vec<Box<dyn Peer>> {
    let mut peers = fast(markets);
    peers.push(Box::new(orderbook_rs::OrderbookRsPeer::new(markets)));
    peers
}

/// The peers fast enough to replay every stream within the benchmark's
/// two-minute budget: all but `orderbook-rs`, which takes about 0.4M
/// commands/s (25 s for one ten-million-command stream) and so replays only
/// the first stream.
pub fn fast(markets: usize) -> Vec<Box<dyn Peer>> {
    vec![
        Box::new(lobster::LobsterPeer::new(markets)),
        Box::new(matchcore::MatchcorePeer::new(markets)),
    ]
}
