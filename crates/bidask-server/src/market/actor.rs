//! The market actor: the one task that owns a product's engine.
//!
//! Requests arrive over a bounded channel and are handled one at a time:
//! expire what is due, run the command, turn the engine's events into
//! rows, feed events and a response, and hand them to the writer. The
//! actor does not wait for the commit (the request's handler does), so
//! the next command runs while the previous batch is being written; it
//! never awaits I/O except to rebuild its engine after a failed commit.
//! How events become rows and feed messages is in the `translate` module.

mod expiry;
mod translate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bidask_engine::{
    Engine, EngineError, Event, MarketId, NewOrder, OrderId, Price, Quantity, RestingOrder, Side,
    TimeInForce, Timestamp, UserId,
};
use bidask_store::{OrderRecord, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::catalog::Product;
use crate::clock::now_micros;
use crate::feed::Channel;
use crate::market::ids::Ids;
use crate::market::index::RestingIndex;
use crate::market::replica::Replicas;
use crate::market::staleness::Staleness;
use crate::market::unit::{Committed, IdempotencyDraft, Reply, Response, Unit};
use crate::views::{MatchView, OrderView};

/// How long a rebuild may wait on the database. The product's requests
/// queue behind it, and a connection that died without a word (a dropped
/// route, a frozen server) would otherwise hold them, and its expiries,
/// until the kernel gives up on it, many minutes later.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(10);

/// A new order, parsed and checked at the edge.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// The owner.
    pub user_id: i64,
    /// The size.
    pub market: MarketId,
    /// Bid or ask.
    pub side: Side,
    /// Limit price.
    pub price: Price,
    /// Units.
    pub quantity: Quantity,
    /// gtc, ioc or fok.
    pub time_in_force: TimeInForce,
    /// When it leaves the book.
    pub expiry: Expiry,
    /// Record the response under this key.
    pub idempotency: Option<IdempotencyDraft>,
}

/// When an order leaves the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This many microseconds after it is placed, counted from the time
    /// the market stamps as its `created_at` (the default lifetime).
    After(i64),
    /// At this time, in microseconds since the epoch.
    At(i64),
}

/// What a handler asks of a market.
#[derive(Debug)]
pub enum Request {
    /// `POST /bids`, `POST /asks`.
    Place {
        /// The order.
        order: PlaceOrder,
        /// The outcome.
        reply: oneshot::Sender<Result<Committed, MarketError>>,
    },
    /// `DELETE /orders/{id}`.
    Cancel {
        /// The order.
        order_id: i64,
        /// Who asks: only the owner may.
        user_id: i64,
        /// The outcome.
        reply: oneshot::Sender<Result<Committed, MarketError>>,
    },
    /// `PATCH /orders/{id}`.
    Amend {
        /// The order.
        order_id: i64,
        /// Who asks: only the owner may.
        user_id: i64,
        /// A new price.
        price: Option<Price>,
        /// A new total quantity.
        quantity: Option<Quantity>,
        /// The outcome.
        reply: oneshot::Sender<Result<Committed, MarketError>>,
    },
}

/// Why a market did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The engine refused the command.
    #[error(transparent)]
    Rejected(#[from] EngineError),
    /// The order is not resting any more (filled, cancelled or expired).
    #[error("the order is no longer open")]
    NotOpen,
    /// The order belongs to someone else.
    #[error("no such order")]
    NotFound,
    /// The user has as many orders resting in this product as one may.
    #[error("at most {0} open orders per user in one product; cancel some first")]
    TooManyOpenOrders(u32),
    /// The commit failed, or the book could not be rebuilt after one.
    #[error("storage is unavailable")]
    Unavailable,
}

/// The actor's state.
pub struct Actor {
    product: Arc<Product>,
    store: Store,
    ids: Arc<Ids>,
    writer: mpsc::Sender<Unit>,
    /// The committed public books, reloaded with the engine after a failure.
    replicas: Arc<Replicas>,
    /// Where every product's resting orders are; this actor keeps its own.
    resting: Arc<RestingIndex>,
    engine: Engine,
    /// Every resting order's full row, and for the length of one command
    /// the orders it finished.
    live: HashMap<i64, OrderRecord>,
    /// How many of `live`'s orders each user has.
    open_per_user: HashMap<i64, u32>,
    /// The most orders one user may have resting here (0: no bound), so
    /// that one account cannot grow the books, and the memory under
    /// them, without end.
    max_open_orders: u32,
    /// The lowest ask of each market, to notice price drops.
    lowest_asks: Vec<Option<Price>>,
    /// Marked by the writer with the highest epoch whose commit failed.
    staleness: Arc<Staleness>,
    /// The epoch of the engine's current state.
    epoch: u64,
    /// The last time used, so times never go backwards within a product.
    last_now: i64,
    /// Do not retry a failed rebuild before this.
    retry_rebuild_at: Option<Instant>,
    events: Vec<Event>,
}

impl Actor {
    /// An actor for `product`, its books restored from the database and
    /// its public replica loaded from them.
    pub async fn load(
        product: Arc<Product>,
        store: Store,
        ids: Arc<Ids>,
        writer: mpsc::Sender<Unit>,
        replicas: Arc<Replicas>,
        resting: Arc<RestingIndex>,
        max_open_orders: u32,
    ) -> Result<Self, StoreError> {
        let mut actor = Self {
            engine: Engine::new(0),
            lowest_asks: Vec::new(),
            live: HashMap::new(),
            open_per_user: HashMap::new(),
            max_open_orders,
            product,
            store,
            ids,
            writer,
            replicas,
            resting,
            staleness: Arc::new(Staleness::default()),
            epoch: 1,
            last_now: 0,
            retry_rebuild_at: None,
            events: Vec::new(),
        };
        actor.staleness.set_current(actor.epoch);
        actor.reload().await?;
        Ok(actor)
    }

    /// Expires the orders that came due while the server was down and
    /// waits until that is committed, so the books are current before the
    /// server takes its first request.
    pub async fn expire_overdue(&mut self) -> Result<(), MarketError> {
        let (sender, receiver) = oneshot::channel();
        let now = self.now();
        self.expire_at(now, Some(sender)).await;
        match receiver.await {
            Ok(result) => result.map(|_| ()),
            // Nothing was due: the sender was dropped unused.
            Err(_) => Ok(()),
        }
    }

    /// Serves requests until the channel closes, expiring orders on time.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        loop {
            // A stale book waits for its next rebuild attempt, not for an
            // expiry it cannot commit.
            let deadline = if self.is_stale() {
                Some(self.retry_rebuild_at.unwrap_or_else(Instant::now))
            } else {
                self.engine.next_expiry().map(|at| {
                    let wait = u64::try_from(at.0.saturating_sub(now_micros())).unwrap_or(0);
                    Instant::now() + Duration::from_micros(wait)
                })
            };
            let staleness = Arc::clone(&self.staleness);
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => break,
                },
                // A failed commit: the next turn's deadline is the rebuild.
                () = staleness.marked() => {}
                () = sleep_until(deadline) => {
                    // Orders leave on time even when no request comes to
                    // trigger the rebuild after a failed commit.
                    if self.ensure_current().await.is_ok() {
                        self.expire().await;
                    }
                }
            }
        }
        tracing::debug!(product = self.product.id, "market actor stopped");
    }

    async fn handle(&mut self, request: Request) {
        if let Err(error) = self.ensure_current().await {
            let reply = match request {
                Request::Place { reply, .. }
                | Request::Cancel { reply, .. }
                | Request::Amend { reply, .. } => reply,
            };
            let _ = reply.send(Err(error));
            return;
        }
        // One moment for the expiry and the command, as the engine asks:
        // an order due by then cannot trade in it, however long the
        // expiry's send to the writer waited.
        let now = self.now();
        self.expire_at(now, None).await;
        match request {
            Request::Place { order, reply } => self.place(order, reply, now).await,
            Request::Cancel {
                order_id,
                user_id,
                reply,
            } => {
                self.on_own_order(
                    order_id,
                    user_id,
                    reply,
                    |engine, id, events| engine.cancel(id, events),
                    |order, _| Response::Cancelled { order },
                )
                .await;
            }
            Request::Amend {
                order_id,
                user_id,
                price,
                quantity,
                reply,
            } => {
                self.on_own_order(
                    order_id,
                    user_id,
                    reply,
                    |engine, id, events| engine.amend(id, price, quantity, events),
                    |order, matches| Response::Amended { order, matches },
                )
                .await;
            }
        }
    }

    /// Runs `command` on a resting order of `user_id`'s; anyone else's is
    /// refused as not found.
    async fn on_own_order(
        &mut self,
        order_id: i64,
        user_id: i64,
        reply: oneshot::Sender<Result<Committed, MarketError>>,
        command: impl FnOnce(&mut Engine, OrderId, &mut Vec<Event>) -> Result<(), EngineError>,
        response: impl FnOnce(OrderView, Vec<MatchView>) -> Response,
    ) {
        match self.owned(order_id, user_id) {
            Ok(_) => {}
            // The order may have left the book in a unit that is still
            // being committed, and come back if that commit fails.
            Err(MarketError::NotOpen) => {
                self.refuse_after_commit(reply, MarketError::NotOpen).await;
                return;
            }
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        }
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let result = command(
            &mut self.engine,
            OrderId(order_id.unsigned_abs()),
            &mut events,
        );
        self.finish(events, result, order_id, reply, None, response)
            .await;
    }

    async fn place(
        &mut self,
        order: PlaceOrder,
        reply: oneshot::Sender<Result<Committed, MarketError>>,
        now: i64,
    ) {
        let expires_at = match order.expiry {
            Expiry::After(lifetime) => now.saturating_add(lifetime),
            Expiry::At(at) => at,
        };
        // The engine refuses a past expiry only for orders that rest; the
        // stored row must satisfy `expires_at > created_at` whatever the
        // time in force, and the handler's clock ran a little earlier.
        if expires_at <= now {
            let _ = reply.send(Err(MarketError::Rejected(EngineError::AlreadyExpired)));
            return;
        }
        // Only an order that may rest counts against the bound: ioc and
        // fok orders never do.
        let open = self.open_per_user.get(&order.user_id).copied().unwrap_or(0);
        if self.max_open_orders > 0
            && order.time_in_force == TimeInForce::GoodTillCancelled
            && open >= self.max_open_orders
        {
            // Some of them may be placements still being committed.
            let refusal = MarketError::TooManyOpenOrders(self.max_open_orders);
            self.refuse_after_commit(reply, refusal).await;
            return;
        }
        let id = self.ids.order();
        let priority = self.ids.priority();
        self.live.insert(
            id,
            OrderRecord {
                id,
                user_id: order.user_id,
                product_id: self.product.id,
                market: i64::from(order.market.0),
                side: side_name(order.side).to_owned(),
                price_ticks: ticks(order.price),
                quantity: i64::from(order.quantity.units()),
                remaining_quantity: i64::from(order.quantity.units()),
                status: "open".to_owned(),
                time_in_force: time_in_force_name(order.time_in_force).to_owned(),
                cancel_reason: None,
                expires_at,
                created_at: now,
                updated_at: now,
                priority,
            },
        );
        *self.open_per_user.entry(order.user_id).or_insert(0) += 1;
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let result = self.engine.place(
            NewOrder {
                id: OrderId(id.unsigned_abs()),
                user: UserId(order.user_id.unsigned_abs()),
                market: order.market,
                side: order.side,
                price: order.price,
                quantity: order.quantity,
                time_in_force: order.time_in_force,
                expires_at: Timestamp(expires_at),
            },
            Timestamp(now),
            &mut events,
        );
        if result.is_err() {
            self.forget(id);
        }
        self.finish(
            events,
            result,
            id,
            reply,
            order.idempotency,
            |order, matches| Response::Placed { order, matches },
        )
        .await;
    }

    /// Drops a finished order from `live` and from its owner's count.
    fn forget(&mut self, order_id: i64) {
        let Some(record) = self.live.remove(&order_id) else {
            return;
        };
        if let Some(open) = self.open_per_user.get_mut(&record.user_id) {
            *open -= 1;
            if *open == 0 {
                self.open_per_user.remove(&record.user_id);
            }
        }
    }

    /// Checks that `order_id` rests here and belongs to `user_id`.
    fn owned(&self, order_id: i64, user_id: i64) -> Result<RestingOrder, MarketError> {
        let resting = self
            .engine
            .order(OrderId(order_id.unsigned_abs()))
            .ok_or(MarketError::NotOpen)?;
        if resting.user.0 != user_id.unsigned_abs() {
            return Err(MarketError::NotFound);
        }
        Ok(resting)
    }

    /// Turns a command's events into a unit for the writer, whose commit
    /// answers `sender`; a refused command answers at once.
    async fn finish(
        &mut self,
        events: Vec<Event>,
        result: Result<(), EngineError>,
        order_id: i64,
        sender: oneshot::Sender<Result<Committed, MarketError>>,
        idempotency: Option<IdempotencyDraft>,
        response: impl FnOnce(OrderView, Vec<MatchView>) -> Response,
    ) {
        if let Err(error) = result {
            self.events = events;
            // The engine judged the command against its book, which may
            // hold fills still being committed (an amendment below what
            // has traded).
            self.refuse_after_commit(sender, MarketError::Rejected(error))
                .await;
            return;
        }
        let now = self.last_now;
        let outcome = self.translate(&events, now);
        self.events = events;
        // An amendment to the terms the order already has changes nothing
        // and emits nothing; its answer is the order as it rests.
        let order = outcome
            .orders
            .iter()
            .find(|order| order.id == order_id)
            .or_else(|| self.live.get(&order_id))
            .map(|order| OrderView::new(order, &self.product));
        let Some(order) = order else {
            tracing::error!(order_id, "command left no trace of its order");
            let _ = sender.send(Err(MarketError::Unavailable));
            return;
        };
        let matches = outcome
            .matches
            .iter()
            .map(|trade| MatchView::new(trade, &self.product))
            .collect();
        let unit = self.unit(
            outcome,
            Some(Reply {
                response: Some(response(order, matches)),
                idempotency,
                sender,
                refusal: None,
            }),
        );
        if let Err(mpsc::error::SendError(unit)) = self.writer.send(unit).await
            && let Some(reply) = unit.reply
        {
            let _ = reply.sender.send(Err(MarketError::Unavailable));
        }
    }

    /// Answers `refusal` once the units this actor sent before are
    /// committed, or 503 if they fail: a refusal that rests on the book
    /// is only true of what is committed. It travels to the writer as a
    /// unit that writes nothing, behind those units.
    async fn refuse_after_commit(
        &mut self,
        sender: oneshot::Sender<Result<Committed, MarketError>>,
        refusal: MarketError,
    ) {
        let reply = Reply {
            response: None,
            idempotency: None,
            sender,
            refusal: Some(refusal),
        };
        let unit = self.unit(translate::Outcome::default(), Some(reply));
        // A closed writer means shutdown: the dropped sender is a 503.
        let _ = self.writer.send(unit).await;
    }

    /// Expires what is due now and sends the result to the writer.
    async fn expire(&mut self) {
        let now = self.now();
        self.expire_at(now, None).await;
    }

    /// Expires what is due at `now` (the actor's latest [`Actor::now`],
    /// which also stamps the results), telling `committed` when the expiry
    /// is durable.
    async fn expire_at(
        &mut self,
        now: i64,
        committed: Option<oneshot::Sender<Result<Committed, MarketError>>>,
    ) {
        if self.is_stale() {
            return;
        }
        let Some(next) = self.engine.next_expiry() else {
            return;
        };
        if next.0 > now {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.engine.expire(Timestamp(now), &mut events);
        self.send_expiry(&events, now, committed).await;
        self.events = events;
    }

    /// Sends an expiry's results to the writer in units of at most
    /// [`expiry::UNIT_ORDERS`] orders, each but the last committed before
    /// the next goes, so that each is a transaction of its own (see
    /// [`expiry`]). The engine has let every order go already: a command
    /// after the expiry never trades with one, whichever unit holds it.
    async fn send_expiry(
        &mut self,
        events: &[Event],
        now: i64,
        mut committed: Option<oneshot::Sender<Result<Committed, MarketError>>>,
    ) {
        let runs = expiry::runs(events, expiry::UNIT_ORDERS);
        let last = runs.len().saturating_sub(1);
        for (index, run) in runs.into_iter().enumerate() {
            let outcome = self.translate(run, now);
            if outcome.orders.is_empty() {
                continue;
            }
            metrics::counter!("bidask_orders_expired_total").increment(outcome.orders.len() as u64);
            let (sender, waiting) = if index == last {
                (committed.take(), None)
            } else {
                let (sender, waiting) = oneshot::channel();
                (Some(sender), Some(waiting))
            };
            let reply = sender.map(|sender| Reply {
                response: None,
                idempotency: None,
                sender,
                refusal: None,
            });
            // A closed writer means shutdown; the orders expire again on start.
            if self.writer.send(self.unit(outcome, reply)).await.is_err() {
                return;
            }
            let Some(waiting) = waiting else { continue };
            // A failed unit leaves the product stale: it is rebuilt from
            // the database, where the rest are still open, and they
            // expire again then.
            let failure = match waiting.await {
                Ok(Ok(_)) => continue,
                Ok(Err(error)) => error,
                Err(_) => MarketError::Unavailable,
            };
            if let Some(committed) = committed.take() {
                let _ = committed.send(Err(failure));
            }
            return;
        }
    }

    /// A command's results as a unit of this product's current epoch.
    fn unit(&self, outcome: translate::Outcome, reply: Option<Reply>) -> Unit {
        Unit {
            channel: Channel::Product(self.product.id),
            epoch: Some((Arc::clone(&self.staleness), self.epoch)),
            product: None,
            orders: outcome.orders,
            matches: outcome.matches,
            events: outcome.events,
            reply,
            on_commit: None,
        }
    }

    fn is_stale(&self) -> bool {
        self.staleness.up_to() >= self.epoch
    }

    /// Rebuilds the engine from the database if a commit of this product
    /// failed, so the book never runs ahead of what is committed.
    async fn ensure_current(&mut self) -> Result<(), MarketError> {
        if !self.is_stale() {
            return Ok(());
        }
        if self
            .retry_rebuild_at
            .is_some_and(|retry_at| Instant::now() < retry_at)
        {
            return Err(MarketError::Unavailable);
        }
        let next = self.staleness.up_to() + 1;
        // Announced before the reads: a commit found to have landed while
        // they run forces the epoch past this one, and so another rebuild.
        self.staleness.set_current(next);
        // Cancelling `reload` is safe: it changes nothing until its reads
        // are done.
        let reloaded = tokio::time::timeout(REBUILD_TIMEOUT, self.reload())
            .await
            .unwrap_or(Err(StoreError::TimedOut));
        match reloaded {
            Ok(()) => {
                self.epoch = next;
                self.retry_rebuild_at = None;
                tracing::info!(product = self.product.id, "book rebuilt from the database");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(product = self.product.id, %error, "cannot rebuild the book yet");
                self.retry_rebuild_at = Some(Instant::now() + Duration::from_millis(250));
                Err(MarketError::Unavailable)
            }
        }
    }

    /// Rebuilds the engine and the product's replica from what is
    /// committed. A failed commit may still have landed (the connection
    /// can die after the server committed), so both are read back rather
    /// than assumed.
    ///
    /// The `seq` is read first: a commit landing between the reads then
    /// leaves the replica ahead of its `seq`, which the events after it
    /// repair (each carries a level's new totals, so applying one twice
    /// changes nothing), where a `seq` read last could claim events the
    /// levels lack, and a snapshot at it would skip them for good.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let seq = self
            .store
            .channel_seq(&Channel::Product(self.product.id).to_string())
            .await?;
        let open_orders = self.store.open_orders(self.product.id).await?;
        let last_sales: HashMap<i64, i64> = self
            .store
            .last_sales(self.product.id)
            .await?
            .into_iter()
            .collect();
        self.restore(open_orders)?;
        let markets = (0..self.product.sizes.len())
            .map(|market| {
                let id = MarketId(u16::try_from(market).unwrap_or(u16::MAX));
                (
                    self.engine.depth(id, Side::Bid, usize::MAX).collect(),
                    self.engine.depth(id, Side::Ask, usize::MAX).collect(),
                    i64::try_from(market)
                        .ok()
                        .and_then(|market| last_sales.get(&market))
                        .and_then(|ticks| u64::try_from(*ticks).ok()),
                )
            })
            .collect();
        self.replicas.load(self.product.id, seq, markets);
        Ok(())
    }

    fn restore(&mut self, open_orders: Vec<OrderRecord>) -> Result<(), StoreError> {
        let markets = u16::try_from(self.product.sizes.len())
            .map_err(|_| StoreError::Corrupt("more sizes than markets".to_owned()))?;
        let resting = open_orders
            .iter()
            .map(|order| resting_order(order, &self.product))
            .collect::<Result<Vec<_>, _>>()?;
        let engine = Engine::restore(markets, resting)
            .map_err(|error| StoreError::Corrupt(format!("stored book: {error}")))?;
        self.lowest_asks = (0..markets)
            .map(|market| engine.best_ask(MarketId(market)).map(|level| level.price))
            .collect();
        self.engine = engine;
        for id in self.live.keys() {
            self.resting.remove(*id);
        }
        self.live = open_orders
            .into_iter()
            .map(|record| (record.id, record))
            .collect();
        self.open_per_user.clear();
        for record in self.live.values() {
            *self.open_per_user.entry(record.user_id).or_insert(0) += 1;
        }
        for id in self.live.keys() {
            self.resting.insert(*id, self.product.id);
        }
        Ok(())
    }

    fn now(&mut self) -> i64 {
        self.last_now = self.last_now.max(now_micros());
        self.last_now
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn resting_order(order: &OrderRecord, product: &Product) -> Result<RestingOrder, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("order {}: {what}", order.id));
    Ok(RestingOrder {
        id: OrderId(u64::try_from(order.id).map_err(|_| corrupt("negative id"))?),
        user: UserId(u64::try_from(order.user_id).map_err(|_| corrupt("negative user"))?),
        market: MarketId(
            u16::try_from(order.market)
                .ok()
                .filter(|market| usize::from(*market) < product.sizes.len())
                .ok_or_else(|| corrupt("unknown market"))?,
        ),
        side: match order.side.as_str() {
            "bid" => Side::Bid,
            "ask" => Side::Ask,
            _ => return Err(corrupt("unknown side")),
        },
        price: u64::try_from(order.price_ticks)
            .ok()
            .and_then(Price::from_ticks)
            .ok_or_else(|| corrupt("price out of range"))?,
        quantity: u32::try_from(order.quantity)
            .ok()
            .and_then(|units| Quantity::new(units).ok())
            .ok_or_else(|| corrupt("quantity out of range"))?,
        remaining: u32::try_from(order.remaining_quantity)
            .map_err(|_| corrupt("remaining quantity out of range"))?,
        expires_at: Timestamp(order.expires_at),
    })
}

fn ticks(price: Price) -> i64 {
    i64::try_from(price.ticks()).unwrap_or(i64::MAX)
}

/// `bid` or `ask`.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Bid => "bid",
        Side::Ask => "ask",
    }
}

/// `gtc`, `ioc` or `fok`.
pub fn time_in_force_name(time_in_force: TimeInForce) -> &'static str {
    match time_in_force {
        TimeInForce::GoodTillCancelled => "gtc",
        TimeInForce::ImmediateOrCancel => "ioc",
        TimeInForce::FillOrKill => "fok",
    }
}
