//! The engine and the reference model side by side, with the book's
//! invariants checked after every command.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::engine::{Command, Engine};
use crate::event::Event;
use crate::order::{MarketId, OrderId, OrderStatus, Side, TimeInForce, Timestamp, UserId};
use crate::price::Price;

use super::ReferenceModel;

/// How often the harness compares the markets a command did not touch.
const FULL_CHECK_EVERY: u64 = 64;

/// The first way in which the engine disagreed with the model or broke an
/// invariant, with enough context to reproduce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// How many commands had run before the one that diverged.
    pub step: u64,
    /// The command that diverged, or `None` when rebuilding the engine
    /// from its resting orders did.
    pub command: Option<Command>,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.command {
            Some(command) => write!(f, "step {} ({command:?}): {}", self.step, self.what),
            None => write!(f, "step {} (restore): {}", self.step, self.what),
        }
    }
}

impl std::error::Error for Divergence {}

/// Runs every command through the engine and the model and checks, after
/// each one:
/// - both returned the same result and the same events;
/// - both hold the same orders, in the same priority, in every market the
///   command touched (and, every 64 commands or after a refused one, in all);
/// - no market is crossed;
/// - every unit placed is filled, resting, cancelled or expired, exactly once;
/// - every trade is at the maker's resting price, within the taker's limit;
/// - at each price, the oldest resting order trades first;
/// - no user trades with themself, and a fill-or-kill order trades all or nothing.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The engine under test.
    engine: Engine,
    /// What the engine must agree with.
    model: ReferenceModel,
    /// A third, event-only account of the live orders.
    ledger: Ledger,
    /// Commands run so far, to say where a divergence happened.
    steps: u64,
    /// Reused event buffers, one per side.
    engine_events: Vec<Event>,
    model_events: Vec<Event>,
}

/// What the events say about every live order, kept independently of both books.
#[derive(Debug, Clone, Default)]
struct Ledger {
    /// What the events say about each live order.
    orders: HashMap<OrderId, LedgerEntry>,
    /// Units of all orders placed, counting amendments of their quantity.
    placed: u64,
    /// Units filled, counted once per order (so twice per trade).
    filled: u64,
    /// Units that left the book in a cancellation.
    cancelled: u64,
    /// Units that left the book by expiring.
    expired: u64,
    /// Hands out queue positions: a larger number joined its level later.
    arrivals: u64,
    /// `(arrival, id)` of the live orders at each `(market, side, price)`.
    queues: HashMap<(MarketId, Side, Price), BTreeSet<(u64, OrderId)>>,
}

#[derive(Debug, Clone, Copy)]
struct LedgerEntry {
    /// Where the order is and who owns it, as accepted or amended.
    user: UserId,
    market: MarketId,
    side: Side,
    price: Price,
    /// Total and unfilled units.
    quantity: u32,
    remaining: u32,
    /// When the order joined (or rejoined) its level's queue.
    arrival: u64,
    /// A fill-or-kill order must trade all of its quantity or none of it.
    fill_or_kill: bool,
}

impl Harness {
    /// Empty books for a product with `markets` sizes.
    pub fn new(markets: u16) -> Self {
        Self {
            engine: Engine::new(markets),
            model: ReferenceModel::new(markets),
            ledger: Ledger::default(),
            steps: 0,
            engine_events: Vec::new(),
            model_events: Vec::new(),
        }
    }

    /// Rebuilds the engine from its own resting orders, as a restart
    /// would from the database, and checks that nothing changed: the
    /// commands after it then show that the rebuilt books also behave the same.
    pub fn restore(&mut self) -> Result<(), Divergence> {
        let markets = self.engine.markets();
        let resting: Vec<_> = (0..markets)
            .map(MarketId)
            .flat_map(|market| [(market, Side::Bid), (market, Side::Ask)])
            .flat_map(|(market, side)| self.engine.resting_orders(market, side))
            .collect();
        let diverge = |what: String| Divergence {
            step: self.steps,
            command: None,
            what,
        };
        self.engine = Engine::restore(markets, resting).map_err(|error| {
            diverge(format!("restoring the engine's own orders failed: {error}"))
        })?;
        self.check_books(|_| true).map_err(diverge)
    }

    /// Runs one command at `now` through both and checks everything.
    pub fn step(&mut self, command: Command, now: Timestamp) -> Result<(), Divergence> {
        self.engine_events.clear();
        self.model_events.clear();
        let engine_result = self.engine.execute(command, now, &mut self.engine_events);
        let model_result = self.model.execute(command, now, &mut self.model_events);
        let diverge = |what: String| Divergence {
            step: self.steps,
            command: Some(command),
            what,
        };
        if engine_result != model_result {
            return Err(diverge(format!(
                "engine returned {engine_result:?}, model {model_result:?}"
            )));
        }
        if engine_result.is_err() && !self.engine_events.is_empty() {
            return Err(diverge(format!(
                "a refused command emitted {:?}",
                self.engine_events
            )));
        }
        if self.engine_events != self.model_events {
            return Err(diverge(format!(
                "events differ:\n engine {:?}\n model  {:?}",
                self.engine_events, self.model_events
            )));
        }
        for event in &self.engine_events {
            self.ledger.record(event).map_err(&diverge)?;
        }
        // A refused command must have changed nothing anywhere.
        let full = self.steps.is_multiple_of(FULL_CHECK_EVERY) || engine_result.is_err();
        let events = &self.engine_events;
        let touched = |market: MarketId| {
            full || command_market(&command) == Some(market)
                || events.iter().any(|event| event_market(event) == market)
        };
        self.check_books(touched).map_err(&diverge)?;
        self.steps += 1;
        Ok(())
    }

    /// Checks the invariants in every market and compares, order by order,
    /// the books of the markets `compare` picks with the model's and the ledger's.
    fn check_books(&self, compare: impl Fn(MarketId) -> bool) -> Result<(), String> {
        let mut resting_units = 0u64;
        for market in (0..self.engine.markets()).map(MarketId) {
            for side in [Side::Bid, Side::Ask] {
                let levels = self.engine.depth(market, side, usize::MAX);
                resting_units += levels.map(|level| level.quantity).sum::<u64>();
                if compare(market) {
                    self.compare_book(market, side)?;
                }
            }
            let bid = self.engine.best_bid(market);
            let ask = self.engine.best_ask(market);
            if let (Some(bid), Some(ask)) = (bid, ask)
                && bid.price >= ask.price
            {
                return Err(format!(
                    "market {} is crossed: {bid:?} >= {ask:?}",
                    market.0
                ));
            }
        }
        // The server sleeps until `next_expiry`: it may wake early (for an
        // order that has since left), never late.
        if let Some(due) = self.model.next_expiry()
            && self.engine.next_expiry().is_none_or(|at| at > due)
        {
            return Err(format!(
                "the engine's next expiry is {:?}, after {due:?}, when a resting order expires",
                self.engine.next_expiry()
            ));
        }
        let ledger = &self.ledger;
        if self.engine.len() != self.model.len() || self.engine.len() != ledger.orders.len() {
            return Err(format!(
                "{} orders resting in the engine, {} in the model, {} in the ledger",
                self.engine.len(),
                self.model.len(),
                ledger.orders.len()
            ));
        }
        let accounted = ledger.filled + resting_units + ledger.cancelled + ledger.expired;
        if ledger.placed != accounted {
            return Err(format!(
                "quantity not conserved: placed {} != filled {} + resting {resting_units} + cancelled {} + expired {}",
                ledger.placed, ledger.filled, ledger.cancelled, ledger.expired
            ));
        }
        Ok(())
    }

    fn compare_book(&self, market: MarketId, side: Side) -> Result<(), String> {
        let engine = self.engine.resting_orders(market, side);
        if !engine.eq(self.model.resting_orders(market, side)) {
            let engine: Vec<_> = self.engine.resting_orders(market, side).collect();
            let model: Vec<_> = self.model.resting_orders(market, side).collect();
            return Err(format!(
                "{side:?} book of market {} differs:\n engine {engine:?}\n model  {model:?}",
                market.0
            ));
        }
        for order in self.engine.resting_orders(market, side) {
            let entry = self.ledger.orders.get(&order.id);
            if entry.map(|entry| entry.remaining) != Some(order.remaining) {
                return Err(format!(
                    "resting {order:?} disagrees with the ledger {entry:?}"
                ));
            }
        }
        Ok(())
    }
}

impl Ledger {
    fn record(&mut self, event: &Event) -> Result<(), String> {
        match *event {
            Event::Accepted(order) => {
                self.placed += u64::from(order.quantity.units());
                self.arrivals += 1;
                let entry = LedgerEntry {
                    user: order.user,
                    market: order.market,
                    side: order.side,
                    price: order.price,
                    quantity: order.quantity.units(),
                    remaining: order.quantity.units(),
                    arrival: self.arrivals,
                    fill_or_kill: order.time_in_force == TimeInForce::FillOrKill,
                };
                if self.orders.insert(order.id, entry).is_some() {
                    return Err(format!("order {} accepted twice", order.id.0));
                }
                self.enqueue(order.id, entry);
            }
            Event::Amended(amended) => {
                self.arrivals += 1;
                let arrivals = self.arrivals;
                let entry = self.entry(amended.order)?;
                let before = *entry;
                let quantity = amended.quantity.units();
                let (old_quantity, old_remaining) = (entry.quantity, entry.remaining);
                entry.price = amended.price;
                entry.quantity = quantity;
                entry.remaining = amended.remaining;
                if amended.requeued {
                    entry.arrival = arrivals;
                } else if amended.price != before.price {
                    return Err(format!("a new price kept its queue position: {amended:?}"));
                }
                let after = *entry;
                self.dequeue(amended.order, before);
                self.enqueue(amended.order, after);
                if old_quantity - old_remaining != quantity - amended.remaining {
                    return Err(format!("amendment changed the filled units: {amended:?}"));
                }
                self.placed = self.placed - u64::from(old_quantity) + u64::from(quantity);
            }
            Event::Trade(trade) => {
                let maker = *self.entry(trade.maker_order)?;
                let taker = *self.entry(trade.taker_order)?;
                if trade.price != maker.price {
                    return Err(format!(
                        "{trade:?} is not at the maker's price {:?}",
                        maker.price
                    ));
                }
                // Compared here without the engine's `Side::crosses`, so a
                // mistake there cannot hide.
                let within_limit = match taker.side {
                    Side::Bid => trade.price <= taker.price,
                    Side::Ask => trade.price >= taker.price,
                };
                if !within_limit {
                    return Err(format!(
                        "{trade:?} is outside the taker's limit {:?}",
                        taker.price
                    ));
                }
                if maker.side == taker.side || trade.taker_side != taker.side {
                    return Err(format!("{trade:?} does not pair a bid with an ask"));
                }
                if trade.market != maker.market || trade.market != taker.market {
                    return Err(format!("{trade:?} crosses markets"));
                }
                if maker.user == taker.user
                    || trade.maker_user != maker.user
                    || trade.taker_user != taker.user
                {
                    return Err(format!(
                        "{trade:?} trades a user with themself or names the wrong users"
                    ));
                }
                let oldest = self
                    .queues
                    .get(&(maker.market, maker.side, maker.price))
                    .and_then(BTreeSet::first);
                if oldest != Some(&(maker.arrival, trade.maker_order)) {
                    return Err(format!(
                        "{trade:?} is not with the oldest order at its price {oldest:?}"
                    ));
                }
                for id in [trade.maker_order, trade.taker_order] {
                    let entry = self.entry(id)?;
                    entry.remaining = entry
                        .remaining
                        .checked_sub(trade.quantity)
                        .ok_or_else(|| format!("{trade:?} overfills order {}", id.0))?;
                }
                self.filled += 2 * u64::from(trade.quantity);
            }
            Event::OrderUpdated(update) => {
                let entry = *self.entry(update.order)?;
                match update.status {
                    OrderStatus::Filled if entry.remaining != 0 => {
                        return Err(format!("{update:?} but {} units remain", entry.remaining));
                    }
                    OrderStatus::PartiallyFilled | OrderStatus::Open
                        if entry.remaining != update.remaining =>
                    {
                        return Err(format!("{update:?} but {} units remain", entry.remaining));
                    }
                    OrderStatus::Cancelled(_) => self.cancelled += u64::from(entry.remaining),
                    OrderStatus::Expired => self.expired += u64::from(entry.remaining),
                    _ => {}
                }
                if entry.fill_or_kill
                    && matches!(update.status, OrderStatus::Cancelled(_))
                    && entry.remaining != entry.quantity
                {
                    return Err(format!(
                        "fill-or-kill {update:?} traded part of its quantity"
                    ));
                }
                if !update.status.is_resting() && update.remaining != 0 {
                    return Err(format!("{update:?} left the book with units remaining"));
                }
                if !update.status.is_resting() {
                    self.orders.remove(&update.order);
                    self.dequeue(update.order, entry);
                }
            }
            Event::LevelChanged(_) => {}
        }
        Ok(())
    }

    fn enqueue(&mut self, id: OrderId, entry: LedgerEntry) {
        let key = (entry.market, entry.side, entry.price);
        self.queues
            .entry(key)
            .or_default()
            .insert((entry.arrival, id));
    }

    fn dequeue(&mut self, id: OrderId, entry: LedgerEntry) {
        let key = (entry.market, entry.side, entry.price);
        if let Some(queue) = self.queues.get_mut(&key) {
            queue.remove(&(entry.arrival, id));
            if queue.is_empty() {
                self.queues.remove(&key);
            }
        }
    }

    fn entry(&mut self, id: OrderId) -> Result<&mut LedgerEntry, String> {
        self.orders
            .get_mut(&id)
            .ok_or_else(|| format!("event names order {} that is not live", id.0))
    }
}

fn command_market(command: &Command) -> Option<MarketId> {
    match command {
        Command::Place(order) => Some(order.market),
        _ => None,
    }
}

fn event_market(event: &Event) -> MarketId {
    match event {
        Event::Accepted(order) => order.market,
        Event::Amended(amended) => amended.market,
        Event::Trade(trade) => trade.market,
        Event::OrderUpdated(update) => update.market,
        Event::LevelChanged(change) => change.market,
    }
}
