//! The engine: one product's markets, its orders, and the commands on them.

use hashbrown::HashTable;

use crate::arena::Arena;
use crate::book::{Book, Level, NIL, fx_hash, sort_key};
use crate::error::EngineError;
use crate::event::{Amended, Event, LevelChange, LevelView, OrderUpdate, Trade};
use crate::expiry::{Entry, ExpiryQueue};
use crate::order::{
    CancelReason, MarketId, NewOrder, OrderId, OrderStatus, RestingOrder, Side, TimeInForce,
    Timestamp, UserId,
};
use crate::price::{Price, Quantity};

/// A command, for callers that queue or replay them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// See [`Engine::place`].
    Place(NewOrder),
    /// See [`Engine::cancel`].
    Cancel(OrderId),
    /// See [`Engine::amend`].
    Amend {
        /// The resting order to change.
        id: OrderId,
        /// The new limit price, if it changes.
        price: Option<Price>,
        /// The new total quantity, if it changes.
        quantity: Option<Quantity>,
    },
    /// See [`Engine::expire`].
    Expire,
}

/// The books of every size of one product.
///
/// Orders live in one arena, each linked into its price level's queue; the
/// hot part of an order (what matching and cancelling touch) is 32 bytes,
/// its cold terms (expiry, total quantity) sit in a parallel vector, and
/// its price, market and side are its level's. An index of arena keys,
/// hashed by order id, gives O(1) cancel; an expiry queue (a sorted deque
/// for the usual increasing expiry times, a heap for the rest) gives the
/// next order to expire in O(1) (entries of orders that left early are
/// skipped when they surface, and pruned once they could outnumber the
/// live ones). In steady state nothing is allocated per command: arena
/// slots, levels and map buckets are reused, and events go into a vector
/// the caller keeps.
#[derive(Debug, Clone)]
pub struct Engine {
    /// One book per size.
    books: Vec<Book>,
    /// Every price level of every book.
    levels: Arena<Level>,
    /// Every resting order: the part matching touches.
    orders: Arena<Node>,
    /// The rest of every resting order, by the same key as `orders`.
    terms: Vec<Terms>,
    /// Arena keys of the resting orders, hashed by order id (the id itself
    /// is read from the order, so an entry is four bytes).
    index: HashTable<u32>,
    /// When each resting order expires (with dead entries of orders that
    /// left early, skipped when they surface).
    expiries: ExpiryQueue,
    /// Per arena slot, how many times it has been freed: an expiry entry
    /// is live while its slot's generation is the one it recorded.
    generations: Vec<u32>,
}

/// What matching and cancelling read of a resting order: two to a cache line.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Node {
    id: OrderId,
    user: UserId,
    /// Still for trade; at least 1 while the order rests.
    remaining: u32,
    /// Neighbours in the level's queue (arena keys, [`NIL`] at the ends).
    prev: u32,
    /// The order behind this one: the next to trade at this price.
    next: u32,
    /// Arena key of the level the order rests in.
    level: u32,
}

/// What only amendments, expiry and queries read of a resting order.
#[derive(Debug, Clone, Copy)]
struct Terms {
    /// When the order leaves the book; also checked when an expiry entry surfaces.
    expires_at: Timestamp,
    /// The total quantity, filled part included, as amended: what an
    /// amendment's new quantity is measured against.
    quantity: Quantity,
}

/// The part of an incoming order that matching needs.
#[derive(Debug, Clone, Copy)]
struct Taker {
    id: OrderId,
    user: UserId,
    market: MarketId,
    side: Side,
    limit: Price,
}

/// How matching ended for the taker.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// What the taker has left after matching.
    remaining: u32,
    /// Matching stopped at one of the taker's own resting orders.
    self_trade: bool,
}

impl Engine {
    /// An empty engine for a product with `markets` sizes.
    pub fn new(markets: u16) -> Self {
        Self::with_capacity(markets, 0)
    }

    /// An empty engine with room for `orders` resting orders before it
    /// allocates.
    pub fn with_capacity(markets: u16, orders: usize) -> Self {
        Self {
            books: vec![Book::default(); usize::from(markets)],
            levels: Arena::with_capacity(orders.min(1 << 16)),
            orders: Arena::with_capacity(orders),
            terms: Vec::with_capacity(orders),
            index: HashTable::with_capacity(orders),
            expiries: ExpiryQueue::with_capacity(orders),
            generations: Vec::with_capacity(orders),
        }
    }

    /// Rebuilds an engine from resting orders listed in their original
    /// priority (per level, oldest first), giving exactly the books they
    /// formed. Fails if the list could not have been a book.
    pub fn restore(
        markets: u16,
        orders: impl IntoIterator<Item = RestingOrder>,
    ) -> Result<Self, EngineError> {
        let mut engine = Self::new(markets);
        for order in orders {
            let market = engine.market(order.market)?;
            if engine.key_of(order.id).is_some() {
                return Err(EngineError::DuplicateOrder(order.id));
            }
            if order.remaining == 0 || order.remaining > order.quantity.units() {
                return Err(EngineError::InvalidRemaining(order.id));
            }
            let opposite = engine.books[market].side(order.side.opposite()).best();
            if let Some(level) = opposite
                && order.side.crosses(order.price, engine.levels[level].price)
            {
                return Err(EngineError::RestoreCrossed(order.id));
            }
            engine.rest(market, order);
        }
        Ok(engine)
    }

    /// Carries out `command` at time `now`, appending what it caused to `events`.
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

    /// Places an order at time `now`: it trades with the opposite side at
    /// the resting prices while it crosses, then its remainder rests
    /// (good-till-cancelled) or is cancelled (immediate-or-cancel); a
    /// fill-or-kill order trades its whole quantity or nothing.
    ///
    /// The engine does not expire orders on its own: the caller runs
    /// [`Engine::expire`] with the same `now` first, as the market actor does.
    pub fn place(
        &mut self,
        order: NewOrder,
        now: Timestamp,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let market = self.market(order.market)?;
        if self.key_of(order.id).is_some() {
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
        let taker = Taker {
            id: order.id,
            user: order.user,
            market: order.market,
            side: order.side,
            limit: order.price,
        };
        let quantity = order.quantity.units();
        if order.time_in_force == TimeInForce::FillOrKill
            && let Some(reason) = self.fill_or_kill_obstacle(market, taker, quantity)
        {
            events.push(update(&incoming, OrderStatus::Cancelled(reason), 0));
            return Ok(());
        }
        let outcome = self.take(market, taker, quantity, events);
        if outcome.remaining == 0 {
            events.push(update(&incoming, OrderStatus::Filled, 0));
        } else if outcome.self_trade {
            let status = OrderStatus::Cancelled(CancelReason::SelfTrade);
            events.push(update(&incoming, status, 0));
        } else {
            match order.time_in_force {
                TimeInForce::GoodTillCancelled => {
                    if outcome.remaining < quantity {
                        let status = OrderStatus::PartiallyFilled;
                        events.push(update(&incoming, status, outcome.remaining));
                    }
                    let resting = RestingOrder {
                        remaining: outcome.remaining,
                        ..incoming
                    };
                    let change = self.rest(market, resting);
                    events.push(Event::LevelChanged(change));
                }
                TimeInForce::ImmediateOrCancel => {
                    let status = OrderStatus::Cancelled(CancelReason::ImmediateOrCancel);
                    events.push(update(&incoming, status, 0));
                }
                TimeInForce::FillOrKill => {
                    // The pre-check found enough to fill it, and matching
                    // walks the same orders, so it cannot end up here.
                    debug_assert!(false, "fill-or-kill order {:?} partly filled", order.id);
                    let status = OrderStatus::Cancelled(CancelReason::FillOrKill);
                    events.push(update(&incoming, status, 0));
                }
            }
        }
        Ok(())
    }

    /// Cancels a resting order at its owner's request.
    pub fn cancel(&mut self, id: OrderId, events: &mut Vec<Event>) -> Result<(), EngineError> {
        let key = self.unindex(id).ok_or(EngineError::UnknownOrder(id))?;
        let (order, change) = self.detach(key);
        let status = OrderStatus::Cancelled(CancelReason::Requested);
        events.push(update(&order, status, 0));
        events.push(Event::LevelChanged(change));
        Ok(())
    }

    /// Changes a resting order's price and/or total quantity.
    ///
    /// A smaller quantity at the same price keeps the order's place in its
    /// queue. A new price or a larger quantity is a cancel and replace: the
    /// order (same id) goes through matching again as a taker and rests at
    /// the back of its new level. The new quantity counts what has already
    /// filled, so it must exceed that. Asking for what the order already is
    /// changes nothing and emits nothing.
    ///
    /// Like [`Engine::place`], amending does not look at the clock: the
    /// caller runs [`Engine::expire`] first, so an order past its expiry is
    /// gone (and the amendment refused as `UnknownOrder`) before it could
    /// trade again.
    pub fn amend(
        &mut self,
        id: OrderId,
        price: Option<Price>,
        quantity: Option<Quantity>,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let key = self.key_of(id).ok_or(EngineError::UnknownOrder(id))?;
        let node = self.resting(key);
        let new_price = price.unwrap_or(node.price);
        let new_quantity = quantity.unwrap_or(node.quantity);
        let filled = node.quantity.units() - node.remaining;
        if new_quantity.units() <= filled {
            return Err(EngineError::QuantityNotAboveFilled { filled });
        }
        if new_price == node.price && new_quantity == node.quantity {
            return Ok(());
        }
        let remaining = new_quantity.units() - filled;
        let market = usize::from(node.market.0);
        let requeued = new_price != node.price || new_quantity > node.quantity;
        events.push(Event::Amended(Amended {
            order: id,
            user: node.user,
            market: node.market,
            side: node.side,
            price: new_price,
            quantity: new_quantity,
            remaining,
            requeued,
        }));
        if !requeued {
            let shrink = u64::from(node.remaining - remaining);
            let slot = &mut self.orders[key];
            slot.remaining = remaining;
            let level_key = slot.level;
            self.terms[key as usize].quantity = new_quantity;
            self.levels[level_key].quantity -= shrink;
            let change = self.level_change(market, node.market, node.side, level_key);
            events.push(Event::LevelChanged(change));
            return Ok(());
        }
        self.unindex(id);
        let (_, change) = self.detach(key);
        events.push(Event::LevelChanged(change));
        let taker = Taker {
            id,
            user: node.user,
            market: node.market,
            side: node.side,
            limit: new_price,
        };
        let outcome = self.take(market, taker, remaining, events);
        let replaced = RestingOrder {
            price: new_price,
            quantity: new_quantity,
            ..node
        };
        if outcome.remaining == 0 {
            events.push(update(&replaced, OrderStatus::Filled, 0));
        } else if outcome.self_trade {
            let status = OrderStatus::Cancelled(CancelReason::SelfTrade);
            events.push(update(&replaced, status, 0));
        } else {
            if outcome.remaining < remaining {
                let status = OrderStatus::PartiallyFilled;
                events.push(update(&replaced, status, outcome.remaining));
            }
            let resting = RestingOrder {
                remaining: outcome.remaining,
                ..replaced
            };
            let change = self.rest(market, resting);
            events.push(Event::LevelChanged(change));
        }
        Ok(())
    }

    /// Takes every order whose `expires_at` is at or before `now` off the
    /// book, earliest first. Returns how many expired.
    pub fn expire(&mut self, now: Timestamp, events: &mut Vec<Event>) -> usize {
        let mut expired = 0;
        while let Some(entry) = self.expiries.peek() {
            let (expires_at, id, key, generation) = entry;
            if expires_at > now {
                break;
            }
            self.expiries.pop();
            if self.generations[key as usize] != generation {
                continue;
            }
            self.unindex(id);
            let (order, change) = self.detach(key);
            events.push(update(&order, OrderStatus::Expired, 0));
            events.push(Event::LevelChanged(change));
            expired += 1;
        }
        expired
    }

    /// The earliest time at which [`Engine::expire`] may have work to do:
    /// when to set the actor's timer. It may be earlier than any live
    /// order's expiry (then `expire` finds nothing and moves it on).
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.peek().map(|(at, _, _, _)| at)
    }

    /// The best level of one side of a market, in O(1).
    pub fn best(&self, market: MarketId, side: Side) -> Option<LevelView> {
        let book = self.books.get(usize::from(market.0))?;
        book.side(side).best().map(|level| self.level_view(level))
    }

    /// The highest bid of a market.
    pub fn best_bid(&self, market: MarketId) -> Option<LevelView> {
        self.best(market, Side::Bid)
    }

    /// The lowest ask of a market.
    pub fn best_ask(&self, market: MarketId) -> Option<LevelView> {
        self.best(market, Side::Ask)
    }

    /// Up to `levels` price levels of one side, best first.
    pub fn depth(
        &self,
        market: MarketId,
        side: Side,
        levels: usize,
    ) -> impl Iterator<Item = LevelView> + '_ {
        self.books
            .get(usize::from(market.0))
            .into_iter()
            .flat_map(move |book| book.side(side).best_first(&self.levels))
            .take(levels)
            .map(|level| self.level_view(level))
    }

    /// One resting order.
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        self.key_of(id).map(|key| self.resting(key))
    }

    /// Every resting order of one side of a market, in priority order:
    /// best level first, oldest first within a level. Restoring them in this
    /// order rebuilds the same book.
    pub fn resting_orders(
        &self,
        market: MarketId,
        side: Side,
    ) -> impl Iterator<Item = RestingOrder> + '_ {
        self.books
            .get(usize::from(market.0))
            .into_iter()
            .flat_map(move |book| book.side(side).best_first(&self.levels))
            .flat_map(move |level| {
                let mut key = self.levels[level].head;
                std::iter::from_fn(move || {
                    if key == NIL {
                        return None;
                    }
                    let order = self.resting(key);
                    key = self.orders[key].next;
                    Some(order)
                })
            })
    }

    /// Number of resting orders over all markets.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no order rests anywhere.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes of heap memory the engine's structures hold. They keep their
    /// capacity once grown, so this is also the most they ever held.
    pub fn allocated_bytes(&self) -> usize {
        let ladders: usize = self
            .books
            .iter()
            .map(|book| book.bids.allocated_bytes() + book.asks.allocated_bytes())
            .sum();
        ladders
            + self.books.capacity() * size_of::<Book>()
            + self.levels.allocated_bytes()
            + self.orders.allocated_bytes()
            + self.terms.capacity() * size_of::<Terms>()
            + self.index.allocation_size()
            + self.expiries.allocated_bytes()
            + self.generations.capacity() * size_of::<u32>()
    }

    /// Number of sizes (markets) of the product.
    pub fn markets(&self) -> u16 {
        // The constructor takes a u16, so the count always fits.
        u16::try_from(self.books.len()).unwrap_or(u16::MAX)
    }

    /// The full record of the resting order at `key`.
    fn resting(&self, key: u32) -> RestingOrder {
        let node = &self.orders[key];
        let terms = &self.terms[key as usize];
        let level = &self.levels[node.level];
        RestingOrder {
            id: node.id,
            user: node.user,
            market: level.market,
            side: level.side,
            price: level.price,
            quantity: terms.quantity,
            remaining: node.remaining,
            expires_at: terms.expires_at,
        }
    }

    /// The arena key of a resting order.
    #[inline]
    fn key_of(&self, id: OrderId) -> Option<u32> {
        let orders = &self.orders;
        self.index
            .find(hash(id), |&key| orders[key].id == id)
            .copied()
    }

    /// Takes a resting order out of the index, returning its arena key.
    #[inline]
    fn unindex(&mut self, id: OrderId) -> Option<u32> {
        unindex(&mut self.index, &self.orders, id)
    }

    fn market(&self, market: MarketId) -> Result<usize, EngineError> {
        let index = usize::from(market.0);
        if index < self.books.len() {
            Ok(index)
        } else {
            Err(EngineError::UnknownMarket(market))
        }
    }

    /// Why a fill-or-kill taker could not fill `quantity` now, if it could not.
    fn fill_or_kill_obstacle(
        &self,
        market: usize,
        taker: Taker,
        quantity: u32,
    ) -> Option<CancelReason> {
        let mut available = 0u32;
        let makers = self.books[market].side(taker.side.opposite());
        for level in makers.best_first(&self.levels) {
            let level = &self.levels[level];
            if !taker.side.crosses(taker.limit, level.price) {
                break;
            }
            let mut key = level.head;
            while key != NIL {
                let maker = &self.orders[key];
                if maker.user == taker.user {
                    return Some(CancelReason::SelfTrade);
                }
                available += maker.remaining;
                if available >= quantity {
                    return None;
                }
                key = maker.next;
            }
        }
        Some(CancelReason::FillOrKill)
    }

    /// Matches a taker against the opposite side while it crosses, oldest
    /// maker first at each price, each trade at the maker's price. Stops at
    /// the taker's own resting order (self-trade prevention).
    #[inline]
    fn take(
        &mut self,
        market: usize,
        taker: Taker,
        quantity: u32,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let makers_side = taker.side.opposite();
        let mut remaining = quantity;
        let mut self_trade = false;
        while remaining > 0 && !self_trade {
            let ladder = self.books[market].side_mut(makers_side);
            let Some(level_key) = ladder.best() else {
                break;
            };
            let level = &mut self.levels[level_key];
            if !taker.side.crosses(taker.limit, level.price) {
                break;
            }
            let price = level.price;
            let mut traded_here = false;
            while remaining > 0 && level.head != NIL {
                let maker_key = level.head;
                let maker = &mut self.orders[maker_key];
                if maker.user == taker.user {
                    self_trade = true;
                    break;
                }
                let quantity = remaining.min(maker.remaining);
                remaining -= quantity;
                maker.remaining -= quantity;
                level.quantity -= u64::from(quantity);
                traded_here = true;
                events.push(Event::Trade(Trade {
                    market: taker.market,
                    price,
                    quantity,
                    maker_order: maker.id,
                    maker_user: maker.user,
                    taker_order: taker.id,
                    taker_user: taker.user,
                    taker_side: taker.side,
                }));
                let maker = *maker;
                let (status, left) = if maker.remaining == 0 {
                    level.head = maker.next;
                    level.orders -= 1;
                    if maker.next == NIL {
                        level.tail = NIL;
                    } else {
                        self.orders[maker.next].prev = NIL;
                    }
                    unindex(&mut self.index, &self.orders, maker.id);
                    free(&mut self.orders, &mut self.generations, maker_key);
                    (OrderStatus::Filled, 0)
                } else {
                    (OrderStatus::PartiallyFilled, maker.remaining)
                };
                events.push(Event::OrderUpdated(OrderUpdate {
                    order: maker.id,
                    user: maker.user,
                    market: taker.market,
                    side: makers_side,
                    status,
                    remaining: left,
                }));
            }
            if !traded_here {
                break;
            }
            let (level_quantity, level_orders) = (level.quantity, level.orders);
            if level_orders == 0 {
                let ladder = self.books[market].side_mut(makers_side);
                ladder.emptied(sort_key(makers_side, price), &mut self.levels);
            }
            let best = self.books[market]
                .side(makers_side)
                .best()
                .map(|level| self.level_view(level));
            events.push(Event::LevelChanged(LevelChange {
                market: taker.market,
                side: makers_side,
                price,
                quantity: level_quantity,
                orders: level_orders,
                best,
            }));
        }
        Outcome {
            remaining,
            self_trade,
        }
    }

    /// Queues `order` at the back of its price level, creating the level if
    /// needed, and returns the level's change.
    #[inline]
    fn rest(&mut self, market: usize, order: RestingOrder) -> LevelChange {
        let key = sort_key(order.side, order.price);
        let ladder = self.books[market].side_mut(order.side);
        let level_key = match ladder.level(order.price, &self.levels) {
            Some(level_key) => {
                if self.levels[level_key].orders == 0 {
                    ladder.revive();
                }
                level_key
            }
            None => {
                let level = Level::new(order.price, order.market, order.side);
                let level_key = self.levels.insert(level);
                ladder.add(key, level_key, &self.levels);
                level_key
            }
        };
        let level = &mut self.levels[level_key];
        let order_key = self.orders.insert(Node {
            id: order.id,
            user: order.user,
            remaining: order.remaining,
            prev: level.tail,
            next: NIL,
            level: level_key,
        });
        let terms = Terms {
            expires_at: order.expires_at,
            quantity: order.quantity,
        };
        // Arena keys are dense, so a new key is the next index of `terms`.
        match self.terms.get_mut(order_key as usize) {
            Some(slot) => *slot = terms,
            None => {
                self.terms.push(terms);
                self.generations.push(0);
            }
        }
        if level.tail == NIL {
            level.head = order_key;
        } else {
            self.orders[level.tail].next = order_key;
        }
        level.tail = order_key;
        level.orders += 1;
        level.quantity += u64::from(order.remaining);
        let orders = &self.orders;
        self.index
            .insert_unique(hash(order.id), order_key, |&key| hash(orders[key].id));
        let generation = self.generations[order_key as usize];
        self.track_expiry((order.expires_at, order.id, order_key, generation));
        self.level_change(market, order.market, order.side, level_key)
    }

    fn track_expiry(&mut self, entry: Entry) {
        // Entries of orders that left early pile up; once they could
        // outnumber the live orders, drop them all (amortized O(1) per order).
        if self.expiries.len() > 2 * self.index.len() + 1024 {
            let generations = &self.generations;
            self.expiries
                .prune(|&(_, _, key, generation)| generations[key as usize] == generation);
        }
        self.expiries.push(entry);
    }

    /// Unlinks a resting order (already removed from the index) from its
    /// level, dropping the level if it empties, and frees its slot.
    fn detach(&mut self, key: u32) -> (RestingOrder, LevelChange) {
        let order = self.resting(key);
        let node = free(&mut self.orders, &mut self.generations, key);
        let level = &mut self.levels[node.level];
        if node.prev == NIL {
            level.head = node.next;
        } else {
            self.orders[node.prev].next = node.next;
        }
        if node.next == NIL {
            level.tail = node.prev;
        } else {
            self.orders[node.next].prev = node.prev;
        }
        level.orders -= 1;
        level.quantity -= u64::from(node.remaining);
        let market = usize::from(order.market.0);
        let change = if level.orders == 0 {
            self.books[market]
                .side_mut(order.side)
                .emptied(sort_key(order.side, order.price), &mut self.levels);
            LevelChange {
                market: order.market,
                side: order.side,
                price: order.price,
                quantity: 0,
                orders: 0,
                best: self.best(order.market, order.side),
            }
        } else {
            self.level_change(market, order.market, order.side, node.level)
        };
        (order, change)
    }

    fn level_change(&self, market: usize, id: MarketId, side: Side, level: u32) -> LevelChange {
        let view = self.level_view(level);
        let best = self.books[market]
            .side(side)
            .best()
            .map(|best| self.level_view(best));
        LevelChange {
            market: id,
            side,
            price: view.price,
            quantity: view.quantity,
            orders: view.orders,
            best,
        }
    }

    #[inline]
    fn level_view(&self, level: u32) -> LevelView {
        let level = &self.levels[level];
        LevelView {
            price: level.price,
            quantity: level.quantity,
            orders: level.orders,
        }
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

/// The index's hash of an order id.
#[inline]
fn hash(id: OrderId) -> u64 {
    fx_hash(id.0)
}

/// Frees an order's arena slot and retires its expiry entry. A free
/// function so that matching can call it while it holds a level.
#[inline]
fn free(orders: &mut Arena<Node>, generations: &mut [u32], key: u32) -> Node {
    generations[key as usize] = generations[key as usize].wrapping_add(1);
    orders.remove(key)
}

/// Removes `id` from `index`, returning its arena key. A free function so
/// that matching can call it while it holds a level.
#[inline]
fn unindex(index: &mut HashTable<u32>, orders: &Arena<Node>, id: OrderId) -> Option<u32> {
    let entry = index
        .find_entry(hash(id), |&key| orders[key].id == id)
        .ok()?;
    Some(entry.remove().0)
}
