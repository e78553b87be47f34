//! Micro-benchmarks of the engine's hot paths: resting a new order,
//! cancelling one (from the top of the book and from anywhere in it), an
//! incoming order sweeping several price levels, and expiring orders.

use std::hint::black_box;

use bidask_engine::{
    Engine, Event, MarketId, NewOrder, OrderId, Price, Quantity, Side, TimeInForce, Timestamp,
    UserId,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const NOW: Timestamp = Timestamp(1_700_000_000_000_000);
const LATER: Timestamp = Timestamp(1_700_000_000_000_000 + 30 * 86_400 * 1_000_000);

fn order(id: u64, side: Side, ticks: u64, units: u32, time_in_force: TimeInForce) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        user: UserId(id),
        market: MarketId(0),
        side,
        price: Price::from_ticks(ticks).expect("benchmark prices are positive"),
        quantity: Quantity::new(units).expect("benchmark quantities are in range"),
        time_in_force,
        expires_at: LATER,
    }
}

/// A market with `per_side` resting orders on each side, ten per level,
/// asks from 20_001 ticks up and bids from 20_000 down.
fn seeded(per_side: u64) -> Engine {
    let mut engine = Engine::with_capacity(1, 2 * per_side as usize + 1024);
    let mut events = Vec::new();
    for n in 0..per_side {
        let gtc = TimeInForce::GoodTillCancelled;
        let ask = order(2 * n + 1, Side::Ask, 20_001 + n / 10, 1, gtc);
        let bid = order(2 * n + 2, Side::Bid, 20_000 - n / 10, 1, gtc);
        engine.place(ask, NOW, &mut events).expect("seed ask");
        engine.place(bid, NOW, &mut events).expect("seed bid");
        events.clear();
    }
    engine
}

fn place_and_cancel(c: &mut Criterion) {
    let mut engine = seeded(1_000);
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let mut next_id = 1_000_000;
    c.bench_function("place resting bid + cancel it (2,000 resting)", |b| {
        b.iter(|| {
            next_id += 1;
            let bid = order(
                next_id,
                Side::Bid,
                19_990 + next_id % 10,
                1,
                TimeInForce::GoodTillCancelled,
            );
            engine
                .place(black_box(bid), NOW, &mut events)
                .expect("place");
            engine
                .cancel(black_box(OrderId(next_id)), &mut events)
                .expect("cancel");
            events.clear();
        })
    });
}

fn place_resting(c: &mut Criterion) {
    c.bench_function(
        "place 1,000 resting bids near the best (2,000 resting)",
        |b| {
            b.iter_batched_ref(
                || (seeded(1_000), Vec::with_capacity(64)),
                |(engine, events)| {
                    for n in 0..1_000 {
                        let bid = order(
                            1_000_000 + n,
                            Side::Bid,
                            19_995 + n % 5,
                            1,
                            TimeInForce::GoodTillCancelled,
                        );
                        engine.place(black_box(bid), NOW, events).expect("place");
                        events.clear();
                    }
                },
                BatchSize::LargeInput,
            )
        },
    );
}

fn cancel(c: &mut Criterion) {
    c.bench_function(
        "cancel 1,000 resting orders from the top (2,000 resting)",
        |b| {
            b.iter_batched_ref(
                || (seeded(1_000), Vec::with_capacity(64)),
                |(engine, events)| {
                    for n in 0..1_000 {
                        engine
                            .cancel(black_box(OrderId(2 * n + 1)), events)
                            .expect("cancel");
                        events.clear();
                    }
                },
                BatchSize::LargeInput,
            )
        },
    );
}

fn cancel_scattered(c: &mut Criterion) {
    c.bench_function(
        "cancel 1,000 resting orders in scattered order (2,000 resting)",
        |b| {
            b.iter_batched_ref(
                || (seeded(1_000), Vec::with_capacity(64)),
                |(engine, events)| {
                    // 7 is coprime with 1,000, so this visits every ask once, all over the book.
                    for n in 0..1_000 {
                        let ask = (n * 7) % 1_000;
                        engine
                            .cancel(black_box(OrderId(2 * ask + 1)), events)
                            .expect("cancel");
                        events.clear();
                    }
                },
                BatchSize::LargeInput,
            )
        },
    );
}

fn expire(c: &mut Criterion) {
    c.bench_function("expire 1,000 of 2,000 resting orders", |b| {
        b.iter_batched_ref(
            || {
                let mut engine = seeded(1_000);
                let mut events = Vec::with_capacity(4_096);
                for n in 0..1_000u64 {
                    let mut bid = order(
                        2_000_000 + n,
                        Side::Bid,
                        19_000 - n % 50,
                        1,
                        TimeInForce::GoodTillCancelled,
                    );
                    bid.expires_at = Timestamp(NOW.0 + 1 + n as i64);
                    engine.place(bid, NOW, &mut events).expect("place");
                }
                events.clear();
                (engine, events)
            },
            |(engine, events)| {
                let expired = engine.expire(black_box(Timestamp(NOW.0 + 1_000)), events);
                assert_eq!(expired, 1_000);
            },
            BatchSize::LargeInput,
        )
    });
}

fn sweep(c: &mut Criterion) {
    c.bench_function("ioc bid sweeping 10 levels (100 orders)", |b| {
        b.iter_batched_ref(
            || (seeded(1_000), Vec::with_capacity(512)),
            |(engine, events)| {
                let sweep = order(
                    9_000_000,
                    Side::Bid,
                    20_010,
                    100,
                    TimeInForce::ImmediateOrCancel,
                );
                engine.place(black_box(sweep), NOW, events).expect("sweep");
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(
    benches,
    place_and_cancel,
    place_resting,
    cancel,
    cancel_scattered,
    sweep,
    expire
);
criterion_main!(benches);
