//! How an expiry of many orders reaches the database: in units of a
//! bounded size, each committed before the next is sent.
//!
//! Every order due at one moment leaves the book at that moment, and so
//! does every order found overdue at start-up. As one unit they were one
//! transaction, however many: on SQLite, in this machine's slow stretch,
//! 20,000 orders took 3.0 s to commit, and 80,000 took longer than the
//! writer's 10 s bound. That commit failed, the product was rebuilt from
//! the database with the orders still open, and the same expiry was tried
//! again, and failed again, for as long as the server ran. Meanwhile every
//! other product's commands waited behind it in the writer.

use bidask_engine::Event;

/// Most orders one expiry unit carries: some 0.3 s of commit at the rate
/// above, so that other products' commands are not held for long.
pub(super) const UNIT_ORDERS: usize = 2_000;

/// An expiry's engine events cut into runs of at most `orders` expired
/// orders each (`orders` ≥ 1). A run ends only where the next order's
/// events begin, so an order's new status and its level's change are
/// committed together.
pub(super) fn runs(events: &[Event], orders: usize) -> Vec<&[Event]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut in_run = 0;
    for (index, event) in events.iter().enumerate() {
        if matches!(event, Event::OrderUpdated(_)) {
            if in_run == orders.max(1) {
                runs.push(&events[start..index]);
                start = index;
                in_run = 0;
            }
            in_run += 1;
        }
    }
    if start < events.len() {
        runs.push(&events[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use bidask_engine::{
        Engine, MarketId, NewOrder, OrderId, Price, Quantity, Side, TimeInForce, Timestamp, UserId,
    };

    use super::*;

    /// The events of expiring `count` resting asks, each on its own level.
    fn expiry_of(count: u64) -> Vec<Event> {
        let mut engine = Engine::new(1);
        let mut events = Vec::new();
        for id in 1..=count {
            let order = NewOrder {
                id: OrderId(id),
                user: UserId(id),
                market: MarketId(0),
                side: Side::Ask,
                price: Price::from_ticks(100 + id).expect("a price"),
                quantity: Quantity::new(1).expect("a quantity"),
                time_in_force: TimeInForce::GoodTillCancelled,
                expires_at: Timestamp(10),
            };
            engine
                .place(order, Timestamp(1), &mut events)
                .expect("placed");
        }
        events.clear();
        engine.expire(Timestamp(10), &mut events);
        events
    }

    fn orders_in(run: &[Event]) -> usize {
        run.iter()
            .filter(|event| matches!(event, Event::OrderUpdated(_)))
            .count()
    }

    #[test]
    fn an_expiry_is_cut_into_runs_of_whole_orders() {
        let events = expiry_of(5);
        assert_eq!(orders_in(&events), 5);
        let runs = runs(&events, 2);
        assert_eq!(
            runs.iter().map(|run| orders_in(run)).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        // Each run starts with an order's status, and together they are
        // the whole expiry, in order.
        assert!(
            runs.iter()
                .all(|run| matches!(run.first(), Some(Event::OrderUpdated(_))))
        );
        assert_eq!(runs.concat(), events);
        assert_eq!(super::runs(&events, UNIT_ORDERS).len(), 1);
        assert!(super::runs(&[], 2).is_empty());
    }
}
