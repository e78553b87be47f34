//! bidask-engine driven by a benchmark stream, as the server would run it:
//! one engine per product, each holding that product's sizes.

use bidask_engine::{Engine, Event, MarketId, Side};

use crate::peers::{LevelBook, Peer};
use crate::workload::{PLACED_AT, StreamCommand, WorkloadSpec, local_market, to_engine_command};

/// The engines of every product of a stream.
#[derive(Debug)]
pub struct EngineReplay {
    engines: Vec<Engine>,
    markets_per_product: u32,
    /// Reused between commands, as the market actor reuses its buffer.
    events: Vec<Event>,
}

impl EngineReplay {
    /// Empty engines for the stream's markets.
    pub fn new(spec: &WorkloadSpec) -> Self {
        let per_product = spec.markets_per_product.max(1);
        let products = spec.markets.div_ceil(per_product) as usize;
        let sizes = u16::try_from(per_product).unwrap_or(u16::MAX);
        // Not pre-sized: the peers are not either.
        Self {
            engines: (0..products).map(|_| Engine::new(sizes)).collect(),
            markets_per_product: per_product,
            events: Vec::with_capacity(256),
        }
    }

    /// Runs one command and drops its events (as the actor does once it
    /// has handed them to the writer). Refusals, such as cancels of orders
    /// that have filled, are part of the stream.
    #[inline]
    pub fn apply(&mut self, command: &StreamCommand) {
        let market = match *command {
            StreamCommand::Place { market, .. } | StreamCommand::Cancel { market, .. } => market,
        };
        let engine = &mut self.engines[(market / self.markets_per_product) as usize];
        let command = to_engine_command(command, self.markets_per_product);
        let _ = engine.execute(command, PLACED_AT, &mut self.events);
        self.events.clear();
    }

    /// Every market's book, in stream market order.
    pub fn books(&self, markets: u32) -> Vec<LevelBook> {
        (0..markets)
            .map(|market| {
                let engine = &self.engines[(market / self.markets_per_product) as usize];
                let id = MarketId(local_market(market, self.markets_per_product));
                let levels = |side| {
                    engine
                        .depth(id, side, usize::MAX)
                        .map(|level| (level.price.ticks(), level.quantity))
                        .collect()
                };
                LevelBook {
                    bids: levels(Side::Bid),
                    asks: levels(Side::Ask),
                }
            })
            .collect()
    }

    /// Heap bytes the engines' structures hold (their peak: they never shrink).
    pub fn allocated_bytes(&self) -> usize {
        self.engines
            .iter()
            .map(Engine::allocated_bytes)
            .sum::<usize>()
            + self.engines.capacity() * size_of::<Engine>()
    }

    /// Resting orders over all engines.
    pub fn resting_orders(&self) -> usize {
        self.engines.iter().map(Engine::len).sum()
    }
}

/// The engine is measured through the same trait object as the peers, so
/// no one gets inlining the others do not.
impl Peer for EngineReplay {
    fn name(&self) -> &'static str {
        "bidask-engine"
    }

    fn apply(&mut self, command: &StreamCommand) {
        EngineReplay::apply(self, command);
    }

    fn books(&self) -> Vec<LevelBook> {
        let markets = self.engines.len() as u32 * self.markets_per_product;
        EngineReplay::books(self, markets)
    }
}
