//! The per-product market runtime: one actor per product owns its engine,
//! one writer commits what all of them decide.
//!
//! - [`actor`]: the single-threaded owner of one product's books;
//! - [`mod@unit`]: what an actor sends the writer and what its request gets
//!   back;
//! - [`writer`]: group commit, `seq` assignment, publication after commit;
//! - [`staleness`]: how an actor learns its last units failed to commit;
//! - [`replica`]: the committed public books that reads and snapshots use;
//! - [`ids`]: ids the server assigns before commit;
//! - [`index`]: which product a resting order is in;
//! - [`finished`]: how recently finished orders ended.

pub mod actor;
pub mod finished;
pub mod ids;
pub mod index;
pub mod replica;
pub mod staleness;
pub mod unit;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bidask_store::{Committer, ProductRecord, Store, StoreError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::Bus;
use crate::catalog::{Catalog, Product};
use crate::feed::{Channel, FeedBody, NewProduct, PendingEvent};
use actor::{Actor, MarketError, Request};
use finished::{Finished, RecentlyFinished};
use ids::Ids;
use index::RestingIndex;
use replica::Replicas;
use unit::{Committed, OnCommit, Reply, Unit};
use writer::{Counters, Writer, WriterParts};

/// Why the market runtime, or one product's markets, could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading what was committed failed, or it does not make sense.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operating system refused the writer its thread or runtime.
    #[error("cannot start the writer: {0}")]
    Writer(#[source] std::io::Error),
    /// A product was opened while the server shuts down.
    #[error("the market runtime is shutting down")]
    ShuttingDown,
    /// The writer's thread ended before it could take its lock: a bug.
    #[error("the writer stopped before it started")]
    WriterStopped,
}

/// Sizes of the runtime's queues.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeOptions {
    /// Requests a product's actor may have queued before senders wait.
    pub actor_queue: usize,
    /// Units the writer may have queued before actors wait.
    pub writer_queue: usize,
    /// Most units in one commit.
    pub max_batch: usize,
    /// Most orders one user may have resting in one product (0: no
    /// bound).
    pub max_open_orders: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            actor_queue: 4_096,
            writer_queue: 16_384,
            max_batch: 2_048,
            max_open_orders: 1_000,
        }
    }
}

/// Resolves when the writer has committed everything and stopped.
/// Dropped unsent if the writer thread panicked.
pub type WriterDone = oneshot::Receiver<()>;

/// The writer's thread, holding the database's writer lock (see
/// [`bidask_store::Committer::fence`]) and waiting for what it continues
/// from. It is started before start-up reads anything it rebuilds from,
/// so that no other server can commit between those reads and this
/// server's first commit: a dead server's last statement has finished,
/// and a live one is refused.
pub struct FencedWriter {
    claims: oneshot::Sender<Claim>,
    done: WriterDone,
}

/// What start-up asks of the fenced writer, once migrated: to claim the
/// database ([`bidask_store::Committer::claim`]), saying how that went on
/// `claimed`, and then to run with the `parts` read after it.
struct Claim {
    claimed: oneshot::Sender<Result<(), StoreError>>,
    parts: oneshot::Receiver<WriterParts>,
}

impl FencedWriter {
    /// Runs the writer on a thread of its own, with a single-threaded
    /// runtime and a connection pool created there, and returns once it
    /// holds the lock. Dropped unstarted, the writer lets the lock go.
    pub async fn start(
        writer_store: impl FnOnce() -> Result<Store, StoreError> + Send + 'static,
    ) -> Result<Self, StartError> {
        let (done, done_receiver) = oneshot::channel();
        let (ready, fenced) = oneshot::channel();
        let (claims, claims_receiver) = oneshot::channel::<Claim>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Writer)?;
        std::thread::Builder::new()
            .name("bidask-writer".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    // Its store, and then its lock: either failing is told
                    // on `ready`, which start-up waits for.
                    let store = match writer_store() {
                        Ok(store) => store,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return;
                        }
                    };
                    let committer = store.committer();
                    run_fenced(store.clone(), committer, ready, claims_receiver).await;
                    store.close().await;
                });
                let _ = done.send(());
            })
            .map_err(StartError::Writer)?;
        match fenced.await {
            Ok(Ok(())) => Ok(Self {
                claims,
                done: done_receiver,
            }),
            Ok(Err(error)) => Err(StartError::Store(error)),
            Err(_) => Err(StartError::WriterStopped),
        }
    }

    /// Makes this server the database's writer, once it is migrated
    /// ([`bidask_store::Committer::claim`]): from here on, another server
    /// that claims it makes this one stop rather than write over it. The
    /// claim counts even if the rest of start-up fails, so everything that
    /// can fail without the database (the port) comes before.
    pub async fn claim(self) -> Result<ClaimedWriter, StartError> {
        let (claimed, claim_outcome) = oneshot::channel();
        let (parts, parts_receiver) = oneshot::channel();
        self.claims
            .send(Claim {
                claimed,
                parts: parts_receiver,
            })
            .map_err(|_| StartError::WriterStopped)?;
        claim_outcome
            .await
            .map_err(|_| StartError::WriterStopped)??;
        Ok(ClaimedWriter {
            parts,
            done: self.done,
        })
    }
}

/// The writer's thread once it has claimed the database, waiting for
/// what it continues from (see [`Markets::start`]).
pub struct ClaimedWriter {
    parts: oneshot::Sender<WriterParts>,
    done: WriterDone,
}

/// The writer thread's life: lock, claim, run, each step only if the one
/// before succeeded and start-up still wants it. The lock goes with the
/// committer, however this ends.
async fn run_fenced(
    store: Store,
    mut committer: Committer,
    ready: oneshot::Sender<Result<(), StoreError>>,
    claims: oneshot::Receiver<Claim>,
) {
    let fenced = committer.fence().await;
    let holds = fenced.is_ok();
    let _ = ready.send(fenced);
    if holds && let Ok(Claim { claimed, parts }) = claims.await {
        let claim = committer.claim().await;
        let owns = claim.is_ok();
        let _ = claimed.send(claim);
        if owns && let Ok(parts) = parts.await {
            return Writer::new(store, committer, parts).run().await;
        }
    }
    committer.close().await;
}

/// Makes an actor reachable, unless the runtime is closing: then its
/// sender is dropped, so the actor stops and lets the writer see its last
/// sender go. Under the writer's lock, so that [`Markets::close`] cannot
/// come between the check and the insert (an actor opened while shutdown
/// began, for a creation or a landed product).
fn register(
    writer: &Mutex<Option<mpsc::Sender<Unit>>>,
    actors: &RwLock<HashMap<i64, mpsc::Sender<Request>>>,
    id: i64,
    actor: mpsc::Sender<Request>,
) -> bool {
    let writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
    if writer.is_none() {
        return false;
    }
    actors
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, actor);
    true
}

/// Every product's actor, the writer, and what they share.
pub struct Markets {
    store: Store,
    catalog: Arc<Catalog>,
    replicas: Arc<Replicas>,
    ids: Arc<Ids>,
    resting: Arc<RestingIndex>,
    finished: Arc<RecentlyFinished>,
    options: RuntimeOptions,
    actors: Arc<RwLock<HashMap<i64, mpsc::Sender<Request>>>>,
    /// Taken at shutdown, so the writer sees its last sender go.
    writer: Arc<Mutex<Option<mpsc::Sender<Unit>>>>,
    /// One product opened at a time outside creation (see [`Markets::adopt`]).
    adopting: tokio::sync::Mutex<()>,
    /// Products the writer opened after their creation's commit counted
    /// as failed but landed, by SKU, until that creation's retry is
    /// answered (see [`Markets::take_unanswered`]).
    unanswered: Mutex<HashMap<String, ProductRecord>>,
    /// Set by the writer while a failed commit's outcome is unknown.
    in_doubt: Arc<AtomicBool>,
    /// Set by the writer once another server claimed the database.
    replaced: watch::Receiver<bool>,
}

impl Markets {
    /// Rebuilds every product's book from the database and starts the
    /// actors and `writer`, which must hold the lock since before
    /// `catalog` was read. The returned [`WriterDone`] resolves once
    /// [`Markets::close`] was called and everything queued is committed.
    ///
    /// The writer has a thread of its own with its own connection (see
    /// [`FencedWriter::start`]): the commit path is the throughput
    /// bottleneck, and on the shared runtime every database round trip of
    /// a commit waited in the run queue behind HTTP work.
    pub async fn start(
        store: Store,
        writer: ClaimedWriter,
        catalog: Arc<Catalog>,
        replicas: Arc<Replicas>,
        bus: Arc<dyn Bus>,
        options: RuntimeOptions,
    ) -> Result<(Arc<Self>, WriterDone), StartError> {
        let ClaimedWriter { parts, done } = writer;
        let seqs: HashMap<Channel, i64> = store
            .last_seqs()
            .await?
            .into_iter()
            .filter_map(|(channel, seq)| Channel::parse(&channel).map(|channel| (channel, seq)))
            .collect();
        let last_ids = store.last_ids().await?;
        let (landed, mut landed_products) = mpsc::unbounded_channel();
        let counters = Counters {
            seqs,
            notification: last_ids.notification,
            landed,
        };
        let ids = Arc::new(Ids::after(last_ids));
        let (sender, receiver) = mpsc::channel(options.writer_queue);
        let finished = Arc::new(RecentlyFinished::default());
        let in_doubt = Arc::new(AtomicBool::new(false));
        let (replaced_sender, replaced) = watch::channel(false);
        parts
            .send(WriterParts {
                units: receiver,
                counters,
                replicas: Arc::clone(&replicas),
                bus,
                max_batch: options.max_batch,
                finished: Arc::clone(&finished),
                in_doubt: Arc::clone(&in_doubt),
                replaced: replaced_sender,
            })
            .map_err(|_| StartError::WriterStopped)?;
        let markets = Arc::new(Self {
            store,
            catalog: Arc::clone(&catalog),
            replicas,
            ids,
            resting: Arc::new(RestingIndex::default()),
            finished,
            options,
            actors: Arc::new(RwLock::new(HashMap::new())),
            writer: Arc::new(Mutex::new(Some(sender))),
            adopting: tokio::sync::Mutex::new(()),
            unanswered: Mutex::new(HashMap::new()),
            in_doubt,
            replaced,
        });
        let opener = Arc::downgrade(&markets);
        tokio::spawn(async move {
            while let Some((id, done)) = landed_products.recv().await {
                let Some(markets) = opener.upgrade() else {
                    break;
                };
                markets.open_landed(id).await;
                let _ = done.send(());
            }
        });
        for product in catalog.all() {
            markets.spawn_actor(product).await?;
        }
        Ok((markets, done))
    }

    /// Starts the actor of `product` from its committed open orders and
    /// makes it reachable.
    async fn spawn_actor(&self, product: Arc<Product>) -> Result<(), StartError> {
        let id = product.id;
        let sender = self.start_actor(product).await?;
        if register(&self.writer, &self.actors, id, sender) {
            Ok(())
        } else {
            Err(StartError::ShuttingDown)
        }
    }

    /// Loads `product`'s actor, expires its overdue orders, and runs it;
    /// returns the sender of its queue.
    async fn start_actor(
        &self,
        product: Arc<Product>,
    ) -> Result<mpsc::Sender<Request>, StartError> {
        let writer = self.writer_sender().ok_or(StartError::ShuttingDown)?;
        let mut actor = Actor::load(
            Arc::clone(&product),
            self.store.clone(),
            Arc::clone(&self.ids),
            writer,
            Arc::clone(&self.replicas),
            Arc::clone(&self.resting),
            self.options.max_open_orders,
        )
        .await?;
        if let Err(error) = actor.expire_overdue().await {
            // The product is marked stale and retries on its timer.
            tracing::warn!(product = product.id, %error, "cannot expire overdue orders yet");
        }
        let (sender, receiver) = mpsc::channel(self.options.actor_queue);
        tokio::spawn(actor.run(receiver));
        Ok(sender)
    }

    /// Sends a request to a product's actor and waits for its commit.
    pub async fn request(
        &self,
        product_id: i64,
        request: impl FnOnce(oneshot::Sender<Result<Committed, MarketError>>) -> Request,
    ) -> Result<Committed, MarketError> {
        let actor = self
            .actors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&product_id)
            .cloned()
            .ok_or(MarketError::Unavailable)?;
        let (sender, receiver) = oneshot::channel();
        actor
            .send(request(sender))
            .await
            .map_err(|_| MarketError::Unavailable)?;
        receiver.await.unwrap_or(Err(MarketError::Unavailable))
    }

    /// Commits a new product with its `NEW_PRODUCT` event. Its (empty)
    /// markets are opened first and become reachable, with the catalog
    /// entry, the moment the commit succeeds and before the event is
    /// published, so whoever hears of the product can trade it.
    pub async fn create_product(&self, record: ProductRecord) -> Result<Arc<Product>, MarketError> {
        let product = Arc::new(Product::from_record(record.clone()).map_err(|error| {
            tracing::error!(%error, "a checked product record does not parse");
            MarketError::Unavailable
        })?);
        let writer = self.writer_sender().ok_or(MarketError::Unavailable)?;
        let actor = self.start_actor(Arc::clone(&product)).await.map_err(|error| {
            tracing::error!(%error, product = product.id, "cannot open the new product's markets");
            MarketError::Unavailable
        })?;
        let (sender, receiver) = oneshot::channel();
        let event = PendingEvent {
            channel: Channel::Products,
            body: FeedBody::NewProduct(NewProduct {
                product_id: product.id,
                sku: product.sku.clone(),
                name: product.name.clone(),
                brand: product.brand.clone(),
                sizes: product.sizes.clone(),
                tick_size: product.tick_size(),
            }),
        };
        let (catalog, actors, writer_slot, opened) = (
            Arc::clone(&self.catalog),
            Arc::clone(&self.actors),
            Arc::clone(&self.writer),
            Arc::clone(&product),
        );
        let unit = Unit {
            channel: Channel::Products,
            epoch: None,
            product: Some(record),
            orders: Vec::new(),
            matches: Vec::new(),
            events: vec![event],
            reply: Some(Reply {
                response: None,
                idempotency: None,
                sender,
                refusal: None,
            }),
            on_commit: Some(OnCommit(Box::new(move || {
                register(&writer_slot, &actors, opened.id, actor);
                catalog.insert(opened);
            }))),
        };
        writer
            .send(unit)
            .await
            .map_err(|_| MarketError::Unavailable)?;
        // On failure the hook is dropped with the actor's only sender, and
        // the actor stops.
        receiver.await.unwrap_or(Err(MarketError::Unavailable))?;
        Ok(product)
    }

    /// Opens a product that is in the database but not in the catalog: one
    /// whose commit counted as failed but landed. It is then served like
    /// any other, as it would be after a restart. `unanswered` when nobody
    /// is answering its creation's retry at this moment (the writer found
    /// it): the retry is then answered later (see
    /// [`Markets::take_unanswered`]).
    pub async fn adopt(
        &self,
        record: ProductRecord,
        unanswered: bool,
    ) -> Result<Arc<Product>, MarketError> {
        // The retried creation and the writer's read-back may both find it.
        let _one_at_a_time = self.adopting.lock().await;
        if let Some(open) = self.catalog.get(record.id) {
            return Ok(open);
        }
        let stored = unanswered.then(|| record.clone());
        let product = Arc::new(Product::from_record(record).map_err(|error| {
            tracing::error!(%error, "a stored product record does not parse");
            MarketError::Unavailable
        })?);
        self.spawn_actor(Arc::clone(&product)).await.map_err(|error| {
            tracing::error!(%error, product = product.id, "cannot open a stored product's markets");
            MarketError::Unavailable
        })?;
        // Before the catalog has it: a retry that finds its SKU taken
        // finds it here too.
        if let Some(stored) = stored {
            self.unanswered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(stored.sku.clone(), stored);
        }
        self.catalog.insert(Arc::clone(&product));
        tracing::warn!(product = product.id, sku = %product.sku, "opened a product whose commit had counted as failed");
        Ok(product)
    }

    /// Opens product `id` if it is stored but not open: the writer found
    /// its `NEW_PRODUCT` among the events of a commit that landed after
    /// counting as failed.
    async fn open_landed(&self, id: i64) {
        if self.catalog.get(id).is_some() {
            return;
        }
        match self.store.product_by_id(id).await {
            Ok(Some(record)) => {
                // On failure `adopt` has logged why; a retried creation
                // opens it later.
                let _ = self.adopt(record, true).await;
            }
            Ok(None) => {
                tracing::error!(product = id, "a landed NEW_PRODUCT names no stored product")
            }
            Err(error) => {
                tracing::warn!(product = id, %error, "cannot read a landed product yet; a retried creation opens it")
            }
        }
    }

    /// The product with `sku` that the writer opened after its creation
    /// was answered 503, if `is_retry` says a request is that creation
    /// again: the retry gets the answer the first request should have had,
    /// once. Another request for the SKU is refused as taken.
    pub fn take_unanswered(
        &self,
        sku: &str,
        is_retry: impl Fn(&ProductRecord) -> bool,
    ) -> Option<ProductRecord> {
        let mut unanswered = self
            .unanswered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !unanswered.get(sku).is_some_and(is_retry) {
            return None;
        }
        unanswered.remove(sku)
    }

    /// The product `order_id` rests in, as far as the actors know (a hint:
    /// see [`index`]).
    pub fn resting_product(&self, order_id: i64) -> Option<i64> {
        self.resting.product_of(order_id)
    }

    /// How `order_id` ended, if it finished recently (see [`finished`]).
    pub fn finished(&self, order_id: i64) -> Option<Finished> {
        self.finished.get(order_id)
    }

    /// A new product id.
    pub fn next_product_id(&self) -> i64 {
        self.ids.product()
    }

    /// Whether the writer can commit: false from a failed commit until it
    /// has read back what landed, which needs the database and the
    /// writer's lock.
    pub fn writer_ready(&self) -> bool {
        !self.in_doubt.load(Ordering::Acquire) && !self.writer_replaced()
    }

    /// Whether another server has claimed the database while the writer's
    /// lock was lost, so that this one can no longer write (see
    /// [`bidask_store::Committer::claim`]).
    pub fn writer_replaced(&self) -> bool {
        *self.replaced.borrow()
    }

    /// Resolves once [`Markets::writer_replaced`] holds.
    pub async fn replaced(&self) {
        let mut replaced = self.replaced.clone();
        // An error means the writer is gone, which it is only once the
        // server is stopping: then there is nothing to wait for.
        if replaced.wait_for(|replaced| *replaced).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The committed books.
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// Stops taking requests: the actors finish what is queued and exit,
    /// then the writer commits the rest and its task ends.
    pub fn close(&self) {
        // Under the writer's lock, like `register`: no actor can be added
        // once this has run, or it would keep the writer waiting for ever.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.take();
        self.actors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn writer_sender(&self) -> Option<mpsc::Sender<Unit>> {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
