//! A deliberately simple model of the matching rules, to check the engine
//! (and other order books) against.
//!
//! It is the textbook order book: a `BTreeMap` from `(market, side, price)`
//! to a `VecDeque` of orders, oldest first (with their total), a `HashMap`
//! from id to where an order rests, and a `BTreeSet` of expiry times. It shares nothing with the
//! engine's ladders, arenas and intrusive queues, so agreement between the two
//! means the engine's structures are right. It emits the same events, in the
//! order the engine documents, and is fast enough (O(log n) to find a level,
//! O(orders at that price) to find an order in it) to replay the
//! benchmark's ten-million-command streams. Its fill-or-kill check walks
//! the makers as the engine's does; if the two ever disagreed with matching,
//! the model would report the order as killed and the harness would see it.
//!
//! [`Harness`] runs the engine and the model side by side and checks the
//! book's invariants after every command.

mod harness;

pub use harness::{Divergence, Harness};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::engine::Command;
use crate::error::EngineError;
use crate::event::{Amended, Event, LevelChange, LevelView, OrderUpdate, Trade};
use crate::order::{
    CancelReason, MarketId, NewOrder, OrderId, OrderStatus, RestingOrder, Side, TimeInForce,
    Timestamp,
};
use crate::price::{Price, Quantity};

/// `(market, side as 0 for bids and 1 for asks, price)`: the key of a level.
type LevelKey = (MarketId, u8, Price);

/// The reference order books of one product.
#[derive(Debug, Clone, Default)]
pub struct ReferenceModel {
    markets: u16,
    /// Every price level of every market, its orders oldest first.
    levels: BTreeMap<LevelKey, Queue>,
    /// Where each resting order is.
    locations: HashMap<OrderId, LevelKey>,
    /// `(expires_at, id)` of every resting order.
    expiries: BTreeSet<(Timestamp, OrderId)>,
}

/// The orders at one price, oldest first, and their remaining units (kept
/// so that reading a level does not walk it).
#[derive(Debug, Clone, Default)]
struct Queue {
    orders: VecDeque<RestingOrder>,
    units: u64,
}

fn level_key(market: MarketId, side: Side, price: Price) -> LevelKey {
    let side = match side {
        Side::Bid => 0,
        Side::Ask => 1,
    };
    (market, side, price)
}

impl ReferenceModel {
    /// An empty model of a product with `markets` sizes.
    pub fn new(markets: u16) -> Self {
        Self {
            markets,
            ..Self::default()
        }
    }

    /// Carries out `command` at `now`, appending its events.
    pub fn execute(
        &mut self,
        command: Command,
        now: Timestamp,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        match command {
            Command::Place(order) => self.place(order, now, events),
            Command::Cancel(id) => self.cancel(id, events),
            Command::Amend {
                id,
                price,
                quantity,
            } => self.amend(id, price, quantity, events),
            Command::Expire => {
                self.expire(now, events);
                Ok(())
            }
        }
    }

    /// Places an order (see [`crate::Engine::place`]).
    pub fn place(
        &mut self,
        order: NewOrder,
        now: Timestamp,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        if order.market.0 >= self.markets {
            return Err(EngineError::UnknownMarket(order.market));
        }
        if self.locations.contains_key(&order.id) {
            return Err(EngineError::DuplicateOrder(order.id));
        }
        if order.time_in_force == TimeInForce::GoodTillCancelled && order.expires_at <= now {
            return Err(EngineError::AlreadyExpired);
        }
        events.push(Event::Accepted(order));
        let incoming = RestingOrder {
            id: order.id,
            user: order.user,
            market: order.market,
            side: order.side,
            price: order.price,
            quantity: order.quantity,
            remaining: order.quantity.units(),
            expires_at: order.expires_at,
        };
        if order.time_in_force == TimeInForce::FillOrKill
            && let Some(reason) = self.fill_or_kill_obstacle(&incoming)
        {
            events.push(update(&incoming, OrderStatus::Cancelled(reason), 0));
            return Ok(());
        }
        self.match_and_rest(incoming, order.time_in_force, true, events);
        Ok(())
    }

    /// Cancels a resting order (see [`crate::Engine::cancel`]).
    pub fn cancel(&mut self, id: OrderId, events: &mut Vec<Event>) -> Result<(), EngineError> {
        let order = self.take_out(id).ok_or(EngineError::UnknownOrder(id))?;
        self.expiries.remove(&(order.expires_at, order.id));
        let status = OrderStatus::Cancelled(CancelReason::Requested);
        events.push(update(&order, status, 0));
        events.push(self.level_changed(order.market, order.side, order.price));
        Ok(())
    }

    /// Amends a resting order (see [`crate::Engine::amend`]).
    pub fn amend(
        &mut self,
        id: OrderId,
        price: Option<Price>,
        quantity: Option<Quantity>,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let order = self.order(id).ok_or(EngineError::UnknownOrder(id))?;
        let new_price = price.unwrap_or(order.price);
        let new_quantity = quantity.unwrap_or(order.quantity);
        let filled = order.quantity.units() - order.remaining;
        if new_quantity.units() <= filled {
            return Err(EngineError::QuantityNotAboveFilled { filled });
        }
        if new_price == order.price && new_quantity == order.quantity {
            return Ok(());
        }
        let amended = RestingOrder {
            price: new_price,
            quantity: new_quantity,
            remaining: new_quantity.units() - filled,
            ..order
        };
        let keeps_priority = new_price == order.price && new_quantity < order.quantity;
        events.push(Event::Amended(Amended {
            order: id,
            user: order.user,
            market: order.market,
            side: order.side,
            price: new_price,
            quantity: new_quantity,
            remaining: amended.remaining,
            requeued: !keeps_priority,
        }));
        if keeps_priority {
            let key = level_key(order.market, order.side, order.price);
            if let Some(queue) = self.levels.get_mut(&key)
                && let Some(slot) = queue.orders.iter_mut().find(|queued| queued.id == id)
            {
                queue.units -= u64::from(slot.remaining);
                queue.units += u64::from(amended.remaining);
                *slot = amended;
            }
            events.push(self.level_changed(order.market, order.side, order.price));
            return Ok(());
        }
        self.take_out(id);
        events.push(self.level_changed(order.market, order.side, order.price));
        // The order keeps its expiry, so its entry in `expiries` stays.
        self.match_and_rest(amended, TimeInForce::GoodTillCancelled, false, events);
        Ok(())
    }

    /// Expires every order with `expires_at <= now`, earliest (then lowest
    /// id) first, and returns how many.
    pub fn expire(&mut self, now: Timestamp, events: &mut Vec<Event>) -> usize {
        let mut expired = 0;
        while let Some(&(expires_at, id)) = self.expiries.first() {
            if expires_at > now {
                break;
            }
            self.expiries.pop_first();
            if let Some(order) = self.take_out(id) {
                events.push(update(&order, OrderStatus::Expired, 0));
                events.push(self.level_changed(order.market, order.side, order.price));
                expired += 1;
            }
        }
        expired
    }

    /// The best level of one side of a market.
    pub fn best(&self, market: MarketId, side: Side) -> Option<LevelView> {
        let mut levels = self.side_levels(market, side);
        let best = match side {
            Side::Bid => levels.next_back(),
            Side::Ask => levels.next(),
        };
        best.map(|(&(_, _, price), queue)| view(price, queue))
    }

    /// Whether an order with this id rests.
    pub fn contains(&self, id: OrderId) -> bool {
        self.locations.contains_key(&id)
    }

    /// One resting order.
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        let key = self.locations.get(&id)?;
        self.levels
            .get(key)?
            .orders
            .iter()
            .find(|order| order.id == id)
            .copied()
    }

    /// Every resting order of one side of a market, best price first, oldest first.
    pub fn resting_orders(
        &self,
        market: MarketId,
        side: Side,
    ) -> impl Iterator<Item = RestingOrder> + '_ {
        self.levels_best_first(market, side)
            .flat_map(|(_, queue)| queue.orders.iter().copied())
    }

    /// Every level of one side of a market, best first.
    pub fn levels(&self, market: MarketId, side: Side) -> Vec<LevelView> {
        self.levels_best_first(market, side)
            .map(|(&(_, _, price), queue)| view(price, queue))
            .collect()
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.locations.len()
    }

    /// Whether nothing rests.
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// When the earliest resting order expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.first().map(|&(at, _)| at)
    }

    fn levels_best_first(
        &self,
        market: MarketId,
        side: Side,
    ) -> Box<dyn Iterator<Item = (&LevelKey, &Queue)> + '_> {
        let range = self.side_levels(market, side);
        match side {
            Side::Bid => Box::new(range.rev()),
            Side::Ask => Box::new(range),
        }
    }

    /// The levels of one side of a market, lowest price first.
    fn side_levels(
        &self,
        market: MarketId,
        side: Side,
    ) -> std::collections::btree_map::Range<'_, LevelKey, Queue> {
        let lowest = Price::from_ticks(1).unwrap_or_else(|| unreachable!("1 is not zero"));
        let highest = Price::from_ticks(u64::MAX).unwrap_or_else(|| unreachable!("not zero"));
        self.levels
            .range(level_key(market, side, lowest)..=level_key(market, side, highest))
    }

    /// Removes a resting order from its level (and the level if it empties).
    fn take_out(&mut self, id: OrderId) -> Option<RestingOrder> {
        let key = self.locations.remove(&id)?;
        let queue = self.levels.get_mut(&key)?;
        let position = queue.orders.iter().position(|order| order.id == id)?;
        let order = queue.orders.remove(position)?;
        queue.units -= u64::from(order.remaining);
        if queue.orders.is_empty() {
            self.levels.remove(&key);
        }
        Some(order)
    }

    fn fill_or_kill_obstacle(&self, taker: &RestingOrder) -> Option<CancelReason> {
        let mut available = 0;
        let crossing = self
            .resting_orders(taker.market, taker.side.opposite())
            .take_while(|maker| taker.side.crosses(taker.price, maker.price));
        for maker in crossing {
            if maker.user == taker.user {
                return Some(CancelReason::SelfTrade);
            }
            available += maker.remaining;
            if available >= taker.remaining {
                return None;
            }
        }
        Some(CancelReason::FillOrKill)
    }

    /// Trades `taker` against the book while it crosses, then rests or
    /// cancels what is left according to `time_in_force`.
    fn match_and_rest(
        &mut self,
        mut taker: RestingOrder,
        time_in_force: TimeInForce,
        new_expiry: bool,
        events: &mut Vec<Event>,
    ) {
        let makers_side = taker.side.opposite();
        let start = taker.remaining;
        let mut self_trade = false;
        while taker.remaining > 0 && !self_trade {
            let Some(best) = self.best(taker.market, makers_side) else {
                break;
            };
            if !taker.side.crosses(taker.price, best.price) {
                break;
            }
            let key = level_key(taker.market, makers_side, best.price);
            let mut traded_here = false;
            while taker.remaining > 0 {
                let Some(queue) = self.levels.get_mut(&key) else {
                    break;
                };
                let Some(maker) = queue.orders.front_mut() else {
                    break;
                };
                if maker.user == taker.user {
                    self_trade = true;
                    break;
                }
                let quantity = taker.remaining.min(maker.remaining);
                taker.remaining -= quantity;
                maker.remaining -= quantity;
                queue.units -= u64::from(quantity);
                traded_here = true;
                let maker = *maker;
                events.push(Event::Trade(Trade {
                    market: taker.market,
                    price: best.price,
                    quantity,
                    maker_order: maker.id,
                    maker_user: maker.user,
                    taker_order: taker.id,
                    taker_user: taker.user,
                    taker_side: taker.side,
                }));
                if maker.remaining == 0 {
                    self.take_out(maker.id);
                    self.expiries.remove(&(maker.expires_at, maker.id));
                    events.push(update(&maker, OrderStatus::Filled, 0));
                } else {
                    let status = OrderStatus::PartiallyFilled;
                    events.push(update(&maker, status, maker.remaining));
                }
            }
            if !traded_here {
                break;
            }
            events.push(self.level_changed(taker.market, makers_side, best.price));
        }
        if taker.remaining == 0 {
            self.expiries.remove(&(taker.expires_at, taker.id));
            events.push(update(&taker, OrderStatus::Filled, 0));
        } else if self_trade {
            self.expiries.remove(&(taker.expires_at, taker.id));
            let status = OrderStatus::Cancelled(CancelReason::SelfTrade);
            events.push(update(&taker, status, 0));
        } else if time_in_force == TimeInForce::GoodTillCancelled {
            if taker.remaining < start {
                let status = OrderStatus::PartiallyFilled;
                events.push(update(&taker, status, taker.remaining));
            }
            let key = level_key(taker.market, taker.side, taker.price);
            let queue = self.levels.entry(key).or_default();
            queue.orders.push_back(taker);
            queue.units += u64::from(taker.remaining);
            self.locations.insert(taker.id, key);
            if new_expiry {
                self.expiries.insert((taker.expires_at, taker.id));
            }
            events.push(self.level_changed(taker.market, taker.side, taker.price));
        } else {
            let reason = match time_in_force {
                TimeInForce::FillOrKill => CancelReason::FillOrKill,
                _ => CancelReason::ImmediateOrCancel,
            };
            events.push(update(&taker, OrderStatus::Cancelled(reason), 0));
        }
    }

    fn level_changed(&self, market: MarketId, side: Side, price: Price) -> Event {
        let (quantity, orders) = self
            .levels
            .get(&level_key(market, side, price))
            .map(|queue| {
                let level = view(price, queue);
                (level.quantity, level.orders)
            })
            .unwrap_or((0, 0));
        Event::LevelChanged(LevelChange {
            market,
            side,
            price,
            quantity,
            orders,
            best: self.best(market, side),
        })
    }
}

fn view(price: Price, queue: &Queue) -> LevelView {
    LevelView {
        price,
        quantity: queue.units,
        orders: u32::try_from(queue.orders.len()).unwrap_or(u32::MAX),
    }
}

fn update(order: &RestingOrder, status: OrderStatus, remaining: u32) -> Event {
    Event::OrderUpdated(OrderUpdate {
        order: order.id,
        user: order.user,
        market: order.market,
        side: order.side,
        status,
        remaining,
    })
}
