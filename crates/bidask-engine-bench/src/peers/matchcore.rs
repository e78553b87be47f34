//! [`matchcore`](https://crates.io/crates/matchcore) 0.4: a deterministic,
//! single-threaded price-time matching engine driven by sequenced
//! `Command`s (`BTreeMap` of price levels in a `Slab`, orders in an
//! `FxHashMap`).
//!
//! How the stream maps onto it:
//!
//! - **Markets**: one `matchcore::OrderBook` per market.
//! - **Sequence numbers**: every command a matchcore book executes must carry
//!   the next sequence number of *that* book (0, 1, 2, … with no gap), so the
//!   adapter keeps one counter per market. Timestamps only have to be
//!   non-decreasing and nothing here expires, so every command carries
//!   `Timestamp(0)`.
//! - **Ids**: matchcore does not take the caller's id; it names an order by
//!   the sequence number of the command that submitted it
//!   (`OrderId::from(SequenceNumber)`). The adapter therefore keeps, per
//!   market, an `FxHashMap` from the stream's id to matchcore's `OrderId`
//!   and one back. An order is entered there only if it may be resting
//!   after its submit (not immediate-or-cancel and not completely filled at
//!   once), and it leaves when the stream cancels it or when a trade fills
//!   it as a maker (each trade's maker is looked up in the crate's resting
//!   orders), so the maps hold the resting orders only, as the engine's
//!   own index does. A cancel of an id the map does not hold (an order
//!   that filled) is not sent to the crate.
//! - **Prices and quantities**: `Price(u64)` and `Quantity(u64)`, the
//!   stream's ticks and units unchanged.
//! - **Immediate-or-cancel**: native, `TimeInForce::Ioc`; other orders are
//!   `TimeInForce::Gtc`, all with `QuantityPolicy::Standard` and not
//!   post-only.
//! - **Books**: read from the crate's `Level2` market-data snapshot
//!   (`Level2::from(&book)`), which lists bid and ask levels best first with
//!   their total (visible + hidden) quantity.
//!
//! What it cannot do faithfully: in matchcore 0.4.0 a limit order that
//! crosses the book is matched without its limit price
//! (`submit_crossable_order` calls `match_order(.., None, ..)`), so once it
//! has taken the levels within its limit it goes on sweeping levels beyond
//! it, like a market order, instead of resting (or, for IOC, dropping) the
//! remainder. Streams whose crossing orders outsize the liquidity within
//! their limit therefore end with different books; the integration tests
//! record this. Every `execute` also returns an outcome owning a `Vec` of
//! trades, which the benchmark pays for.

use ::matchcore::{
    CancelCmd, Command, CommandKind, CommandMeta, CommandOutcome, CommandReport, Level2,
    LimitOrder, NewOrder, OrderBook, OrderFlags, OrderId, OrderKind, Price, Quantity,
    QuantityPolicy, SequenceNumber, Side, SubmitCmd, TimeInForce, Timestamp,
};
use rustc_hash::FxHashMap;

use super::{LevelBook, Peer};
use crate::workload::{StreamCommand, StreamSide};

/// One market: the crate's book plus what its API forces the adapter to keep.
#[derive(Debug)]
struct Market {
    book: OrderBook,
    /// Sequence number the next command to this book must carry.
    next_sequence: u64,
    /// Stream order id → matchcore order id, for orders that may be resting.
    ids: FxHashMap<u64, OrderId>,
    /// The other way, to forget a maker once a trade has filled it.
    stream_ids: FxHashMap<OrderId, u64>,
}

impl Market {
    fn new() -> Self {
        Self {
            book: OrderBook::new("bench"),
            next_sequence: 0,
            ids: FxHashMap::default(),
            stream_ids: FxHashMap::default(),
        }
    }

    fn meta(&mut self) -> CommandMeta {
        let sequence_number = SequenceNumber(self.next_sequence);
        self.next_sequence += 1;
        CommandMeta {
            sequence_number,
            timestamp: Timestamp(0),
        }
    }
}

/// Replays streams through one `matchcore::OrderBook` per market.
#[derive(Debug)]
pub struct MatchcorePeer {
    markets: Vec<Market>,
    rejected: u64,
}

impl MatchcorePeer {
    /// Creates a peer with one empty book for each of `markets` markets
    /// (more are added on demand if the stream names a higher market).
    pub fn new(markets: usize) -> Self {
        Self {
            markets: (0..markets).map(|_| Market::new()).collect(),
            rejected: 0,
        }
    }

    /// Number of commands matchcore rejected: always 0 for a valid stream,
    /// since only resting orders are cancelled.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn market(&mut self, market: u32) -> &mut Market {
        let index = market as usize;
        if index >= self.markets.len() {
            self.markets.resize_with(index + 1, Market::new);
        }
        &mut self.markets[index]
    }
}

impl Peer for MatchcorePeer {
    fn name(&self) -> &'static str {
        "matchcore 0.4"
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
                let state = self.market(market);
                let meta = state.meta();
                let side = match side {
                    StreamSide::Bid => Side::Buy,
                    StreamSide::Ask => Side::Sell,
                };
                let time_in_force = if immediate_or_cancel {
                    TimeInForce::Ioc
                } else {
                    TimeInForce::Gtc
                };
                let outcome = state.book.execute(&Command {
                    meta,
                    kind: CommandKind::Submit(SubmitCmd {
                        order: NewOrder::Limit(LimitOrder::new(
                            Price(price),
                            QuantityPolicy::Standard {
                                quantity: Quantity(quantity),
                            },
                            OrderFlags::new(side, false, time_in_force),
                        )),
                    }),
                });
                match outcome {
                    CommandOutcome::Applied(CommandReport::Submit(effects)) => {
                        let target = effects.target_order();
                        let mut executed = 0;
                        if let Some(result) = target.match_result() {
                            executed = result.executed_quantity().0;
                            for trade in result.trades() {
                                let maker = trade.maker_order_id();
                                if !state.book.limit().orders().contains_key(&maker)
                                    && let Some(filled) = state.stream_ids.remove(&maker)
                                {
                                    state.ids.remove(&filled);
                                }
                            }
                        }
                        if !immediate_or_cancel && executed < quantity {
                            state.ids.insert(order_id, target.order_id());
                            state.stream_ids.insert(target.order_id(), order_id);
                        }
                    }
                    _ => self.rejected += 1,
                }
            }
            StreamCommand::Cancel { market, order_id } => {
                let state = self.market(market);
                if let Some(id) = state.ids.remove(&order_id) {
                    state.stream_ids.remove(&id);
                    let meta = state.meta();
                    let outcome = state.book.execute(&Command {
                        meta,
                        kind: CommandKind::Cancel(CancelCmd {
                            order_id: id,
                            order_kind: OrderKind::Limit,
                        }),
                    });
                    if !matches!(outcome, CommandOutcome::Applied(_)) {
                        self.rejected += 1;
                    }
                }
            }
        }
    }

    fn books(&self) -> Vec<LevelBook> {
        self.markets
            .iter()
            .map(|market| {
                let level2 = Level2::from(&market.book);
                LevelBook {
                    bids: level2
                        .bid_levels()
                        .iter()
                        .map(|&(price, quantity)| (price.0, quantity.0))
                        .collect(),
                    asks: level2
                        .ask_levels()
                        .iter()
                        .map(|&(price, quantity)| (price.0, quantity.0))
                        .collect(),
                }
            })
            .collect()
    }
}
