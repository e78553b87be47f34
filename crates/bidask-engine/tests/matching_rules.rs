//! The matching rules of the contract ("Matching rules" in API.md), one
//! worked example per rule, written in currency so they read like the
//! scenario they prove.
//!
//! Every example runs through [`Market`], a small fixture around one
//! [`Engine`] with two sizes (markets 0 and 1). It hands back the events of
//! each command, and after every command it checks the engine's invariant
//! that no market is crossed.
//!
//! The core cases pin the whole event sequence, because the server persists
//! and publishes events in exactly this order. For a placed order:
//! `Accepted`; then for each maker it trades with, `Trade` and the maker's
//! `OrderUpdated`; after each price level it finishes with, a `LevelChanged`
//! for that level; then the taker's own `OrderUpdated` (none if it rests
//! without trading); then a `LevelChanged` for the level it rests in.

use bidask_engine::CancelReason::{FillOrKill, ImmediateOrCancel, Requested, SelfTrade};
use bidask_engine::OrderStatus::{Cancelled, Expired, Filled, Open, PartiallyFilled};
use bidask_engine::Side::{Ask, Bid};
use bidask_engine::{
    Amended, Engine, EngineError, Event, LevelChange, LevelView, MarketId, NewOrder, OrderId,
    OrderStatus, OrderUpdate, Price, Quantity, RestingOrder, Side, TickSize, TimeInForce,
    Timestamp, Trade, UserId,
};
use rust_decimal::{Decimal, dec};

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const CAROL: UserId = UserId(3);
const DAVE: UserId = UserId(4);
const ERIN: UserId = UserId(5);

/// The size most examples trade in, and a second one that must stay apart.
const SIZE_0: MarketId = MarketId(0);
const SIZE_1: MarketId = MarketId(1);

/// The time every example starts at (microseconds since the epoch).
const NOW: Timestamp = Timestamp(1_700_000_000_000_000);
const HOUR: i64 = 3_600_000_000;

/// `hours` after [`NOW`].
fn at(hours: i64) -> Timestamp {
    Timestamp(NOW.0 + hours * HOUR)
}

/// One microsecond before `time`.
fn just_before(time: Timestamp) -> Timestamp {
    Timestamp(time.0 - 1)
}

/// A price in cents, from the decimal a user would type.
fn px(value: Decimal) -> Price {
    TickSize::CENT
        .price(value)
        .expect("test prices are positive whole cents")
}

fn qty(units: u32) -> Quantity {
    Quantity::new(units).expect("test quantities are 1..=10,000")
}

/// A good-till-cancelled order in size 0 that lives the default 30 days.
fn order(id: u64, user: UserId, side: Side, price: Decimal, quantity: u32) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        user,
        market: SIZE_0,
        side,
        price: px(price),
        quantity: qty(quantity),
        time_in_force: TimeInForce::GoodTillCancelled,
        expires_at: at(30 * 24),
    }
}

/// The same order as immediate-or-cancel (Buy Now / Sell Now).
fn ioc(order: NewOrder) -> NewOrder {
    NewOrder {
        time_in_force: TimeInForce::ImmediateOrCancel,
        ..order
    }
}

/// The same order as fill-or-kill.
fn fok(order: NewOrder) -> NewOrder {
    NewOrder {
        time_in_force: TimeInForce::FillOrKill,
        ..order
    }
}

/// The same order, leaving the book at `expires_at`.
fn expiring_at(expires_at: Timestamp, order: NewOrder) -> NewOrder {
    NewOrder {
        expires_at,
        ..order
    }
}

/// The same order, in another size.
fn in_market(market: MarketId, order: NewOrder) -> NewOrder {
    NewOrder { market, ..order }
}

/// A price level as `(price, units, orders)`, for comparing books at a glance.
type Level = (Decimal, u64, u32);

fn view(level: LevelView) -> Level {
    (
        TickSize::CENT.decimal(level.price),
        level.quantity,
        level.orders,
    )
}

/// One product's engine with two sizes, the current time, and the events
/// of the last command.
struct Market {
    engine: Engine,
    now: Timestamp,
    events: Vec<Event>,
}

impl Market {
    fn new() -> Self {
        Self::from_engine(Engine::new(2))
    }

    fn from_engine(engine: Engine) -> Self {
        Self {
            engine,
            now: NOW,
            events: Vec::new(),
        }
    }

    // --- commands that must succeed; each returns the events it caused ---

    fn bid(&mut self, id: u64, user: UserId, price: Decimal, quantity: u32) -> Vec<Event> {
        self.place(order(id, user, Bid, price, quantity))
    }

    fn ask(&mut self, id: u64, user: UserId, price: Decimal, quantity: u32) -> Vec<Event> {
        self.place(order(id, user, Ask, price, quantity))
    }

    fn ioc_bid(&mut self, id: u64, user: UserId, price: Decimal, quantity: u32) -> Vec<Event> {
        self.place(ioc(order(id, user, Bid, price, quantity)))
    }

    fn ioc_ask(&mut self, id: u64, user: UserId, price: Decimal, quantity: u32) -> Vec<Event> {
        self.place(ioc(order(id, user, Ask, price, quantity)))
    }

    fn fok_bid(&mut self, id: u64, user: UserId, price: Decimal, quantity: u32) -> Vec<Event> {
        self.place(fok(order(id, user, Bid, price, quantity)))
    }

    fn place(&mut self, order: NewOrder) -> Vec<Event> {
        if let Err(error) = self.try_place(order) {
            panic!("order {} was refused: {error}", order.id.0);
        }
        self.events.clone()
    }

    fn cancel(&mut self, id: u64) -> Vec<Event> {
        if let Err(error) = self.try_cancel(id) {
            panic!("cancel of order {id} was refused: {error}");
        }
        self.events.clone()
    }

    /// Amends order `id` to a new price and/or new *total* quantity.
    fn amend(&mut self, id: u64, price: Option<Decimal>, quantity: Option<u32>) -> Vec<Event> {
        if let Err(error) = self.try_amend(id, price, quantity) {
            panic!("amend of order {id} was refused: {error}");
        }
        self.events.clone()
    }

    /// Moves the clock to `now` and expires what is due: how many left, and the events.
    fn expire(&mut self, now: Timestamp) -> (usize, Vec<Event>) {
        self.now = now;
        self.events.clear();
        let expired = self.engine.expire(now, &mut self.events);
        self.assert_uncrossed();
        (expired, self.events.clone())
    }

    // --- commands that may be refused; their events stay in `self.events` ---

    fn try_place(&mut self, order: NewOrder) -> Result<(), EngineError> {
        self.events.clear();
        let result = self.engine.place(order, self.now, &mut self.events);
        self.assert_uncrossed();
        result
    }

    fn try_cancel(&mut self, id: u64) -> Result<(), EngineError> {
        self.events.clear();
        let result = self.engine.cancel(OrderId(id), &mut self.events);
        self.assert_uncrossed();
        result
    }

    fn try_amend(
        &mut self,
        id: u64,
        price: Option<Decimal>,
        quantity: Option<u32>,
    ) -> Result<(), EngineError> {
        self.events.clear();
        let result = self.engine.amend(
            OrderId(id),
            price.map(px),
            quantity.map(qty),
            &mut self.events,
        );
        self.assert_uncrossed();
        result
    }

    // --- queries ---

    /// All levels of one side of size 0, best first.
    fn levels(&self, side: Side) -> Vec<Level> {
        self.levels_in(SIZE_0, side)
    }

    fn levels_in(&self, market: MarketId, side: Side) -> Vec<Level> {
        self.engine
            .depth(market, side, usize::MAX)
            .map(view)
            .collect()
    }

    /// The ids of one side of size 0, in the order they would trade.
    fn queue(&self, side: Side) -> Vec<u64> {
        self.engine
            .resting_orders(SIZE_0, side)
            .map(|order| order.id.0)
            .collect()
    }

    fn resting(&self, id: u64) -> RestingOrder {
        self.engine
            .order(OrderId(id))
            .unwrap_or_else(|| panic!("order {id} should be resting"))
    }

    /// Every resting order of every size, bids then asks, in priority order:
    /// the whole state of the books, and exactly what `restore` takes.
    fn snapshot(&self) -> Vec<RestingOrder> {
        (0..self.engine.markets())
            .flat_map(|market| [(MarketId(market), Bid), (MarketId(market), Ask)])
            .flat_map(|(market, side)| self.engine.resting_orders(market, side))
            .collect()
    }

    fn assert_no_events(&self) {
        assert!(
            self.events.is_empty(),
            "a refused command emitted {:?}",
            self.events
        );
    }

    /// The engine's invariant: after every command, every market's highest
    /// bid is below its lowest ask.
    fn assert_uncrossed(&self) {
        for market in (0..self.engine.markets()).map(MarketId) {
            if let (Some(bid), Some(ask)) =
                (self.engine.best_bid(market), self.engine.best_ask(market))
            {
                assert!(
                    bid.price < ask.price,
                    "market {} is crossed: bid {:?} >= ask {:?}",
                    market.0,
                    view(bid),
                    view(ask)
                );
            }
        }
    }
}

// --- expected events, in size 0 unless built by hand ---

fn accepted(order: NewOrder) -> Event {
    Event::Accepted(order)
}

/// A trade at `price`: `maker` and `taker` are `(order id, user)`.
fn trade(
    price: Decimal,
    quantity: u32,
    maker: (u64, UserId),
    taker: (u64, UserId),
    taker_side: Side,
) -> Event {
    Event::Trade(Trade {
        market: SIZE_0,
        price: px(price),
        quantity,
        maker_order: OrderId(maker.0),
        maker_user: maker.1,
        taker_order: OrderId(taker.0),
        taker_user: taker.1,
        taker_side,
    })
}

fn updated(id: u64, user: UserId, side: Side, status: OrderStatus, remaining: u32) -> Event {
    Event::OrderUpdated(OrderUpdate {
        order: OrderId(id),
        user,
        market: SIZE_0,
        side,
        status,
        remaining,
    })
}

/// A level's new totals, and the side's best level after the change.
fn level_changed(
    side: Side,
    price: Decimal,
    quantity: u64,
    orders: u32,
    best: Option<Level>,
) -> Event {
    level_changed_in(SIZE_0, side, price, quantity, orders, best)
}

fn level_changed_in(
    market: MarketId,
    side: Side,
    price: Decimal,
    quantity: u64,
    orders: u32,
    best: Option<Level>,
) -> Event {
    Event::LevelChanged(LevelChange {
        market,
        side,
        price: px(price),
        quantity,
        orders,
        best: best.map(|(price, quantity, orders)| LevelView {
            price: px(price),
            quantity,
            orders,
        }),
    })
}

fn amended(
    id: u64,
    user: UserId,
    side: Side,
    price: Decimal,
    quantity: u32,
    remaining: u32,
    requeued: bool,
) -> Event {
    Event::Amended(Amended {
        order: OrderId(id),
        user,
        market: SIZE_0,
        side,
        price: px(price),
        quantity: qty(quantity),
        remaining,
        requeued,
    })
}

/// The trades among `events`, as `(price, units, maker id)`.
fn fills(events: &[Event]) -> Vec<(Decimal, u32, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Trade(trade) => Some((
                TickSize::CENT.decimal(trade.price),
                trade.quantity,
                trade.maker_order.0,
            )),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Trading at the resting price
// ---------------------------------------------------------------------------

#[test]
fn a_crossing_bid_buys_at_the_resting_asks_price() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);

    // Bob is willing to pay 225, but the ask only wants 220: he pays 220.
    let bob = order(2, BOB, Bid, dec!(225.00), 1);
    let events = m.place(bob);

    assert_eq!(
        events,
        [
            accepted(bob),
            trade(dec!(220.00), 1, (1, ALICE), (2, BOB), Bid),
            updated(1, ALICE, Ask, Filled, 0),
            level_changed(Ask, dec!(220.00), 0, 0, None),
            updated(2, BOB, Bid, Filled, 0),
        ]
    );
    let Event::Trade(sale) = events[1] else {
        panic!("the second event is the trade");
    };
    assert_eq!(sale.buyer(), (OrderId(2), BOB));
    assert_eq!(sale.seller(), (OrderId(1), ALICE));
    assert_eq!(m.levels(Bid), []);
    assert_eq!(m.levels(Ask), []);
}

#[test]
fn a_crossing_ask_sells_at_the_resting_bids_price() {
    let mut m = Market::new();
    m.bid(1, ALICE, dec!(225.00), 3);

    // Bob would sell for 220, but Alice bids 225: he gets 225, and Alice's
    // bid stays at the front with what is left.
    let bob = order(2, BOB, Ask, dec!(220.00), 1);
    let events = m.place(bob);

    assert_eq!(
        events,
        [
            accepted(bob),
            trade(dec!(225.00), 1, (1, ALICE), (2, BOB), Ask),
            updated(1, ALICE, Bid, PartiallyFilled, 2),
            level_changed(Bid, dec!(225.00), 2, 1, Some((dec!(225.00), 2, 1))),
            updated(2, BOB, Ask, Filled, 0),
        ]
    );
    let Event::Trade(sale) = events[1] else {
        panic!("the second event is the trade");
    };
    assert_eq!(sale.buyer(), (OrderId(1), ALICE));
    assert_eq!(sale.seller(), (OrderId(2), BOB));
    assert_eq!(m.levels(Bid), [(dec!(225.00), 2, 1)]);
    assert_eq!(m.levels(Ask), []);
}

#[test]
fn an_order_that_does_not_cross_rests_without_a_status_update() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);

    // 219.99 is a cent short of the ask: nothing trades, the bid just rests.
    let bob = order(2, BOB, Bid, dec!(219.99), 4);
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            level_changed(Bid, dec!(219.99), 4, 1, Some((dec!(219.99), 4, 1))),
        ]
    );
    assert_eq!(m.resting(2).status(), Open);
    assert_eq!(m.levels(Ask), [(dec!(220.00), 1, 1)]);
}

// ---------------------------------------------------------------------------
// Price-time priority
// ---------------------------------------------------------------------------

#[test]
fn price_priority_the_better_price_fills_first_on_both_sides() {
    let mut m = Market::new();
    // Asks arrive worst-first-ish; the cheapest must still sell first.
    m.ask(1, ALICE, dec!(230.00), 1);
    m.ask(2, CAROL, dec!(220.00), 1);
    m.ask(3, DAVE, dec!(225.00), 1);
    assert_eq!(m.queue(Ask), [2, 3, 1]);

    let sweep = m.ioc_bid(10, BOB, dec!(230.00), 3);
    assert_eq!(
        fills(&sweep),
        [
            (dec!(220.00), 1, 2),
            (dec!(225.00), 1, 3),
            (dec!(230.00), 1, 1),
        ]
    );

    // And the highest bid buys first.
    m.bid(4, ALICE, dec!(200.00), 1);
    m.bid(5, CAROL, dec!(210.00), 1);
    m.bid(6, DAVE, dec!(205.00), 1);
    assert_eq!(m.queue(Bid), [5, 6, 4]);

    let sweep = m.ioc_ask(11, BOB, dec!(190.00), 3);
    assert_eq!(
        fills(&sweep),
        [
            (dec!(210.00), 1, 5),
            (dec!(205.00), 1, 6),
            (dec!(200.00), 1, 4),
        ]
    );
}

#[test]
fn time_priority_the_earlier_order_at_a_price_fills_first() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 2);
    m.ask(2, CAROL, dec!(220.00), 2);
    m.ask(3, DAVE, dec!(220.00), 2);
    assert_eq!(m.levels(Ask), [(dec!(220.00), 6, 3)]);

    // Alice was first: she fills completely before Carol sells anything.
    let first = m.bid(10, BOB, dec!(220.00), 3);
    assert_eq!(fills(&first), [(dec!(220.00), 2, 1), (dec!(220.00), 1, 2)]);

    // Carol's partly filled order keeps its place ahead of Dave.
    assert_eq!(m.queue(Ask), [2, 3]);
    let second = m.bid(11, ERIN, dec!(220.00), 2);
    assert_eq!(fills(&second), [(dec!(220.00), 1, 2), (dec!(220.00), 1, 3)]);
    assert_eq!(m.queue(Ask), [3]);
    assert_eq!(m.levels(Ask), [(dec!(220.00), 1, 1)]);
}

// ---------------------------------------------------------------------------
// Partial fills across levels
// ---------------------------------------------------------------------------

#[test]
fn a_bid_sweeps_three_ask_levels_and_rests_the_remainder_at_its_limit() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 2);
    m.ask(2, CAROL, dec!(221.00), 1);
    m.ask(3, DAVE, dec!(222.00), 2);
    m.ask(4, CAROL, dec!(230.00), 1);

    // Bob wants 6 at up to 222: he takes the 5 units at 220..=222, each at
    // its own price, and his last unit waits at 222, below the 230 ask.
    let bob = order(10, BOB, Bid, dec!(222.00), 6);
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            trade(dec!(220.00), 2, (1, ALICE), (10, BOB), Bid),
            updated(1, ALICE, Ask, Filled, 0),
            level_changed(Ask, dec!(220.00), 0, 0, Some((dec!(221.00), 1, 1))),
            trade(dec!(221.00), 1, (2, CAROL), (10, BOB), Bid),
            updated(2, CAROL, Ask, Filled, 0),
            level_changed(Ask, dec!(221.00), 0, 0, Some((dec!(222.00), 2, 1))),
            trade(dec!(222.00), 2, (3, DAVE), (10, BOB), Bid),
            updated(3, DAVE, Ask, Filled, 0),
            level_changed(Ask, dec!(222.00), 0, 0, Some((dec!(230.00), 1, 1))),
            updated(10, BOB, Bid, PartiallyFilled, 1),
            level_changed(Bid, dec!(222.00), 1, 1, Some((dec!(222.00), 1, 1))),
        ]
    );

    let rest = m.resting(10);
    assert_eq!(
        (rest.price, rest.quantity, rest.remaining),
        (px(dec!(222.00)), qty(6), 1)
    );
    assert_eq!(rest.status(), PartiallyFilled);
    assert_eq!(m.levels(Bid), [(dec!(222.00), 1, 1)]);
    assert_eq!(m.levels(Ask), [(dec!(230.00), 1, 1)]);
}

// ---------------------------------------------------------------------------
// Time in force
// ---------------------------------------------------------------------------

#[test]
fn ioc_trades_what_crosses_and_cancels_the_rest() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 2);
    m.ask(2, CAROL, dec!(230.00), 1);

    // Buy Now for 5 at up to 225: only the 2 at 220 are there to take.
    let bob = ioc(order(3, BOB, Bid, dec!(225.00), 5));
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            trade(dec!(220.00), 2, (1, ALICE), (3, BOB), Bid),
            updated(1, ALICE, Ask, Filled, 0),
            level_changed(Ask, dec!(220.00), 0, 0, Some((dec!(230.00), 1, 1))),
            updated(3, BOB, Bid, Cancelled(ImmediateOrCancel), 0),
        ]
    );
    // Nothing of Bob's rests.
    assert_eq!(m.levels(Bid), []);
    assert_eq!(m.engine.order(OrderId(3)), None);
    assert_eq!(m.levels(Ask), [(dec!(230.00), 1, 1)]);
}

#[test]
fn ioc_that_cannot_trade_is_cancelled_whole() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(230.00), 1);
    let before = m.snapshot();

    let bob = ioc(order(2, BOB, Bid, dec!(225.00), 1));
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            updated(2, BOB, Bid, Cancelled(ImmediateOrCancel), 0),
        ]
    );
    assert_eq!(m.snapshot(), before);

    // Into an empty side, too.
    let carol = ioc(order(3, CAROL, Ask, dec!(100.00), 1));
    assert_eq!(
        m.place(carol),
        [
            accepted(carol),
            updated(3, CAROL, Ask, Cancelled(ImmediateOrCancel), 0),
        ]
    );
    assert_eq!(m.snapshot(), before);
}

#[test]
fn fok_fills_completely_across_levels_when_enough_crosses() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 2);
    m.ask(2, CAROL, dec!(221.00), 2);

    let bob = fok(order(3, BOB, Bid, dec!(221.00), 3));
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            trade(dec!(220.00), 2, (1, ALICE), (3, BOB), Bid),
            updated(1, ALICE, Ask, Filled, 0),
            level_changed(Ask, dec!(220.00), 0, 0, Some((dec!(221.00), 2, 1))),
            trade(dec!(221.00), 1, (2, CAROL), (3, BOB), Bid),
            updated(2, CAROL, Ask, PartiallyFilled, 1),
            level_changed(Ask, dec!(221.00), 1, 1, Some((dec!(221.00), 1, 1))),
            updated(3, BOB, Bid, Filled, 0),
        ]
    );
    assert_eq!(m.levels(Ask), [(dec!(221.00), 1, 1)]);
    assert_eq!(m.levels(Bid), []);
}

#[test]
fn fok_that_cannot_fill_completely_trades_nothing() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 2);
    m.ask(2, CAROL, dec!(221.00), 2);
    m.ask(3, DAVE, dec!(230.00), 5);
    let before = m.snapshot();

    // 4 units cross at <= 225 and Bob wants 5: all or nothing means nothing,
    // even though 4 could have traded.
    let bob = fok(order(4, BOB, Bid, dec!(225.00), 5));
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            updated(4, BOB, Bid, Cancelled(FillOrKill), 0)
        ]
    );
    assert_eq!(m.snapshot(), before);

    // Exactly what crosses is enough.
    let exact = m.fok_bid(5, BOB, dec!(225.00), 4);
    assert_eq!(fills(&exact), [(dec!(220.00), 2, 1), (dec!(221.00), 2, 2)]);
    assert_eq!(exact.last(), Some(&updated(5, BOB, Bid, Filled, 0)));
}

#[test]
fn fok_blocked_by_the_users_own_resting_order_is_a_self_trade_and_trades_nothing() {
    let mut m = Market::new();
    m.ask(1, CAROL, dec!(220.00), 1);
    m.ask(2, BOB, dec!(221.00), 1);
    m.ask(3, CAROL, dec!(222.00), 5);
    let before = m.snapshot();

    // Filling 3 would need Bob to reach past his own ask at 221, so the
    // order cannot fill completely without a self-trade: it trades nothing
    // (not even Carol's unit at 220) and says why.
    let bob = fok(order(4, BOB, Bid, dec!(222.00), 3));
    assert_eq!(
        m.place(bob),
        [accepted(bob), updated(4, BOB, Bid, Cancelled(SelfTrade), 0)]
    );
    assert_eq!(m.snapshot(), before);
}

// ---------------------------------------------------------------------------
// Self-trade prevention
// ---------------------------------------------------------------------------

#[test]
fn self_trade_the_users_own_ask_at_the_front_cancels_the_incoming_bid() {
    let mut m = Market::new();
    m.ask(1, BOB, dec!(220.00), 1);
    m.ask(2, CAROL, dec!(221.00), 1);
    let bobs_ask = m.resting(1);
    let before = m.snapshot();

    // Bob's bid would cross his own ask first: it is cancelled on arrival,
    // and it does not skip ahead to Carol's ask either.
    let bob = order(3, BOB, Bid, dec!(225.00), 2);
    assert_eq!(
        m.place(bob),
        [accepted(bob), updated(3, BOB, Bid, Cancelled(SelfTrade), 0)]
    );
    assert_eq!(m.resting(1), bobs_ask);
    assert_eq!(m.snapshot(), before);
}

#[test]
fn self_trade_after_trading_with_others_keeps_the_trades_and_cancels_the_remainder() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.ask(2, BOB, dec!(221.00), 1);
    m.ask(3, CAROL, dec!(222.00), 1);

    let bob = order(4, BOB, Bid, dec!(225.00), 3);
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            trade(dec!(220.00), 1, (1, ALICE), (4, BOB), Bid),
            updated(1, ALICE, Ask, Filled, 0),
            level_changed(Ask, dec!(220.00), 0, 0, Some((dec!(221.00), 1, 1))),
            updated(4, BOB, Bid, Cancelled(SelfTrade), 0),
        ]
    );
    // Bob's own ask and Carol's behind it are untouched; nothing of the bid rests.
    assert_eq!(m.queue(Ask), [2, 3]);
    assert_eq!(m.resting(2).status(), Open);
    assert_eq!(m.levels(Bid), []);
}

#[test]
fn self_trade_within_a_level_stops_behind_the_orders_ahead_of_the_users_own() {
    let mut m = Market::new();
    m.bid(1, ALICE, dec!(210.00), 1);
    m.bid(2, BOB, dec!(210.00), 1);
    m.bid(3, CAROL, dec!(210.00), 1);

    // Bob sells into the 210 level: Alice's bid is ahead of his own, so he
    // trades with her and stops at his own bid, level half consumed.
    let bob = order(4, BOB, Ask, dec!(200.00), 3);
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            trade(dec!(210.00), 1, (1, ALICE), (4, BOB), Ask),
            updated(1, ALICE, Bid, Filled, 0),
            level_changed(Bid, dec!(210.00), 2, 2, Some((dec!(210.00), 2, 2))),
            updated(4, BOB, Ask, Cancelled(SelfTrade), 0),
        ]
    );
    assert_eq!(m.queue(Bid), [2, 3]);
    assert_eq!(m.levels(Ask), []);
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

#[test]
fn expire_removes_orders_due_at_or_before_now_and_keeps_later_ones() {
    let mut m = Market::new();
    m.place(expiring_at(at(1), order(1, ALICE, Ask, dec!(230.00), 2)));
    m.place(expiring_at(at(2), order(2, CAROL, Ask, dec!(230.00), 1)));
    m.place(expiring_at(at(1), order(3, DAVE, Bid, dec!(200.00), 1)));
    m.place(expiring_at(at(3), order(4, ALICE, Ask, dec!(231.00), 1)));
    assert_eq!(m.engine.next_expiry(), Some(at(1)));

    // A microsecond early, nothing is due.
    assert_eq!(m.expire(just_before(at(1))), (0, vec![]));

    // Exactly on time both orders due at hour 1 leave, each with its level.
    assert_eq!(
        m.expire(at(1)),
        (
            2,
            vec![
                updated(1, ALICE, Ask, Expired, 0),
                level_changed(Ask, dec!(230.00), 1, 1, Some((dec!(230.00), 1, 1))),
                updated(3, DAVE, Bid, Expired, 0),
                level_changed(Bid, dec!(200.00), 0, 0, None),
            ]
        )
    );
    assert_eq!(m.engine.next_expiry(), Some(at(2)));
    assert_eq!(m.queue(Ask), [2, 4]);

    // Well past hour 2 (but before 3), Carol's goes too; Alice's 231 stays.
    let (expired, events) = m.expire(Timestamp(at(2).0 + HOUR / 2));
    assert_eq!(expired, 1);
    assert_eq!(
        events,
        [
            updated(2, CAROL, Ask, Expired, 0),
            level_changed(Ask, dec!(230.00), 0, 0, Some((dec!(231.00), 1, 1))),
        ]
    );
    assert_eq!(m.queue(Ask), [4]);
    assert_eq!(m.engine.next_expiry(), Some(at(3)));
    // An expired order is gone: it can no longer be cancelled.
    assert_eq!(m.try_cancel(1), Err(EngineError::UnknownOrder(OrderId(1))));
}

#[test]
fn a_gtc_order_that_expires_at_or_before_placement_is_rejected() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    let before = m.snapshot();

    for expires_at in [NOW, just_before(NOW)] {
        let stale = expiring_at(expires_at, order(2, BOB, Bid, dec!(225.00), 1));
        assert_eq!(m.try_place(stale), Err(EngineError::AlreadyExpired));
        m.assert_no_events();
        // It did not trade with the crossing ask either.
        assert_eq!(m.snapshot(), before);
    }

    // An ioc never rests, so when it would expire does not matter.
    let now_only = ioc(expiring_at(NOW, order(3, BOB, Bid, dec!(225.00), 1)));
    assert_eq!(fills(&m.place(now_only)), [(dec!(220.00), 1, 1)]);
}

#[test]
fn an_amended_order_still_expires_at_its_original_time() {
    let mut m = Market::new();
    m.place(expiring_at(at(1), order(1, ALICE, Ask, dec!(230.00), 1)));
    m.place(expiring_at(at(2), order(2, CAROL, Ask, dec!(231.00), 1)));

    // New price, larger quantity (both requeue), then smaller (in place).
    m.amend(1, Some(dec!(232.00)), None);
    m.amend(1, None, Some(3));
    m.amend(1, None, Some(2));
    assert_eq!(m.resting(1).expires_at, at(1));
    assert_eq!(m.engine.next_expiry(), Some(at(1)));

    assert_eq!(m.expire(just_before(at(1))), (0, vec![]));
    assert_eq!(
        m.expire(at(1)),
        (
            1,
            vec![
                updated(1, ALICE, Ask, Expired, 0),
                level_changed(Ask, dec!(232.00), 0, 0, Some((dec!(231.00), 1, 1))),
            ]
        )
    );
    assert_eq!(m.queue(Ask), [2]);
}

// ---------------------------------------------------------------------------
// Amend
// ---------------------------------------------------------------------------

#[test]
fn amend_to_a_lower_quantity_keeps_time_priority() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 3);
    m.ask(2, CAROL, dec!(220.00), 1);

    assert_eq!(
        m.amend(1, None, Some(2)),
        [
            amended(1, ALICE, Ask, dec!(220.00), 2, 2, false),
            level_changed(Ask, dec!(220.00), 3, 2, Some((dec!(220.00), 3, 2))),
        ]
    );

    // Alice is still first in line.
    assert_eq!(m.queue(Ask), [1, 2]);
    assert_eq!(
        fills(&m.bid(10, BOB, dec!(220.00), 1)),
        [(dec!(220.00), 1, 1)]
    );
}

#[test]
fn amend_to_a_new_price_loses_time_priority() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(221.00), 1);
    m.ask(2, CAROL, dec!(220.00), 1);

    // Alice comes down to 220, where Carol arrived after her: Alice's order
    // is new at that price, so it queues behind Carol's.
    assert_eq!(
        m.amend(1, Some(dec!(220.00)), None),
        [
            amended(1, ALICE, Ask, dec!(220.00), 1, 1, true),
            level_changed(Ask, dec!(221.00), 0, 0, Some((dec!(220.00), 1, 1))),
            level_changed(Ask, dec!(220.00), 2, 2, Some((dec!(220.00), 2, 2))),
        ]
    );
    assert_eq!(m.queue(Ask), [2, 1]);
    assert_eq!(
        fills(&m.bid(10, BOB, dec!(220.00), 1)),
        [(dec!(220.00), 1, 2)]
    );
}

#[test]
fn amend_to_a_larger_quantity_loses_time_priority() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.ask(2, CAROL, dec!(220.00), 1);

    // More units at the same price go to the back of the queue.
    assert_eq!(
        m.amend(1, None, Some(2)),
        [
            amended(1, ALICE, Ask, dec!(220.00), 2, 2, true),
            level_changed(Ask, dec!(220.00), 1, 1, Some((dec!(220.00), 1, 1))),
            level_changed(Ask, dec!(220.00), 3, 2, Some((dec!(220.00), 3, 2))),
        ]
    );
    assert_eq!(m.queue(Ask), [2, 1]);
    assert_eq!(
        fills(&m.bid(10, BOB, dec!(220.00), 1)),
        [(dec!(220.00), 1, 2)]
    );
}

#[test]
fn amend_to_a_crossing_price_trades_at_the_resting_price() {
    let mut m = Market::new();
    m.ask(1, CAROL, dec!(220.00), 1);
    m.bid(2, ALICE, dec!(210.00), 2);

    // Alice raises her bid to 225: it is matched again as a taker, buys the
    // unit at Carol's 220, and the rest waits at 225.
    assert_eq!(
        m.amend(2, Some(dec!(225.00)), None),
        [
            amended(2, ALICE, Bid, dec!(225.00), 2, 2, true),
            level_changed(Bid, dec!(210.00), 0, 0, None),
            trade(dec!(220.00), 1, (1, CAROL), (2, ALICE), Bid),
            updated(1, CAROL, Ask, Filled, 0),
            level_changed(Ask, dec!(220.00), 0, 0, None),
            updated(2, ALICE, Bid, PartiallyFilled, 1),
            level_changed(Bid, dec!(225.00), 1, 1, Some((dec!(225.00), 1, 1))),
        ]
    );
    let alice = m.resting(2);
    assert_eq!(
        (alice.price, alice.quantity, alice.remaining),
        (px(dec!(225.00)), qty(2), 1)
    );
}

#[test]
fn amend_to_a_price_that_reaches_the_users_own_order_is_a_self_trade() {
    let mut m = Market::new();
    m.ask(1, BOB, dec!(230.00), 1);
    m.bid(2, BOB, dec!(200.00), 1);

    // The amended bid is an incoming order again, and it meets Bob's own ask.
    assert_eq!(
        m.amend(2, Some(dec!(230.00)), None),
        [
            amended(2, BOB, Bid, dec!(230.00), 1, 1, true),
            level_changed(Bid, dec!(200.00), 0, 0, None),
            updated(2, BOB, Bid, Cancelled(SelfTrade), 0),
        ]
    );
    assert_eq!(m.levels(Bid), []);
    assert_eq!(m.queue(Ask), [1]);
}

#[test]
fn amend_quantity_is_the_new_total_and_must_exceed_what_already_filled() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 5);
    m.bid(10, BOB, dec!(220.00), 3);
    let before = m.snapshot();

    // 3 of Alice's 5 have sold: a total of 3 or fewer would leave nothing.
    for total in [3, 2] {
        assert_eq!(
            m.try_amend(1, None, Some(total)),
            Err(EngineError::QuantityNotAboveFilled { filled: 3 })
        );
        m.assert_no_events();
        assert_eq!(m.snapshot(), before);
    }

    // A total of 4 leaves 1 for sale, and as it is smaller it keeps its place.
    assert_eq!(
        m.amend(1, None, Some(4)),
        [
            amended(1, ALICE, Ask, dec!(220.00), 4, 1, false),
            level_changed(Ask, dec!(220.00), 1, 1, Some((dec!(220.00), 1, 1))),
        ]
    );
    let alice = m.resting(1);
    assert_eq!((alice.quantity, alice.remaining), (qty(4), 1));
    assert_eq!(alice.status(), PartiallyFilled);
}

#[test]
fn amend_of_an_order_that_is_not_resting_is_unknown_order() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.bid(2, BOB, dec!(220.00), 1); // fills Alice's ask
    m.ask(3, CAROL, dec!(230.00), 1);
    let before = m.snapshot();

    for id in [99, 1, 2] {
        assert_eq!(
            m.try_amend(id, Some(dec!(225.00)), None),
            Err(EngineError::UnknownOrder(OrderId(id)))
        );
        m.assert_no_events();
        assert_eq!(m.snapshot(), before);
    }
}

#[test]
fn amending_to_the_same_values_emits_nothing_and_keeps_priority() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 2);
    m.ask(2, CAROL, dec!(220.00), 2);
    let before = m.snapshot();

    assert_eq!(m.amend(1, Some(dec!(220.00)), Some(2)), []);
    assert_eq!(m.amend(1, None, None), []);
    assert_eq!(m.snapshot(), before);
    assert_eq!(m.queue(Ask), [1, 2]);
}

// ---------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------

#[test]
fn cancel_emits_cancelled_requested_then_the_level_change() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.ask(2, CAROL, dec!(220.00), 2);
    m.ask(3, DAVE, dec!(225.00), 1);

    assert_eq!(
        m.cancel(1),
        [
            updated(1, ALICE, Ask, Cancelled(Requested), 0),
            level_changed(Ask, dec!(220.00), 2, 1, Some((dec!(220.00), 2, 1))),
        ]
    );
    // The last order of the best level: the level goes, 225 becomes best.
    assert_eq!(
        m.cancel(2),
        [
            updated(2, CAROL, Ask, Cancelled(Requested), 0),
            level_changed(Ask, dec!(220.00), 0, 0, Some((dec!(225.00), 1, 1))),
        ]
    );
    assert_eq!(m.levels(Ask), [(dec!(225.00), 1, 1)]);
}

#[test]
fn cancel_of_an_unknown_filled_or_cancelled_order_is_unknown_order() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.bid(2, BOB, dec!(220.00), 1); // fills Alice's ask
    m.ask(3, CAROL, dec!(230.00), 1);
    m.cancel(3);
    m.ask(4, DAVE, dec!(240.00), 1);
    let before = m.snapshot();

    for id in [99, 1, 2, 3] {
        assert_eq!(
            m.try_cancel(id),
            Err(EngineError::UnknownOrder(OrderId(id)))
        );
        m.assert_no_events();
        assert_eq!(m.snapshot(), before);
    }
}

// ---------------------------------------------------------------------------
// Refused commands
// ---------------------------------------------------------------------------

#[test]
fn rejected_commands_change_nothing() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.bid(2, CAROL, dec!(210.00), 1);
    let before = m.snapshot();
    let depth = (m.levels(Bid), m.levels(Ask));

    // The engine has sizes 0 and 1 only.
    let nowhere = in_market(MarketId(2), order(3, BOB, Bid, dec!(225.00), 1));
    assert_eq!(
        m.try_place(nowhere),
        Err(EngineError::UnknownMarket(MarketId(2)))
    );
    m.assert_no_events();
    assert_eq!(m.snapshot(), before);

    // Order 1 is resting; a second order 1 is refused before it can trade,
    // even though it crosses order 1's book.
    let duplicate = order(1, BOB, Bid, dec!(225.00), 1);
    assert_eq!(
        m.try_place(duplicate),
        Err(EngineError::DuplicateOrder(OrderId(1)))
    );
    m.assert_no_events();

    // Ids are unique per engine, not per size: order 2 rests in size 0.
    let elsewhere = in_market(SIZE_1, order(2, BOB, Ask, dec!(500.00), 1));
    assert_eq!(
        m.try_place(elsewhere),
        Err(EngineError::DuplicateOrder(OrderId(2)))
    );
    m.assert_no_events();

    assert_eq!(m.snapshot(), before);
    assert_eq!((m.levels(Bid), m.levels(Ask)), depth);
    assert_eq!(m.engine.len(), 2);
}

// ---------------------------------------------------------------------------
// Sizes are separate markets
// ---------------------------------------------------------------------------

#[test]
fn markets_never_match_across_sizes() {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);

    // Bob's 225 bid is for size 1, where nobody sells: it rests there, and
    // Alice's 220 ask in size 0 is untouched.
    let bob = in_market(SIZE_1, order(2, BOB, Bid, dec!(225.00), 1));
    assert_eq!(
        m.place(bob),
        [
            accepted(bob),
            level_changed_in(SIZE_1, Bid, dec!(225.00), 1, 1, Some((dec!(225.00), 1, 1))),
        ]
    );
    assert_eq!(m.levels_in(SIZE_0, Ask), [(dec!(220.00), 1, 1)]);
    assert_eq!(m.levels_in(SIZE_0, Bid), []);
    assert_eq!(m.levels_in(SIZE_1, Bid), [(dec!(225.00), 1, 1)]);
    assert_eq!(m.levels_in(SIZE_1, Ask), []);

    // Size 1's sell at 200 trades with size 1's bid only, at its price.
    let carol = in_market(SIZE_1, order(3, CAROL, Ask, dec!(200.00), 1));
    let events = m.place(carol);
    let trades: Vec<Trade> = events
        .iter()
        .filter_map(|event| match event {
            Event::Trade(trade) => Some(*trade),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].market, SIZE_1);
    assert_eq!(trades[0].maker_order, OrderId(2));
    assert_eq!(trades[0].price, px(dec!(225.00)));
    assert_eq!(m.levels_in(SIZE_0, Ask), [(dec!(220.00), 1, 1)]);
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

#[test]
fn queries_report_best_prices_depth_and_single_orders() {
    let mut m = Market::new();
    assert_eq!(m.engine.best_bid(SIZE_0), None);
    assert_eq!(m.engine.best_ask(SIZE_0), None);
    assert_eq!(m.levels(Bid), []);
    assert_eq!(m.engine.order(OrderId(1)), None);
    assert!(m.engine.is_empty());

    m.bid(1, ALICE, dec!(200.00), 2);
    m.bid(2, CAROL, dec!(210.00), 1);
    m.bid(3, DAVE, dec!(210.00), 3);
    m.bid(4, ERIN, dec!(205.00), 1);
    m.ask(5, ALICE, dec!(230.00), 4);
    m.ask(6, CAROL, dec!(220.00), 1);

    assert_eq!(
        m.engine.best_bid(SIZE_0).map(view),
        Some((dec!(210.00), 4, 2))
    );
    assert_eq!(
        m.engine.best_ask(SIZE_0).map(view),
        Some((dec!(220.00), 1, 1))
    );
    assert_eq!(
        m.levels(Bid),
        [
            (dec!(210.00), 4, 2),
            (dec!(205.00), 1, 1),
            (dec!(200.00), 2, 1),
        ]
    );
    assert_eq!(m.levels(Ask), [(dec!(220.00), 1, 1), (dec!(230.00), 4, 1)]);
    // `depth` stops after the number of levels asked for.
    let top: Vec<Level> = m.engine.depth(SIZE_0, Bid, 2).map(view).collect();
    assert_eq!(top, [(dec!(210.00), 4, 2), (dec!(205.00), 1, 1)]);
    // An unknown size has no levels rather than failing.
    assert_eq!(m.engine.depth(MarketId(9), Bid, 10).count(), 0);
    assert_eq!(m.engine.best_bid(MarketId(9)), None);

    // Carol's bid at 210 fills and Dave's behind it partly: the single-order
    // query shows Dave's remainder.
    m.ioc_ask(7, BOB, dec!(210.00), 3);
    assert_eq!(
        m.resting(3),
        RestingOrder {
            id: OrderId(3),
            user: DAVE,
            market: SIZE_0,
            side: Bid,
            price: px(dec!(210.00)),
            quantity: qty(3),
            remaining: 1,
            expires_at: at(30 * 24),
        }
    );
    assert_eq!(m.resting(3).status(), PartiallyFilled);
    assert_eq!(m.engine.order(OrderId(2)), None);
    assert_eq!(m.engine.len(), 5);
    assert_eq!(m.engine.markets(), 2);
}

// ---------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------

/// A book with history: several levels, a partial fill, a cancel, amends
/// that kept and lost priority, and orders in both sizes.
fn a_book_with_history() -> Market {
    let mut m = Market::new();
    m.ask(1, ALICE, dec!(220.00), 1);
    m.ask(2, CAROL, dec!(220.00), 3);
    m.ask(3, DAVE, dec!(221.00), 2);
    m.bid(4, ALICE, dec!(210.00), 2);
    m.bid(5, CAROL, dec!(205.00), 1);
    m.bid(6, DAVE, dec!(210.00), 5);
    m.ioc_ask(7, ERIN, dec!(210.00), 3); // Alice's 4 fills, Dave's 6 partly
    m.amend(2, None, Some(2)); // keeps its place at 220
    m.amend(1, Some(dec!(221.00)), None); // goes behind Dave at 221
    m.cancel(5);
    m.place(expiring_at(
        at(2),
        in_market(SIZE_1, order(8, BOB, Bid, dec!(300.00), 2)),
    ));
    m.place(expiring_at(
        at(1),
        in_market(SIZE_1, order(9, CAROL, Ask, dec!(310.00), 1)),
    ));
    m
}

#[test]
fn restore_rebuilds_identical_books_that_behave_identically() {
    let mut original = a_book_with_history();
    let orders = original.snapshot();
    assert_eq!(
        orders.iter().map(|order| order.id.0).collect::<Vec<_>>(),
        [6, 2, 3, 1, 8, 9],
        "priority order: size 0 bids, size 0 asks, size 1 bids, size 1 asks"
    );

    let engine = Engine::restore(2, orders.clone()).expect("a book that existed restores");
    let mut restored = Market::from_engine(engine);

    assert_eq!(restored.snapshot(), orders);
    for market in [SIZE_0, SIZE_1] {
        for side in [Bid, Ask] {
            assert_eq!(
                restored.levels_in(market, side),
                original.levels_in(market, side)
            );
        }
    }
    for order in &orders {
        assert_eq!(restored.engine.order(order.id), Some(*order));
    }
    assert_eq!(restored.resting(6).status(), PartiallyFilled);

    // The same commands give the same events: a bid sweeping size 0's asks
    // in priority order and resting, a sale in size 1, and the expiry clock.
    let sweep = order(20, ERIN, Bid, dec!(221.00), 6);
    assert_eq!(restored.place(sweep), original.place(sweep));
    assert_eq!(
        fills(&restored.events),
        [
            (dec!(220.00), 2, 2),
            (dec!(221.00), 2, 3),
            (dec!(221.00), 1, 1),
        ]
    );
    let sale = in_market(SIZE_1, order(21, ALICE, Ask, dec!(300.00), 1));
    assert_eq!(restored.place(sale), original.place(sale));
    assert_eq!(restored.expire(at(2)), original.expire(at(2)));
    assert_eq!(restored.snapshot(), original.snapshot());
}

#[test]
fn restore_refuses_a_list_that_could_not_have_been_a_book() {
    let resting =
        |id: u64, side: Side, price: Decimal, quantity: u32, remaining: u32| RestingOrder {
            id: OrderId(id),
            user: ALICE,
            market: SIZE_0,
            side,
            price: px(price),
            quantity: qty(quantity),
            remaining,
            expires_at: at(1),
        };

    // A bid at or above an ask would have traded.
    let crossed = [
        resting(1, Bid, dec!(225.00), 1, 1),
        resting(2, Ask, dec!(220.00), 1, 1),
    ];
    assert_eq!(
        Engine::restore(2, crossed).map(|_| ()),
        Err(EngineError::RestoreCrossed(OrderId(2)))
    );
    let touching = [
        resting(1, Ask, dec!(220.00), 1, 1),
        resting(2, Bid, dec!(220.00), 1, 1),
    ];
    assert_eq!(
        Engine::restore(2, touching).map(|_| ()),
        Err(EngineError::RestoreCrossed(OrderId(2)))
    );

    let duplicate = [
        resting(1, Bid, dec!(200.00), 1, 1),
        resting(1, Ask, dec!(220.00), 1, 1),
    ];
    assert_eq!(
        Engine::restore(2, duplicate).map(|_| ()),
        Err(EngineError::DuplicateOrder(OrderId(1)))
    );

    for remaining in [0, 3] {
        let impossible = [resting(1, Bid, dec!(200.00), 2, remaining)];
        assert_eq!(
            Engine::restore(2, impossible).map(|_| ()),
            Err(EngineError::InvalidRemaining(OrderId(1)))
        );
    }

    let nowhere = [RestingOrder {
        market: MarketId(2),
        ..resting(1, Bid, dec!(200.00), 1, 1)
    }];
    assert_eq!(
        Engine::restore(2, nowhere).map(|_| ()),
        Err(EngineError::UnknownMarket(MarketId(2)))
    );

    // The same orders in two sizes do not cross each other.
    let apart = [
        resting(1, Bid, dec!(225.00), 1, 1),
        RestingOrder {
            market: SIZE_1,
            ..resting(2, Ask, dec!(220.00), 1, 1)
        },
    ];
    assert!(Engine::restore(2, apart).is_ok());
}
