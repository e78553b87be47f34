//! The engine against the reference model on random command streams.
//!
//! Streams run over three markets (plus an unknown one), four users (so
//! the same user often crosses their own orders), twenty prices (so orders
//! cross all the time; half the long streams use 5,000, so books grow wide
//! with empty levels kept between the live ones) and a small id space (so cancels
//! and amendments find their orders, duplicates are tried, and ids come
//! back after an order leaves). Now and then the engine is rebuilt from its
//! own resting orders, as a restart would, and must go on exactly as before.
//! After every command [`Harness`] checks identical results, events and
//! books, and the invariants: never crossed, quantity conserved, fills at
//! the resting price within the taker's limit, never a user with themself,
//! first in first out at each price.
//!
//! Together the two stream tests replay about ten million commands (counted
//! once: 10.0 million). The bytes test stands in for a fuzz target
//! (`cargo fuzz` needs a nightly toolchain, which this project's machines do
//! not have): arbitrary bytes become commands. Failing cases are shrunk and
//! kept in `reference_model.regressions` beside this file, where later runs
//! replay them first.

use bidask_engine::reference::Harness;
use bidask_engine::{
    Command, MarketId, NewOrder, OrderId, Price, Quantity, Side, TimeInForce, Timestamp, UserId,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Markets the product has; commands also name market `MARKETS` (unknown).
const MARKETS: u16 = 3;

/// One step of a stream: how far the clock moves, then what happens.
#[derive(Debug, Clone, Copy)]
struct Step {
    advance: i64,
    op: Op,
}

/// A command with times relative to the step's clock.
#[derive(Debug, Clone, Copy)]
enum Op {
    Place {
        id: u64,
        user: u64,
        market: u16,
        side: Side,
        ticks: u64,
        units: u32,
        time_in_force: TimeInForce,
        lifetime: i64,
    },
    Cancel(u64),
    Amend {
        id: u64,
        ticks: Option<u64>,
        units: Option<u32>,
    },
    Expire,
    /// Rebuild the engine from its resting orders, as a restart would.
    Restore,
}

impl Op {
    /// The engine command, or `None` for a restore (not a command).
    fn command(self, now: Timestamp) -> Option<Command> {
        Some(match self {
            Op::Place {
                id,
                user,
                market,
                side,
                ticks,
                units,
                time_in_force,
                lifetime,
            } => Command::Place(NewOrder {
                id: OrderId(id),
                user: UserId(user),
                market: MarketId(market),
                side,
                price: price(ticks),
                quantity: quantity(units),
                time_in_force,
                expires_at: Timestamp(now.0 + lifetime),
            }),
            Op::Cancel(id) => Command::Cancel(OrderId(id)),
            Op::Amend { id, ticks, units } => Command::Amend {
                id: OrderId(id),
                price: ticks.map(price),
                quantity: units.map(quantity),
            },
            Op::Expire => Command::Expire,
            Op::Restore => return None,
        })
    }
}

fn price(ticks: u64) -> Price {
    Price::from_ticks(ticks.max(1)).expect("at least one tick")
}

fn quantity(units: u32) -> Quantity {
    Quantity::new(units.clamp(1, 10_000)).expect("clamped into range")
}

fn time_in_force() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        6 => Just(TimeInForce::GoodTillCancelled),
        2 => Just(TimeInForce::ImmediateOrCancel),
        2 => Just(TimeInForce::FillOrKill),
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Bid), Just(Side::Ask)]
}

fn units() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1..=6u32, 1 => 1..=40u32]
}

fn op(ids: u64, max_ticks: u64) -> impl Strategy<Value = Op> {
    let place = (
        1..=ids,
        1..=4u64,
        prop_oneof![30 => 0..MARKETS, 1 => Just(MARKETS)],
        side(),
        1..=max_ticks,
        units(),
        time_in_force(),
        // Zero is an order that expires as it arrives: refused.
        prop_oneof![20 => 1..=400i64, 1 => Just(0i64)],
    )
        .prop_map(
            |(id, user, market, side, ticks, units, time_in_force, lifetime)| Op::Place {
                id,
                user,
                market,
                side,
                ticks,
                units,
                time_in_force,
                lifetime,
            },
        );
    let amend = (
        1..=ids,
        proptest::option::of(1..=max_ticks),
        proptest::option::of(units()),
    )
        .prop_map(|(id, ticks, units)| Op::Amend { id, ticks, units });
    prop_oneof![
        50 => place,
        25 => (1..=ids).prop_map(Op::Cancel),
        15 => amend,
        5 => Just(Op::Expire),
        1 => Just(Op::Restore),
    ]
}

fn steps(
    ids: u64,
    max_ticks: u64,
    length: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (
            prop_oneof![3 => Just(0i64), 2 => 1..=5i64],
            op(ids, max_ticks),
        )
            .prop_map(|(advance, op)| Step { advance, op }),
        length,
    )
}

/// Replays `steps` through the harness from a fixed start time.
fn replay(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(MARKETS);
    let mut now = Timestamp(1_000_000);
    for step in steps {
        now = Timestamp(now.0 + step.advance);
        let checked = match step.op.command(now) {
            Some(command) => harness.step(command, now),
            None => harness.restore(),
        };
        checked.map_err(|divergence| TestCaseError::fail(divergence.to_string()))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        cases: 10_000,
        ..ProptestConfig::default()
    })]

    /// About one million commands in short streams, which shrink well.
    #[test]
    fn engine_equals_model_and_keeps_invariants_on_short_streams(steps in steps(40, 20, 0..=200)) {
        replay(&steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        cases: 900,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// About nine million commands in long streams, where books grow deep,
    /// ids are reused many times and expiry entries pile up.
    #[test]
    fn engine_equals_model_and_keeps_invariants_on_long_streams(steps in any::<bool>().prop_flat_map(|wide| steps(300, if wide { 5_000 } else { 20 }, 9_000..=11_000))) {
        replay(&steps)?;
    }

    /// The fuzz entry point: any bytes decode to some command stream, which
    /// must never panic, diverge or break an invariant.
    #[test]
    fn arbitrary_bytes_never_break_the_engine(bytes in proptest::collection::vec(any::<u8>(), 0..4_096)) {
        replay(&decode(&bytes))?;
    }
}

/// Random streams rarely leave more than a hundred empty levels under a
/// best price that never moves, which is what makes a ladder compact its
/// empty levels; this stream does exactly that, twice, on both sides, and
/// keeps trading through it, all checked against the model.
#[test]
fn engine_equals_model_through_level_compaction() {
    let mut harness = Harness::new(1);
    let now = Timestamp(1_000_000);
    let gtc = |id: u64, user: u64, side: Side, ticks: u64, units: u32| Op::Place {
        id,
        user,
        market: 0,
        side,
        ticks,
        units,
        time_in_force: TimeInForce::GoodTillCancelled,
        lifetime: 1_000,
    };
    let mut steps = vec![
        gtc(1, 1, Side::Bid, 10_000, 50),
        gtc(2, 2, Side::Ask, 10_001, 50),
    ];
    for round in 0..2u64 {
        for n in 0..400u64 {
            let id = 100 + round * 1_000 + n;
            steps.push(gtc(id, 3, Side::Bid, 9_000 - n, 1));
            steps.push(gtc(id + 500, 4, Side::Ask, 11_000 + n, 1));
        }
        for n in 0..400u64 {
            let id = 100 + round * 1_000 + n;
            steps.push(Op::Cancel(id));
            steps.push(Op::Cancel(id + 500));
        }
        // Orders at prices whose levels were emptied, then a sweep through them.
        steps.push(gtc(5_000 + round, 5, Side::Bid, 8_990, 2));
        steps.push(Op::Restore);
        steps.push(gtc(6_000 + round, 6, Side::Ask, 8_000, 60));
        steps.push(gtc(7_000 + round, 7, Side::Bid, 10_000, 10));
    }
    for op in steps {
        let checked = match op.command(now) {
            Some(command) => harness.step(command, now),
            None => harness.restore(),
        };
        if let Err(divergence) = checked {
            panic!("{divergence}");
        }
    }
}

/// Turns bytes into steps, eight bytes a step, covering every command kind,
/// every field range (including out-of-range markets and odd quantities).
fn decode(bytes: &[u8]) -> Vec<Step> {
    bytes
        .chunks_exact(8)
        .map(|chunk| {
            let [kind, a, b, c, d, e, f, g] = [
                chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
            ];
            let id = u64::from(a % 64) + 1;
            let op = match kind % 8 {
                0..=3 => Op::Place {
                    id,
                    user: u64::from(b % 5) + 1,
                    market: u16::from(c % 4),
                    side: if d & 1 == 0 { Side::Bid } else { Side::Ask },
                    ticks: u64::from(d >> 1) % 24 + 1,
                    units: u32::from(e) * 40 + 1,
                    time_in_force: match f % 4 {
                        0 => TimeInForce::ImmediateOrCancel,
                        1 => TimeInForce::FillOrKill,
                        _ => TimeInForce::GoodTillCancelled,
                    },
                    lifetime: i64::from(g % 128),
                },
                4 | 5 => Op::Cancel(id),
                6 => Op::Amend {
                    id,
                    ticks: (b & 1 == 1).then_some(u64::from(c) % 24 + 1),
                    units: (b & 2 == 2).then_some(u32::from(d) % 12 + 1),
                },
                _ if b & 1 == 0 => Op::Expire,
                _ => Op::Restore,
            };
            Step {
                advance: i64::from(kind >> 5),
                op,
            }
        })
        .collect()
}
