//! The `orders` scenario: many traders on keep-alive HTTP placing a
//! realistic mix on many markets (passive bids and asks that rest, orders
//! priced through the other side that match, some of them Buy Now / Sell
//! Now, and cancels of their own resting orders) while every request is
//! timed.
//!
//! By default each trader sends its next request when the last one is
//! answered (a closed loop: the load is whatever the server sustains).
//! With `--rate` the requests follow a fixed timetable instead (an open
//! loop, see [`crate::schedule`]): latency then counts from when each
//! request was due, so it is the latency at that offered rate.
//!
//! Setup (reading the catalog, signing users in) is not measured. The
//! measured phase ends at `--duration` or after `--requests` requests,
//! whichever comes first, and every request is bounded by `--timeout`, so a
//! run always ends. A request that fails is counted, never fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{ArgAction, Args};
use rand::{Rng, RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::task::JoinSet;

use crate::api::{
    Answer, ApiClient, NewOrder, Placed, Side, TimeInForce, TransportError, TransportKind,
};
use crate::args::{parse_duration, parse_fraction};
use crate::catalog::{self, Market};
use crate::error::LoadgenError;
use crate::price::Price;
use crate::progress::{self, LiveFigures, PhaseProgress};
use crate::report::{ErrorCounts, ErrorKind, Latencies, OrdersReport};
use crate::schedule::Schedule;
use crate::users::{self, RunId, Session};

/// Where the generator looks for a server unless told otherwise: the
/// server's own default listen address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Default number of concurrent traders.
pub const DEFAULT_TRADERS: u32 = 64;
/// Default length of the measured phase.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default seed of the order stream.
pub const DEFAULT_SEED: u64 = 42;

/// Percent of steps that cancel one of the trader's resting orders (when it
/// has one; otherwise the step places a passive order instead).
const CANCEL_PERCENT: u32 = 40;
/// Percent of steps that place an order priced through the other side.
const CROSSING_PERCENT: u32 = 15;
// The remaining 45% place passive orders.

/// Every market's mid price sits within this many cents of $200.00, so
/// markets differ but all trade like one sneaker in demand.
const MID_CENTS: i64 = 20_000;
const MID_SPREAD_CENTS: i64 = 500;
/// Passive orders rest this many cents away from the mid: up to $4 off.
const PASSIVE_OFFSET_CENTS: std::ops::RangeInclusive<i64> = 1..=400;
/// Crossing orders reach this far through the mid: past every passive
/// order, so they trade whenever the other side has anything resting.
const CROSSING_REACH_CENTS: std::ops::RangeInclusive<i64> = 401..=600;
/// A trader that has this many orders resting cancels before placing more,
/// which bounds its memory and the books.
const MAX_RESTING_PER_TRADER: usize = 1_000;
/// How often the progress bar's figures are refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Settings of an `orders` run; also its command-line options.
#[derive(Debug, Clone, Args)]
pub struct OrdersConfig {
    /// Base URL of the bidask server (plain HTTP; the load goes nowhere else).
    #[arg(long, env = "BIDASK_LOADGEN_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Concurrent traders, each its own user; they share a pool of
    /// keep-alive connections, one per request in flight.
    #[arg(
        long,
        env = "BIDASK_LOADGEN_TRADERS",
        default_value_t = DEFAULT_TRADERS,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub traders: u32,

    /// How long the measured phase lasts (e.g. 10s, 500ms, 2m).
    #[arg(long, env = "BIDASK_LOADGEN_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Stop once this many requests (places and cancels) have been sent,
    /// even before --duration is up.
    #[arg(
        long,
        env = "BIDASK_LOADGEN_REQUESTS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub requests: Option<u64>,

    /// Offer this many requests (places and cancels) per second on a fixed
    /// timetable, timing each from when it was due; without it, each
    /// trader sends as soon as its last answer arrives. The traders are
    /// the most requests in flight at once: give enough of them.
    #[arg(
        long,
        env = "BIDASK_LOADGEN_RATE",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub rate: Option<u32>,

    /// Seed of the order stream: the same seed, the same choices.
    #[arg(long, env = "BIDASK_LOADGEN_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Longest wait for any one request, connecting included.
    #[arg(long, env = "BIDASK_LOADGEN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Exit with status 3 when errors / requests exceeds this fraction
    /// (0 allows no error; the default, 1, never fails the run).
    #[arg(long, env = "BIDASK_LOADGEN_MAX_ERROR_RATE", default_value_t = 1.0, value_parser = parse_fraction)]
    pub max_error_rate: f64,

    /// Usernames are `lg<RUN_ID>-<n>`; name an earlier run's id to reuse its
    /// users (default: a fresh id from the clock).
    #[arg(long, env = "BIDASK_LOADGEN_RUN_ID")]
    pub run_id: Option<RunId>,

    /// Draw no progress bar.
    #[arg(long = "no-progress", action = ArgAction::SetFalse)]
    pub progress: bool,
}

impl OrdersConfig {
    /// The command line's defaults, against the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            traders: DEFAULT_TRADERS,
            duration: DEFAULT_DURATION,
            requests: None,
            rate: None,
            seed: DEFAULT_SEED,
            timeout: DEFAULT_TIMEOUT,
            max_error_rate: 1.0,
            run_id: None,
            progress: true,
        }
    }
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self::new(DEFAULT_URL)
    }
}

/// Runs the scenario against the server in `config` and reports what it
/// measured. Fails only when setup fails (no server, empty catalog, a user
/// that cannot sign in); errors during the measured phase are in the report.
pub async fn run(config: OrdersConfig) -> Result<OrdersReport, LoadgenError> {
    let trader_count = usize::try_from(config.traders.max(1)).unwrap_or(1);
    let api = ApiClient::new(&config.url, config.timeout).await?;
    let catalog = catalog::fetch(&api).await?;

    let run_id = config.run_id.clone().unwrap_or_else(RunId::from_clock);
    let bar = progress::counting(trader_count as u64, "signing in traders", config.progress);
    let signed_in = users::sign_in_all(&api, &run_id, trader_count, || bar.inc(1)).await;
    bar.finish_and_clear();
    let sessions = signed_in?;

    let mut seeds = Pcg64Mcg::seed_from_u64(config.seed);
    let quotes: Vec<Quote> = catalog
        .markets
        .iter()
        .map(|market| Quote {
            market: market.clone(),
            mid_cents: MID_CENTS + seeds.random_range(-MID_SPREAD_CENTS..=MID_SPREAD_CENTS),
        })
        .collect();
    let traders: Vec<Trader> = sessions
        .into_iter()
        .map(|session| Trader::new(session, seeds.next_u64()))
        .collect::<Result<_, _>>()?;

    let started = Instant::now();
    let floor = Arc::new(TradingFloor {
        api,
        quotes,
        deadline: started + config.duration,
        schedule: config
            .rate
            .map(|rate| Schedule::new(started, rate, config.duration)),
        request_cap: config.requests,
        live: LiveCounters::default(),
    });
    let phase = PhaseProgress::over(config.duration, config.progress);
    let ticker = tokio::spawn(show_progress(
        phase.clone(),
        Arc::clone(&floor),
        started + config.duration + config.timeout,
    ));
    let mut tasks = JoinSet::new();
    for trader in traders {
        tasks.spawn(trader.trade(Arc::clone(&floor)));
    }
    let mut total = Tally::new()?;
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(tally)) => total.merge(&tally)?,
            Ok(Err(error)) => failure = failure.or(Some(error)),
            Err(error) => failure = failure.or(Some(LoadgenError::Trader(error))),
        }
    }
    let elapsed = started.elapsed();
    ticker.abort();
    phase.finish();
    if let Some(error) = failure {
        return Err(error);
    }

    Ok(total.report(ReportContext {
        url: floor.api.base_url().to_owned(),
        schedule: floor.schedule,
        request_cap: config.requests,
        run_id: run_id.to_string(),
        seed: config.seed,
        traders: trader_count,
        products: catalog.products,
        markets: catalog.markets.len(),
        elapsed,
    }))
}

/// What every trader shares: the server, the markets, and when to stop.
#[derive(Debug)]
struct TradingFloor {
    api: ApiClient,
    /// Never empty: the catalog walk fails when it finds no market.
    quotes: Vec<Quote>,
    deadline: Instant,
    /// The timetable of an open-loop run; `None` for a closed loop.
    schedule: Option<Schedule>,
    request_cap: Option<u64>,
    live: LiveCounters,
}

/// Running totals the progress bar reads while traders keep their own
/// exact tallies.
#[derive(Debug, Default)]
struct LiveCounters {
    sent: AtomicU64,
    accepted: AtomicU64,
    cancels: AtomicU64,
    errors: AtomicU64,
}

/// A market and the mid price its orders gather around.
#[derive(Debug, Clone)]
struct Quote {
    market: Market,
    mid_cents: i64,
}

/// One simulated trader: its session, its own random stream (so the run
/// does not serialise on a shared generator), and the ids of its orders
/// that may still rest.
#[derive(Debug)]
struct Trader {
    session: Session,
    rng: Pcg64Mcg,
    resting: Vec<i64>,
    tally: Tally,
}

/// What one trader saw; merged across traders at the end.
#[derive(Debug, Clone)]
struct Tally {
    place_requests: u64,
    accepted: u64,
    matches: u64,
    self_trade_cancels: u64,
    cancel_requests: u64,
    cancels: u64,
    cancel_conflicts: u64,
    errors: ErrorCounts,
    /// Orders placed (201) only: a refusal is an error, counted as such,
    /// and mixing its time in would flatter or spoil the figure.
    place_latency: Latencies,
    /// Cancels done (200) only: a 409 (the order had already gone) is
    /// answered from memory, with no commit, and would pull it down.
    cancel_latency: Latencies,
    /// Open loop only: how late each request left after it was due, which
    /// grows when every trader is busy (too few traders, or the generator
    /// itself short of CPU).
    start_lag: Latencies,
}

/// The run's facts that are not counted by traders.
#[derive(Debug)]
struct ReportContext {
    url: String,
    schedule: Option<Schedule>,
    request_cap: Option<u64>,
    run_id: String,
    seed: u64,
    traders: usize,
    products: usize,
    markets: usize,
    elapsed: Duration,
}

/// A trader's next request.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Place(Plan),
    Cancel(i64),
}

/// An order about to be placed.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    /// Index into the floor's quotes.
    market: usize,
    side: Side,
    price: Price,
    quantity: u32,
    time_in_force: Option<TimeInForce>,
}

/// A request a trader may send, and what its latency counts from.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Closed loop: now, timed from a ready connection.
    Now,
    /// Open loop: the moment the timetable has it due.
    Due(Instant),
}

impl TradingFloor {
    /// Takes the next request from the `--requests` budget and, in an open
    /// loop, from the timetable; `None` once the run is over. A request
    /// still due when the measured phase has ended is not sent: the report
    /// counts it as unsent.
    fn claim(&self) -> Option<Slot> {
        let now = Instant::now();
        if now >= self.deadline {
            return None;
        }
        let index = self.live.sent.fetch_add(1, Ordering::Relaxed);
        if self.request_cap.is_some_and(|cap| index >= cap) {
            return None;
        }
        match &self.schedule {
            None => Some(Slot::Now),
            Some(schedule) => schedule.due(index).map(Slot::Due),
        }
    }
}

impl Slot {
    /// The latency of a request sent in this slot and answered just now.
    fn latency(self, answer: &Answer) -> Duration {
        match self {
            Self::Now => answer.elapsed,
            Self::Due(due) => due.elapsed(),
        }
    }
}

impl LiveCounters {
    fn figures(&self) -> LiveFigures {
        LiveFigures {
            accepted: self.accepted.load(Ordering::Relaxed),
            cancels: self.cancels.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl Trader {
    fn new(session: Session, seed: u64) -> Result<Self, LoadgenError> {
        Ok(Self {
            session,
            rng: Pcg64Mcg::seed_from_u64(seed),
            resting: Vec::new(),
            tally: Tally::new()?,
        })
    }

    /// Trades until the deadline or the request budget, one request at a
    /// time (a real trader waits for an answer before deciding again).
    async fn trade(mut self, floor: Arc<TradingFloor>) -> Result<Tally, LoadgenError> {
        while let Some(slot) = floor.claim() {
            if let Slot::Due(due) = slot {
                tokio::time::sleep_until(due.into()).await;
                self.tally.start_lag.record(due.elapsed());
            }
            match next_step(&mut self.rng, &floor.quotes, &mut self.resting) {
                Step::Place(plan) => self.place(&floor, plan, slot).await,
                Step::Cancel(order_id) => self.cancel(&floor, order_id, slot).await,
            }
        }
        Ok(self.tally)
    }

    async fn place(&mut self, floor: &TradingFloor, plan: Plan, slot: Slot) {
        let Some(quote) = floor.quotes.get(plan.market) else {
            return;
        };
        let order = NewOrder {
            product_id: quote.market.product_id,
            size: &quote.market.size,
            price: plan.price.to_string(),
            quantity: plan.quantity,
            time_in_force: plan.time_in_force,
        };
        self.tally.place_requests += 1;
        let exchanged = floor
            .api
            .place(&self.session.token, plan.side, &order)
            .await;
        let answer = match exchanged {
            Ok(answer) => answer,
            Err(failure) => return self.count_error(floor, transport_error(&failure)),
        };
        if !answer.is_success() {
            return self.count_error(floor, ErrorKind::Status(answer.status));
        }
        self.tally.place_latency.record(slot.latency(&answer));
        let Ok(placed) = answer.json::<Placed>() else {
            return self.count_error(floor, ErrorKind::Decode);
        };
        self.tally.accepted += 1;
        floor.live.accepted.fetch_add(1, Ordering::Relaxed);
        self.tally.matches += placed.match_count() as u64;
        if placed.order.stopped_by_self_trade() {
            self.tally.self_trade_cancels += 1;
        }
        if placed.order.is_resting() {
            self.resting.push(placed.order.id);
        }
    }

    async fn cancel(&mut self, floor: &TradingFloor, order_id: i64, slot: Slot) {
        self.tally.cancel_requests += 1;
        let answer: Answer = match floor.api.cancel(&self.session.token, order_id).await {
            Ok(answer) => answer,
            Err(failure) => return self.count_error(floor, transport_error(&failure)),
        };
        match answer.status {
            200..=299 => {
                self.tally.cancel_latency.record(slot.latency(&answer));
                self.tally.cancels += 1;
                floor.live.cancels.fetch_add(1, Ordering::Relaxed);
            }
            // Filled or cancelled between placing and cancelling: a race
            // every real trader meets, not a fault.
            409 => self.tally.cancel_conflicts += 1,
            status => self.count_error(floor, ErrorKind::Status(status)),
        }
    }

    fn count_error(&mut self, floor: &TradingFloor, kind: ErrorKind) {
        self.tally.errors.add(kind);
        floor.live.errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl Tally {
    fn new() -> Result<Self, LoadgenError> {
        Ok(Self {
            place_requests: 0,
            accepted: 0,
            matches: 0,
            self_trade_cancels: 0,
            cancel_requests: 0,
            cancels: 0,
            cancel_conflicts: 0,
            errors: ErrorCounts::default(),
            place_latency: Latencies::new()?,
            cancel_latency: Latencies::new()?,
            start_lag: Latencies::new()?,
        })
    }

    fn merge(&mut self, other: &Self) -> Result<(), LoadgenError> {
        self.place_requests += other.place_requests;
        self.accepted += other.accepted;
        self.matches += other.matches;
        self.self_trade_cancels += other.self_trade_cancels;
        self.cancel_requests += other.cancel_requests;
        self.cancels += other.cancels;
        self.cancel_conflicts += other.cancel_conflicts;
        self.errors.merge(&other.errors);
        self.place_latency.merge(&other.place_latency)?;
        self.cancel_latency.merge(&other.cancel_latency)?;
        self.start_lag.merge(&other.start_lag)
    }

    fn report(self, context: ReportContext) -> OrdersReport {
        let seconds = context.elapsed.as_secs_f64();
        let per_second = |count: u64| {
            if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            }
        };
        let requests = self.place_requests + self.cancel_requests;
        let errors = self.errors.total();
        let place = self.place_latency.summary();
        let cancel = self.cancel_latency.summary();
        let start_lag = self.start_lag.summary();
        let offered = context.schedule.map(|schedule| {
            let slots = schedule.slots();
            context.request_cap.map_or(slots, |cap| slots.min(cap))
        });
        OrdersReport {
            scenario: "orders",
            url: context.url,
            run_id: context.run_id,
            seed: context.seed,
            traders: context.traders,
            products: context.products,
            markets: context.markets,
            duration_s: seconds,
            offered_rate: context.schedule.as_ref().map(Schedule::rate),
            offered,
            unsent: offered.map(|offered| offered.saturating_sub(requests)),
            start_lag_p99_ms: context.schedule.map(|_| start_lag.p99_ms),
            start_lag_max_ms: context.schedule.map(|_| start_lag.max_ms),
            requests,
            place_requests: self.place_requests,
            accepted: self.accepted,
            orders_per_sec: per_second(self.accepted),
            matches: self.matches,
            self_trade_cancels: self.self_trade_cancels,
            cancel_requests: self.cancel_requests,
            cancels: self.cancels,
            cancels_per_sec: per_second(self.cancels),
            cancel_conflicts: self.cancel_conflicts,
            p50_ms: place.p50_ms,
            p99_ms: place.p99_ms,
            p999_ms: place.p999_ms,
            max_ms: place.max_ms,
            mean_ms: place.mean_ms,
            cancel_p50_ms: cancel.p50_ms,
            cancel_p99_ms: cancel.p99_ms,
            cancel_p999_ms: cancel.p999_ms,
            cancel_max_ms: cancel.max_ms,
            errors,
            rate_limited: self.errors.get(ErrorKind::Status(429)),
            errors_by_kind: self.errors,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
        }
    }
}

/// Refreshes the progress bar until aborted, or until `until` at the latest.
async fn show_progress(phase: PhaseProgress, floor: Arc<TradingFloor>, until: Instant) {
    let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
    while Instant::now() < until {
        interval.tick().await;
        phase.show(floor.live.figures());
    }
}

/// The error kind of a request that got no complete answer.
pub(crate) fn transport_error(failure: &TransportError) -> ErrorKind {
    match failure.kind() {
        TransportKind::Timeout => ErrorKind::Timeout,
        TransportKind::Connection => ErrorKind::Connection,
    }
}

/// Chooses a trader's next request: a cancel of one of its resting orders
/// (40%), an order priced through the other side (15%), or a passive order
/// (45%, and whenever a cancel is drawn with nothing resting). `quotes`
/// must not be empty.
fn next_step(rng: &mut Pcg64Mcg, quotes: &[Quote], resting: &mut Vec<i64>) -> Step {
    let roll = rng.random_range(0..100u32);
    let must_cancel = resting.len() >= MAX_RESTING_PER_TRADER;
    if !resting.is_empty() && (must_cancel || roll < CANCEL_PERCENT) {
        let chosen = rng.random_range(0..resting.len());
        return Step::Cancel(resting.swap_remove(chosen));
    }
    let market = rng.random_range(0..quotes.len());
    let quote = &quotes[market];
    let side = if rng.random_ratio(1, 2) {
        Side::Bid
    } else {
        Side::Ask
    };
    let crossing = (CANCEL_PERCENT..CANCEL_PERCENT + CROSSING_PERCENT).contains(&roll);
    let (price, time_in_force) = if crossing {
        let price = crossing_price(rng, quote, side);
        (price, rng.random_ratio(1, 2).then_some(TimeInForce::Ioc))
    } else {
        (passive_price(rng, quote, side), None)
    };
    let quantity = if rng.random_ratio(4, 5) {
        1
    } else {
        rng.random_range(2..=3)
    };
    Step::Place(Plan {
        market,
        side,
        price,
        quantity,
        time_in_force,
    })
}

/// A price that rests: a bid strictly under the mid, an ask strictly over
/// it, so two passive orders never meet.
fn passive_price(rng: &mut Pcg64Mcg, quote: &Quote, side: Side) -> Price {
    let offset = rng.random_range(PASSIVE_OFFSET_CENTS);
    match side {
        Side::Bid => quote.market.tick.at_most(quote.mid_cents - offset),
        Side::Ask => quote.market.tick.at_least(quote.mid_cents + offset),
    }
}

/// A price through every passive order on the other side, so the order
/// trades with whatever rests there.
fn crossing_price(rng: &mut Pcg64Mcg, quote: &Quote, side: Side) -> Price {
    let reach = rng.random_range(CROSSING_REACH_CENTS);
    match side {
        Side::Bid => quote.market.tick.at_least(quote.mid_cents + reach),
        Side::Ask => quote.market.tick.at_most(quote.mid_cents - reach),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::price::TickSize;

    fn quotes(ticks: &[&str]) -> Vec<Quote> {
        ticks
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let Ok(tick) = TickSize::parse(text) else {
                    panic!("{text} is a valid tick size");
                };
                Quote {
                    market: Market {
                        product_id: index as i64 + 1,
                        size: "10".to_owned(),
                        tick,
                    },
                    mid_cents: MID_CENTS + (index as i64 * 137) % MID_SPREAD_CENTS,
                }
            })
            .collect()
    }

    /// The price as sent, in units of 10^-9: exact for every tick the
    /// tests use, and read from the string so the check covers printing.
    fn nanos_of(price: Price) -> u128 {
        let text = price.to_string();
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        assert!(fraction.len() <= 9, "{text} has too many decimals");
        let whole: u128 = whole.parse().unwrap_or(u128::MAX / 2);
        let fraction: u128 = format!("{fraction:0<9}").parse().unwrap_or(u128::MAX / 2);
        whole * 1_000_000_000 + fraction
    }

    fn mid_nanos(quote: &Quote) -> u128 {
        u128::try_from(quote.mid_cents).unwrap_or(0) * 10_000_000
    }

    #[test]
    fn the_mix_is_roughly_the_one_described() {
        let quotes = quotes(&["0.01", "0.01", "0.25", "1"]);
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let mut resting = Vec::new();
        let (mut cancels, mut crossing, mut passive, mut ioc) = (0u32, 0u32, 0u32, 0u32);
        let mut next_id = 0;
        // Few enough steps that the resting list stays under its cap, which
        // would otherwise force extra cancels.
        for _ in 0..10_000 {
            match next_step(&mut rng, &quotes, &mut resting) {
                Step::Cancel(_) => cancels += 1,
                Step::Place(plan) => {
                    let quote = &quotes[plan.market];
                    let through = match plan.side {
                        Side::Bid => nanos_of(plan.price) > mid_nanos(quote),
                        Side::Ask => nanos_of(plan.price) < mid_nanos(quote),
                    };
                    if through {
                        crossing += 1;
                    } else {
                        passive += 1;
                        // Every passive order rests in this simulation.
                        next_id += 1;
                        resting.push(next_id);
                    }
                    if plan.time_in_force == Some(TimeInForce::Ioc) {
                        ioc += 1;
                        assert!(through, "only crossing orders are ioc");
                    }
                    assert!((1..=3).contains(&plan.quantity));
                }
            }
        }
        assert!(resting.len() < MAX_RESTING_PER_TRADER);
        assert!((3_700..4_300).contains(&cancels), "{cancels} cancels");
        assert!((1_300..1_700).contains(&crossing), "{crossing} crossing");
        assert!((4_200..4_800).contains(&passive), "{passive} passive");
        assert!(
            ioc > crossing / 3 && ioc < crossing * 2 / 3,
            "{ioc} of {crossing} ioc"
        );
    }

    #[test]
    fn every_generated_price_is_positive_and_on_tick() {
        let quotes = quotes(&["0.01", "0.05", "0.25", "0.5", "1", "5", "0.001"]);
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        for quote in &quotes {
            // Aiming at zero gives the lowest price there is: one tick.
            let tick_nanos = nanos_of(quote.market.tick.nearest(0));
            for side in [Side::Bid, Side::Ask] {
                for _ in 0..2_000 {
                    for price in [
                        passive_price(&mut rng, quote, side),
                        crossing_price(&mut rng, quote, side),
                    ] {
                        let nanos = nanos_of(price);
                        assert!(nanos > 0, "{price} is not above zero");
                        assert_eq!(
                            nanos % tick_nanos,
                            0,
                            "{price} is off the {} tick",
                            quote.market.tick
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn passive_orders_rest_and_crossing_orders_reach_through_them() {
        let quotes = quotes(&["0.01", "0.25", "1"]);
        let mut rng = Pcg64Mcg::seed_from_u64(9);
        for quote in &quotes {
            let mid = mid_nanos(quote);
            let mut highest_passive_ask = 0;
            let mut lowest_crossing_bid = u128::MAX;
            let mut lowest_passive_bid = u128::MAX;
            let mut highest_crossing_ask = 0;
            for _ in 0..5_000 {
                let bid = nanos_of(passive_price(&mut rng, quote, Side::Bid));
                let ask = nanos_of(passive_price(&mut rng, quote, Side::Ask));
                assert!(bid < mid && mid < ask, "passive {bid} / {ask} around {mid}");
                highest_passive_ask = highest_passive_ask.max(ask);
                lowest_passive_bid = lowest_passive_bid.min(bid);
                lowest_crossing_bid =
                    lowest_crossing_bid.min(nanos_of(crossing_price(&mut rng, quote, Side::Bid)));
                highest_crossing_ask =
                    highest_crossing_ask.max(nanos_of(crossing_price(&mut rng, quote, Side::Ask)));
            }
            assert!(lowest_crossing_bid >= highest_passive_ask);
            assert!(highest_crossing_ask <= lowest_passive_bid);
        }
    }

    #[test]
    fn a_trader_with_too_much_resting_cancels_first() {
        let quotes = quotes(&["0.01"]);
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        let mut resting: Vec<i64> = (0..MAX_RESTING_PER_TRADER as i64).collect();
        for _ in 0..10 {
            resting.push(-1);
            assert!(matches!(
                next_step(&mut rng, &quotes, &mut resting),
                Step::Cancel(_)
            ));
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_stream() {
        let quotes = quotes(&["0.01", "0.25"]);
        let stream = |seed| {
            let mut rng = Pcg64Mcg::seed_from_u64(seed);
            let mut resting = vec![1, 2, 3];
            (0..1_000)
                .map(|_| next_step(&mut rng, &quotes, &mut resting))
                .collect::<Vec<_>>()
        };
        assert_eq!(stream(8), stream(8));
        assert_ne!(stream(8), stream(9));
    }

    #[test]
    fn an_open_loop_request_is_timed_from_when_it_was_due() {
        let answer = Answer {
            status: 201,
            elapsed: Duration::from_millis(2),
            retry_after: None,
            body: bytes::Bytes::new(),
        };
        assert_eq!(Slot::Now.latency(&answer), Duration::from_millis(2));
        // Due 300 ms ago and answered now: 300 ms, however quick the
        // exchange itself was.
        let due = Instant::now()
            .checked_sub(Duration::from_millis(300))
            .expect("a clock more than 300 ms past its start");
        let latency = Slot::Due(due).latency(&answer);
        assert!(latency >= Duration::from_millis(300), "{latency:?}");
    }

    #[test]
    fn the_command_line_defaults_are_the_library_defaults() {
        #[derive(Debug, Parser)]
        struct Command {
            #[command(flatten)]
            config: OrdersConfig,
        }
        let parsed = match Command::try_parse_from(["bidask-loadgen"]) {
            Ok(command) => command.config,
            Err(error) => panic!("{error}"),
        };
        let defaults = OrdersConfig::default();
        // The environment may set BIDASK_LOADGEN_*; compare only what it
        // does not override.
        if std::env::vars().any(|(name, _)| name.starts_with("BIDASK_LOADGEN_")) {
            return;
        }
        assert_eq!(parsed.url, defaults.url);
        assert_eq!(parsed.traders, defaults.traders);
        assert_eq!(parsed.duration, defaults.duration);
        assert_eq!(parsed.requests, defaults.requests);
        assert_eq!(parsed.rate, defaults.rate);
        assert_eq!(parsed.seed, defaults.seed);
        assert_eq!(parsed.timeout, defaults.timeout);
        assert_eq!(parsed.max_error_rate, defaults.max_error_rate);
        assert_eq!(parsed.run_id, defaults.run_id);
        assert_eq!(parsed.progress, defaults.progress);
    }
}
