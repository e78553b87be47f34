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

use bidask_engine::reference::ReferenceModel;
use bidask_engine::{
    Command, MarketId, NewOrder, OrderId, Price, Quantity, Side, TimeInForce, Timestamp, UserId,
};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::peers::LevelBook;

/// The time every benchmark order is placed at; orders never expire.
pub const PLACED_AT: Timestamp = Timestamp(1_700_000_000_000_000);

/// Far beyond the stream: the benchmark measures matching, not expiry.
pub const EXPIRES_AT: Timestamp = Timestamp(i64::MAX);

/// Where prices start: 200.00 at one-cent ticks.
const START_TICKS: u64 = 20_000;

/// What stream to generate.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadSpec {
    /// Short name used in the report.
    pub name: &'static str,
    /// Number of markets the stream is spread over.
    pub markets: u32,
    /// Markets per product (engine): the server runs one engine per product.
    pub markets_per_product: u32,
    /// Resting orders the stream keeps in the books, over all markets.
    pub resting_orders: usize,
    /// Commands in the stream, the initial build-up of the books included.
    pub commands: usize,
    /// Seed of the pseudo-random generator: the same seed, the same stream.
    pub seed: u64,
}

/// A generated stream, with the books the reference model ends with.
#[derive(Debug, Clone)]
pub struct Workload {
    /// What was asked for.
    pub spec: WorkloadSpec,
    /// The commands, in order.
    pub commands: Vec<StreamCommand>,
    /// The reference model's final book of every market.
    pub final_books: Vec<LevelBook>,
    /// What the stream turned out to hold.
    pub stats: WorkloadStats,
}

/// Counts of what a stream does, as the reference model saw it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct WorkloadStats {
    /// Limit orders placed away from the opposite side.
    pub passive_placements: u64,
    /// Orders placed to trade with the opposite side.
    pub crossing_placements: u64,
    /// Of the crossing ones, how many were immediate-or-cancel.
    pub immediate_or_cancel: u64,
    /// Cancels of resting orders.
    pub cancels: u64,
    /// Cancels that arrived after their order had filled (no-ops).
    pub late_cancels: u64,
    /// Trades the stream caused.
    pub trades: u64,
    /// Resting orders over all markets at the end.
    pub resting_at_end: usize,
    /// Mean number of resting orders after the books were built (the
    /// number at the end, for a stream that is all building).
    pub mean_resting: u64,
}

/// Generates a stream shaped like a busy market: about 50% passive limit
/// orders placed near the best price (the nearer, the likelier), 12%
/// orders that cross the spread (half of them immediate-or-cancel, some
/// sweeping several levels), 38% cancels, sizes 1 to 20, after an opening
/// stretch that builds the books up to `resting_orders`.
///
/// The generator drives the reference model as it goes, so it knows the
/// real best prices and which orders still rest: cancels hit live orders
/// (unless none rests anywhere; then the cancel arrives after the fill, as
/// happens in real markets). To hold the books near their target size the
/// passive share moves between 49% and 51%.
pub fn generate(spec: WorkloadSpec, mut progress: impl FnMut(usize)) -> Workload {
    let mut rng = Pcg64Mcg::seed_from_u64(spec.seed);
    let markets = spec.markets.max(1);
    let per_market = (spec.resting_orders / markets as usize).max(1);
    // How far from the best price passive orders reach, in ticks: deep
    // enough that levels hold tens of orders, as real books do.
    let reach = (per_market as u64 / 8).clamp(4, 2_000);
    // The model holds every market as a size of one product.
    let model_markets = u16::try_from(markets).expect("a stream has at most 65,535 markets");
    let mut model = ReferenceModel::new(model_markets);
    // Orders placed that may still rest, as `(market, id)`: a cancel picks
    // one at random, so busier markets see more cancels.
    let mut live: Vec<(u32, u64)> = Vec::new();
    let mut dead: Vec<u64> = Vec::new();
    let mut events = Vec::new();
    let mut commands = Vec::with_capacity(spec.commands);
    let mut stats = WorkloadStats::default();
    let mut resting_sum = 0u64;
    let mut resting_samples = 0u64;
    let mut next_id = 0u64;
    for index in 0..spec.commands {
        let market = rng.random_range(0..markets);
        let building = index < spec.resting_orders;
        // Nudge the mix a point either way to hold the books at their
        // target size; the counts in the stats are the mix that resulted.
        let passive_share = if model.len() > spec.resting_orders {
            49
        } else {
            51
        };
        let roll = rng.random_range(0..100u32);
        let command = if building || roll < passive_share {
            next_id += 1;
            stats.passive_placements += 1;
            passive(&mut rng, &model, market, next_id, reach)
        } else if roll < passive_share + 12 {
            next_id += 1;
            match crossing(&mut rng, &model, market, next_id) {
                Some(command) => {
                    stats.crossing_placements += 1;
                    if let StreamCommand::Place {
                        immediate_or_cancel: true,
                        ..
                    } = command
                    {
                        stats.immediate_or_cancel += 1;
                    }
                    command
                }
                None => {
                    stats.passive_placements += 1;
                    passive(&mut rng, &model, market, next_id, reach)
                }
            }
        } else {
            stats.cancels += 1;
            let target = live_order(&mut rng, &model, &mut live, &mut dead);
            let (market, order_id) = target.unwrap_or_else(|| {
                stats.late_cancels += 1;
                (market, dead.last().copied().unwrap_or(0))
            });
            StreamCommand::Cancel { market, order_id }
        };
        events.clear();
        // Refusals (cancels of filled orders) are part of the stream.
        let _ = model.execute(to_engine_command(&command, markets), PLACED_AT, &mut events);
        for event in &events {
            if let bidask_engine::Event::Trade(_) = event {
                stats.trades += 1;
            }
        }
        if let StreamCommand::Place { order_id, .. } = command
            && model.contains(OrderId(order_id))
        {
            live.push((market, order_id));
        }
        if !building {
            resting_sum += model.len() as u64;
            resting_samples += 1;
        }
        commands.push(command);
        if index % 65_536 == 0 {
            progress(index);
        }
    }
    progress(spec.commands);
    stats.resting_at_end = model.len();
    stats.mean_resting = resting_sum
        .checked_div(resting_samples)
        .unwrap_or(model.len() as u64);
    let final_books = (0..markets)
        .map(|market| reference_book(&model, market))
        .collect();
    Workload {
        spec,
        commands,
        final_books,
        stats,
    }
}

/// The engine command for a stream command, with the stream's market
/// numbered within its product of `markets_per_product` sizes.
pub fn to_engine_command(command: &StreamCommand, markets_per_product: u32) -> Command {
    match *command {
        StreamCommand::Place {
            market,
            order_id,
            side,
            price,
            quantity,
            immediate_or_cancel,
        } => Command::Place(NewOrder {
            id: OrderId(order_id),
            // Every order has its own trader, so peers without self-trade
            // prevention can replay the same stream.
            user: UserId(order_id),
            market: MarketId(local_market(market, markets_per_product)),
            side: engine_side(side),
            // The generator only makes prices of at least one tick and
            // quantities of 1 to 20; anything else is a bug in it.
            price: Price::from_ticks(price).expect("stream prices are positive"),
            quantity: u32::try_from(quantity)
                .ok()
                .and_then(|units| Quantity::new(units).ok())
                .expect("stream quantities are 1 to 20"),
            time_in_force: if immediate_or_cancel {
                TimeInForce::ImmediateOrCancel
            } else {
                TimeInForce::GoodTillCancelled
            },
            expires_at: EXPIRES_AT,
        }),
        StreamCommand::Cancel { order_id, .. } => Command::Cancel(OrderId(order_id)),
    }
}

/// The market's number within its product.
pub fn local_market(market: u32, markets_per_product: u32) -> u16 {
    u16::try_from(market % markets_per_product.max(1)).unwrap_or(u16::MAX)
}

/// The engine's side for a stream side.
pub fn engine_side(side: StreamSide) -> Side {
    match side {
        StreamSide::Bid => Side::Bid,
        StreamSide::Ask => Side::Ask,
    }
}

/// The reference model numbers a stream's markets as they are, all in one
/// product; `generate` has checked that they fit its `u16`.
fn model_market(market: u32) -> MarketId {
    MarketId(u16::try_from(market).expect("generate checks the market count"))
}

fn reference_book(model: &ReferenceModel, market: u32) -> LevelBook {
    let market = model_market(market);
    let levels = |side| {
        model
            .levels(market, side)
            .iter()
            .map(|level| (level.price.ticks(), level.quantity))
            .collect()
    };
    LevelBook {
        bids: levels(Side::Bid),
        asks: levels(Side::Ask),
    }
}

fn best_ticks(model: &ReferenceModel, market: u32, side: Side) -> Option<u64> {
    let market = model_market(market);
    model.best(market, side).map(|level| level.price.ticks())
}

/// A limit order that does not cross: near the best price of its side,
/// sometimes improving it inside the spread.
fn passive(
    rng: &mut Pcg64Mcg,
    model: &ReferenceModel,
    market: u32,
    order_id: u64,
    reach: u64,
) -> StreamCommand {
    let side = if rng.random_ratio(1, 2) {
        StreamSide::Bid
    } else {
        StreamSide::Ask
    };
    let best_bid = best_ticks(model, market, Side::Bid);
    let best_ask = best_ticks(model, market, Side::Ask);
    // Cubing a uniform draw piles the offsets up near zero: most orders
    // join the best few levels, a few reach deep into the book.
    let draw = rng.random_range(0..1_000u64);
    let offset = reach * draw * draw * draw / 1_000_000_000;
    let improve = rng.random_ratio(1, 10);
    let price = match side {
        StreamSide::Bid => {
            let best = best_bid
                .or(best_ask.map(|ask| ask.saturating_sub(1)))
                .unwrap_or(START_TICKS);
            match best_ask {
                Some(ask) if improve && best + 1 < ask => best + 1,
                _ => best.saturating_sub(offset),
            }
        }
        StreamSide::Ask => {
            let best = best_ask
                .or(best_bid.map(|bid| bid + 1))
                .unwrap_or(START_TICKS + 1);
            match best_bid {
                Some(bid) if improve && best > bid + 1 => best - 1,
                _ => best + offset,
            }
        }
    };
    StreamCommand::Place {
        market,
        order_id,
        side,
        price: price.max(1),
        quantity: rng.random_range(1..=20),
        immediate_or_cancel: false,
    }
}

/// An order that crosses the spread, reaching up to three ticks past the
/// opposite best price; `None` when the opposite side is empty.
fn crossing(
    rng: &mut Pcg64Mcg,
    model: &ReferenceModel,
    market: u32,
    order_id: u64,
) -> Option<StreamCommand> {
    let side = if rng.random_ratio(1, 2) {
        StreamSide::Bid
    } else {
        StreamSide::Ask
    };
    let through = rng.random_range(0..=3u64);
    let price = match side {
        StreamSide::Bid => best_ticks(model, market, Side::Ask)? + through,
        StreamSide::Ask => best_ticks(model, market, Side::Bid)?.saturating_sub(through),
    };
    Some(StreamCommand::Place {
        market,
        order_id,
        side,
        price: price.max(1),
        quantity: rng.random_range(1..=20),
        immediate_or_cancel: rng.random_ratio(1, 2),
    })
}

/// A random order that still rests, with its market, forgetting (and
/// remembering as dead) the ones that have filled since they were placed.
fn live_order(
    rng: &mut Pcg64Mcg,
    model: &ReferenceModel,
    live: &mut Vec<(u32, u64)>,
    dead: &mut Vec<u64>,
) -> Option<(u32, u64)> {
    while !live.is_empty() {
        let position = rng.random_range(0..live.len());
        let (market, id) = live.swap_remove(position);
        if model.contains(OrderId(id)) {
            return Some((market, id));
        }
        if dead.len() >= 1_024 {
            dead.clear();
        }
        dead.push(id);
    }
    None
}
