//! The public books as committed: what `GET /products/{id}/book`, the
//! product summaries and WebSocket snapshots read.
//!
//! The engine may already hold results that are not committed yet, so
//! snapshots never come from it. This replica changes only when the writer
//! applies committed events, in `seq` order, so a snapshot is exactly the
//! state as of its `seq`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bidask_engine::{LevelView, Side};

use crate::feed::FeedBody;

/// One price level: units and orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price in ticks.
    pub ticks: u64,
    /// Units resting.
    pub quantity: u64,
    /// Orders resting.
    pub orders: u32,
}

/// One market's public state.
#[derive(Debug, Clone, Default)]
pub struct MarketBook {
    /// Bid levels by price.
    bids: BTreeMap<u64, Level>,
    /// Ask levels by price.
    asks: BTreeMap<u64, Level>,
    /// Resting bid orders.
    pub bid_count: u64,
    /// Resting ask orders.
    pub ask_count: u64,
    /// The price of the last match, in ticks.
    pub last_sale: Option<u64>,
}

impl MarketBook {
    /// The highest bid.
    pub fn highest_bid(&self) -> Option<Level> {
        self.bids.values().next_back().copied()
    }

    /// The lowest ask.
    pub fn lowest_ask(&self) -> Option<Level> {
        self.asks.values().next().copied()
    }

    /// Up to `depth` levels of one side, best first.
    pub fn depth(&self, side: Side, depth: usize) -> Vec<Level> {
        match side {
            Side::Bid => self.bids.values().rev().take(depth).copied().collect(),
            Side::Ask => self.asks.values().take(depth).copied().collect(),
        }
    }

    fn set_level(&mut self, side: Side, level: Level) {
        let (levels, count) = match side {
            Side::Bid => (&mut self.bids, &mut self.bid_count),
            Side::Ask => (&mut self.asks, &mut self.ask_count),
        };
        let before = levels.get(&level.ticks).map_or(0, |old| old.orders);
        *count = (*count + u64::from(level.orders)).saturating_sub(u64::from(before));
        if level.quantity == 0 {
            levels.remove(&level.ticks);
        } else {
            levels.insert(level.ticks, level);
        }
    }
}

/// One market at a glance, prices in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketSummary {
    /// The highest bid.
    pub highest_bid: Option<u64>,
    /// The lowest ask.
    pub lowest_ask: Option<u64>,
    /// The last match.
    pub last_sale: Option<u64>,
    /// Resting bid orders.
    pub bid_count: u64,
    /// Resting ask orders.
    pub ask_count: u64,
}

/// One market's levels, best first, and its last sale, in ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketLevels {
    /// Bid levels, highest first.
    pub bids: Vec<Level>,
    /// Ask levels, lowest first.
    pub asks: Vec<Level>,
    /// The price of the last match.
    pub last_sale: Option<u64>,
}

/// One product's markets and the `seq` they are current to.
#[derive(Debug, Clone, Default)]
pub struct ProductBook {
    /// The last applied event of the product's channel.
    pub seq: i64,
    /// One book per size.
    pub markets: Vec<MarketBook>,
}

/// Every product's public books.
#[derive(Debug, Default)]
pub struct Replicas {
    products: RwLock<HashMap<i64, Arc<Mutex<ProductBook>>>>,
}

impl Replicas {
    /// Sets a product's books from the committed state: its resting
    /// levels per market, last sales and channel `seq`.
    pub fn load(
        &self,
        product_id: i64,
        seq: i64,
        markets: Vec<(Vec<LevelView>, Vec<LevelView>, Option<u64>)>,
    ) {
        let mut book = ProductBook {
            seq,
            markets: Vec::with_capacity(markets.len()),
        };
        for (bids, asks, last_sale) in markets {
            let mut market = MarketBook {
                last_sale,
                ..MarketBook::default()
            };
            for (side, levels) in [(Side::Bid, bids), (Side::Ask, asks)] {
                for level in levels {
                    market.set_level(
                        side,
                        Level {
                            ticks: level.price.ticks(),
                            quantity: level.quantity,
                            orders: level.orders,
                        },
                    );
                }
            }
            book.markets.push(market);
        }
        self.products
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(product_id, Arc::new(Mutex::new(book)));
    }

    /// Applies one committed event of `product:{product_id}`.
    pub fn apply(&self, product_id: i64, seq: i64, body: &FeedBody) {
        let Some(book) = self.product(product_id) else {
            return;
        };
        let mut book = book.lock().unwrap_or_else(PoisonError::into_inner);
        book.seq = book.seq.max(seq);
        match body {
            FeedBody::Level(change) => {
                if let Some(market) = book.markets.get_mut(usize::from(change.market)) {
                    market.set_level(
                        change.side,
                        Level {
                            ticks: change.ticks,
                            quantity: change.quantity,
                            orders: change.orders,
                        },
                    );
                }
            }
            FeedBody::PublicMatch(trade) => {
                if let Some(market) = book.markets.get_mut(usize::from(trade.market)) {
                    market.last_sale = Some(trade.ticks);
                }
            }
            _ => {}
        }
    }

    /// Each market's best prices, last sale and order counts, in market
    /// order, with the product's `seq`.
    pub fn summaries(&self, product_id: i64) -> Option<(i64, Vec<MarketSummary>)> {
        self.read(product_id, |book| {
            let markets = book
                .markets
                .iter()
                .map(|market| MarketSummary {
                    highest_bid: market.highest_bid().map(|level| level.ticks),
                    lowest_ask: market.lowest_ask().map(|level| level.ticks),
                    last_sale: market.last_sale,
                    bid_count: market.bid_count,
                    ask_count: market.ask_count,
                })
                .collect();
            Some((book.seq, markets))
        })
    }

    /// One market's levels, `depth` per side, with the product's `seq`.
    pub fn depth(
        &self,
        product_id: i64,
        market: usize,
        depth: usize,
    ) -> Option<(i64, Vec<Level>, Vec<Level>)> {
        self.read(product_id, |book| {
            let levels = book.markets.get(market)?;
            Some((
                book.seq,
                levels.depth(Side::Bid, depth),
                levels.depth(Side::Ask, depth),
            ))
        })
    }

    /// Every market's whole book and last sale, taken under one lock so
    /// that all of them are current to the returned `seq`: a WebSocket
    /// snapshot.
    pub fn snapshot(&self, product_id: i64) -> Option<(i64, Vec<MarketLevels>)> {
        self.read(product_id, |book| {
            let markets = book
                .markets
                .iter()
                .map(|market| MarketLevels {
                    bids: market.depth(Side::Bid, usize::MAX),
                    asks: market.depth(Side::Ask, usize::MAX),
                    last_sale: market.last_sale,
                })
                .collect();
            Some((book.seq, markets))
        })
    }

    /// Runs `read` on one product's books under their lock.
    fn read<T>(&self, product_id: i64, read: impl FnOnce(&ProductBook) -> Option<T>) -> Option<T> {
        let book = self.product(product_id)?;
        let book = book.lock().unwrap_or_else(PoisonError::into_inner);
        read(&book)
    }

    fn product(&self, product_id: i64) -> Option<Arc<Mutex<ProductBook>>> {
        self.products
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&product_id)
            .cloned()
    }
}
