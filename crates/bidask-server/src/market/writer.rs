//! The group-commit writer: the one place where results become durable.
//!
//! Every market actor (and the catalog) sends its results here as
//! [`Unit`]s. The writer takes whatever has queued up (up to a bound),
//! gives each event its channel's next `seq`, writes the lot in one
//! transaction, and only then applies the events to the book replica,
//! publishes them on the bus and answers the waiting requests. While one
//! batch commits the next one gathers, so batches grow with load and a
//! lone request is not kept waiting for company.
//!
//! A failed commit answers every request of the batch with 503 and marks
//! the batch's products stale up to the epochs they had: their actors
//! rebuild from the database before taking another command, and any later
//! unit from a stale epoch is refused rather than written, because it was
//! decided on top of the state that was lost. A commit that failed may
//! still have landed, so the writer then reads the feed counters back and
//! publishes whatever did.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bidask_store::{
    Batch, Committer, FeedEventRecord, IdempotencyRecord, NotificationRecord, Store, StoreError,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::{Bus, Published};
use crate::clock::{format_micros, now_micros};
use crate::feed::{Channel, FeedBody};
use crate::market::actor::MarketError;
use crate::market::finished::{Finished, RecentlyFinished};
use crate::market::replica::Replicas;
use crate::market::staleness::Staleness;
use crate::market::unit::{Committed, OnCommit, Response, Unit};

/// Feed rows read per query when publishing a batch that landed after
/// its commit counted as failed.
const CATCH_UP_PAGE: i64 = 1_000;

/// The longest the read-back waits for a product it found to be opened
/// before publishing its `NEW_PRODUCT`.
const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an idle writer waits before asking the database again what
/// became of a failed commit.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest a batch may take to commit.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The product id of a stored `NEW_PRODUCT` event, `None` for any other.
fn new_product_id(message: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Created {
        #[serde(rename = "type")]
        kind: String,
        product_id: i64,
    }
    serde_json::from_str::<Created>(message)
        .ok()
        .filter(|created| created.kind == "NEW_PRODUCT")
        .map(|created| created.product_id)
}

/// Answers every unit of a batch that was not written with 503, and marks
/// its products stale up to the epochs the units were decided in.
fn fail(units: &mut [Unit]) {
    for unit in units {
        if let Some((staleness, epoch)) = &unit.epoch {
            staleness.mark(*epoch);
        }
        if let Some(reply) = unit.reply.take() {
            let _ = reply.sender.send(Err(MarketError::Unavailable));
        }
    }
}

/// Where the writer's numbering continues: the last committed `seq` of
/// every channel, and the largest notification id.
#[derive(Debug)]
pub struct Counters {
    /// The last committed `seq` of every channel.
    pub seqs: HashMap<Channel, i64>,
    /// The largest notification id taken.
    pub notification: i64,
    /// Where products go that a commit found to have landed late created,
    /// to be opened; the sender is told when that is done.
    pub landed: mpsc::UnboundedSender<(i64, oneshot::Sender<()>)>,
}

/// What a writer is given once the state it continues from was read under
/// its lock.
pub struct WriterParts {
    /// Where the units come from.
    pub units: mpsc::Receiver<Unit>,
    /// Where its numbering continues.
    pub counters: Counters,
    /// The committed books it applies events to.
    pub replicas: Arc<Replicas>,
    /// Where committed events go.
    pub bus: Arc<dyn Bus>,
    /// Most units one transaction takes.
    pub max_batch: usize,
    /// Where orders committed in a final state are remembered.
    pub finished: Arc<RecentlyFinished>,
    /// Set while a failed commit's outcome is unknown (see `unsure`).
    pub in_doubt: Arc<AtomicBool>,
    /// Set once another server has claimed the database.
    pub replaced: watch::Sender<bool>,
}

/// The writer task's state.
pub struct Writer {
    store: Store,
    committer: Committer,
    units: mpsc::Receiver<Unit>,
    /// The last committed `seq` of every channel.
    seqs: HashMap<Channel, i64>,
    /// The last notification id taken. Ids are taken as a batch is
    /// written, in the order batches commit; one taken by a batch that
    /// failed is not reused.
    notification: i64,
    replicas: Arc<Replicas>,
    bus: Arc<dyn Bus>,
    /// Most units one transaction takes.
    max_batch: usize,
    /// Where orders committed in a final state are remembered.
    finished: Arc<RecentlyFinished>,
    /// The channels of batches whose commit failed: whether they landed is
    /// unknown (the connection can die after the server committed), so
    /// their counters are read back before the next batch takes a `seq`.
    unsure: HashSet<Channel>,
    /// Each product's staleness marker, as its units bring it: what a
    /// commit found to have landed late makes rebuild.
    staleness: HashMap<i64, Arc<Staleness>>,
    /// Products created by a commit that landed late, to be opened.
    landed_products: mpsc::UnboundedSender<(i64, oneshot::Sender<()>)>,
    /// Whether `unsure` holds anything, for readiness: until the counters
    /// are read back the writer refuses every batch, so a server whose
    /// database came back without its writer's lock (another server took
    /// it) must not report itself ready.
    in_doubt: Arc<AtomicBool>,
    /// Set, for good, once another server claimed the database while this
    /// one's lock was gone ([`StoreError::WriterReplaced`]): from then on
    /// every unit is refused unwritten, and the server stops.
    replaced: watch::Sender<bool>,
}

impl Writer {
    /// A writer committing through `committer`, which holds the writer's
    /// lock already (see [`Committer::fence`]), with the rest of what it
    /// needs in `parts`.
    pub fn new(store: Store, committer: Committer, parts: WriterParts) -> Self {
        let WriterParts {
            units,
            counters,
            replicas,
            bus,
            max_batch,
            finished,
            in_doubt,
            replaced,
        } = parts;
        Self {
            committer,
            store,
            units,
            seqs: counters.seqs,
            notification: counters.notification,
            replicas,
            bus,
            max_batch: max_batch.max(1),
            finished,
            unsure: HashSet::new(),
            staleness: HashMap::new(),
            landed_products: counters.landed,
            in_doubt,
            replaced,
        }
    }

    /// Commits batches until every sender is gone and the queue is empty,
    /// which is how shutdown drains it.
    pub async fn run(mut self) {
        let mut units = Vec::with_capacity(self.max_batch);
        let mut batch = Batch::default();
        loop {
            let received = if self.unsure.is_empty() {
                self.units.recv_many(&mut units, self.max_batch).await
            } else {
                // A failed commit's outcome is still unknown, and the
                // database did not answer when it was asked: ask again
                // while idle, so that what landed is published and its
                // products rebuilt now, not at their next order.
                let next = self.units.recv_many(&mut units, self.max_batch);
                match tokio::time::timeout(RECHECK, next).await {
                    Ok(received) => received,
                    Err(_) => {
                        self.counters_current().await;
                        continue;
                    }
                }
            };
            if received == 0 {
                break;
            }
            self.commit(&mut units, &mut batch).await;
            units.clear();
            batch.clear();
        }
        self.committer.close().await;
        tracing::info!("writer stopped: every accepted command is committed");
    }

    async fn commit(&mut self, units: &mut Vec<Unit>, batch: &mut Batch) {
        if *self.replaced.borrow() {
            fail(units);
            return;
        }
        for unit in units.iter() {
            if let (Channel::Product(id), Some((staleness, _))) = (unit.channel, &unit.epoch) {
                self.staleness
                    .entry(id)
                    .or_insert_with(|| Arc::clone(staleness));
            }
        }
        // First, since a commit found to have landed late makes its products
        // stale, and their units here were decided without it.
        if !self.counters_current().await {
            tracing::warn!("cannot read the feed back yet; refusing the batch");
            fail(units);
            return;
        }
        // Results decided on top of a failed commit are refused.
        units.retain_mut(|unit| {
            let stale = unit
                .epoch
                .as_ref()
                .is_some_and(|(staleness, epoch)| *epoch <= staleness.up_to());
            if stale {
                fail(std::slice::from_mut(unit));
                metrics::counter!("bidask_units_refused_stale_total").increment(1);
            }
            !stale
        });
        if units.is_empty() {
            return;
        }
        batch.clear();
        match self.write(units, batch).await {
            Ok(()) => {}
            // Refused before anything was written.
            Err(StoreError::WriterReplaced) => {
                self.step_down();
                fail(units);
            }
            Err(error) if error.is_unavailable() => {
                tracing::error!(%error, units = units.len(), "batch commit failed; its products rebuild from the database");
                metrics::counter!("bidask_commit_failures_total").increment(1);
                // It may have landed: read its counters back, now if the
                // database answers, else before the next batch.
                self.doubt(units);
                fail(units);
                self.counters_current().await;
            }
            Err(error) => {
                // The database refused something (a constraint), so nothing
                // landed. One product's bad unit must not fail the others:
                // commit each product's units on their own.
                tracing::error!(%error, units = units.len(), "batch refused; committing its products one by one");
                metrics::counter!("bidask_commit_failures_total").increment(1);
                let mut groups: Vec<Vec<Unit>> = Vec::new();
                for unit in units.drain(..) {
                    match groups
                        .iter_mut()
                        .find(|group| group[0].channel == unit.channel)
                    {
                        Some(group) => group.push(unit),
                        None => groups.push(vec![unit]),
                    }
                }
                for mut group in groups {
                    batch.clear();
                    if *self.replaced.borrow() {
                        fail(&mut group);
                        continue;
                    }
                    if let Err(error) = self.write(&mut group, batch).await {
                        if matches!(error, StoreError::WriterReplaced) {
                            self.step_down();
                            fail(&mut group);
                            continue;
                        }
                        tracing::error!(%error, channel = %group[0].channel, "units refused by the database");
                        // Refused or not: a commit counted as failed may
                        // have landed after the counters were read back
                        // (a frozen database that resumed), and then every
                        // batch would collide on its `seq` again. Reading
                        // them back once more costs a query a channel.
                        self.doubt(&group);
                        fail(&mut group);
                    }
                }
                self.counters_current().await;
            }
        }
    }

    /// Whether the counters can be trusted: after a failed commit they are
    /// read back first (see [`Writer::catch_up`]), within the commit's
    /// time bound.
    async fn counters_current(&mut self) -> bool {
        if self.unsure.is_empty() {
            return true;
        }
        let caught_up = tokio::time::timeout(COMMIT_TIMEOUT, self.catch_up())
            .await
            .unwrap_or(Err(StoreError::TimedOut));
        match &caught_up {
            Ok(()) => {}
            Err(StoreError::WriterReplaced) => self.step_down(),
            Err(error) => tracing::warn!(%error, "cannot read the feed counters back"),
        }
        caught_up.is_ok()
    }

    /// Stops writing for good, and tells the server to stop. What was in
    /// doubt stays so: it is the other server's to read back now, and this
    /// one stops asking.
    fn step_down(&mut self) {
        self.unsure.clear();
        if !self.replaced.send_replace(true) {
            tracing::error!(
                "another bidask server claimed this database while this one had lost its \
                 connection and the writer's lock: its ids and books are no longer what is \
                 stored, so it refuses every order from now on and stops"
            );
        }
    }

    /// Notes the channels `units` write to as unsure.
    fn doubt(&mut self, units: &[Unit]) {
        self.in_doubt.store(true, Ordering::Release);
        for unit in units {
            self.unsure.insert(unit.channel);
            self.unsure
                .extend(unit.events.iter().map(|event| event.channel));
        }
    }

    /// Reads back the counters of the channels a failed commit wrote to,
    /// and publishes the events of any that landed all the same: they are
    /// committed, so subscribers get them, in `seq` order, before the next
    /// ones, and the bus's window of recent events keeps no hole for a
    /// resume to skip. A product with such events rebuilds, because its
    /// actor may have read the database before they landed. Nothing is
    /// published unless everything was read.
    ///
    /// The reads wait for the writer's lock first: the failed commit's
    /// backend holds it until it has finished the statement, and PostgreSQL
    /// may still commit that statement after the connection was dropped (a
    /// commit that timed out behind a stalled disk). Read before that, the
    /// counters would miss it for good.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        self.committer.fence().await?;
        let mut stored = Vec::with_capacity(self.unsure.len());
        let mut landed = Vec::new();
        for channel in &self.unsure {
            let name = channel.to_string();
            let last = self.store.channel_seq(&name).await?;
            let mut after = self.seqs.get(channel).copied().unwrap_or(0);
            while after < last {
                let rows = self.store.feed_events(&name, after, CATCH_UP_PAGE).await?;
                let Some(&(seq, _)) = rows.last() else {
                    break;
                };
                after = seq;
                landed.extend(rows.into_iter().map(|(seq, message)| Published {
                    channel: *channel,
                    seq,
                    message,
                }));
            }
            stored.push((*channel, last));
        }
        if !landed.is_empty() {
            tracing::warn!(
                events = landed.len(),
                "a commit counted as failed had landed; publishing its events"
            );
        }
        let rebuilt: HashSet<i64> = landed
            .iter()
            .filter_map(|event| match event.channel {
                Channel::Product(id) => Some(id),
                _ => None,
            })
            .collect();
        for id in rebuilt {
            if let Some(staleness) = self.staleness.get(&id) {
                staleness.force();
            }
        }
        // A product is reachable before its NEW_PRODUCT is published, as
        // at its creation: opening it waits (boundedly) for that.
        let mut opening = Vec::new();
        for event in landed
            .iter()
            .filter(|event| event.channel == Channel::Products)
        {
            if let Some(id) = new_product_id(&event.message) {
                let (done, opened) = oneshot::channel();
                // Refused only when the server is stopping.
                if self.landed_products.send((id, done)).is_ok() {
                    opening.push(opened);
                }
            }
        }
        for opened in opening {
            let _ = tokio::time::timeout(OPEN_WAIT, opened).await;
        }
        if !landed.is_empty() {
            self.bus.publish(landed);
        }
        for (channel, last) in stored {
            let counted = self.seqs.entry(channel).or_insert(0);
            *counted = (*counted).max(last);
        }
        self.unsure.clear();
        self.in_doubt.store(false, Ordering::Release);
        Ok(())
    }

    /// Writes `units` as one batch; once it is committed, applies and
    /// publishes their events and answers them. On error nothing is
    /// answered and no counter moves.
    async fn write(&mut self, units: &mut [Unit], batch: &mut Batch) -> Result<(), StoreError> {
        let now = now_micros();
        let ts = format_micros(now);
        let mut seqs: HashMap<Channel, i64> = HashMap::new();
        let mut published: Vec<(usize, usize, i64, String)> = Vec::new();
        let mut replies: Vec<(usize, Committed)> = Vec::new();
        let mut order_slots: HashMap<i64, usize> = HashMap::new();
        for (index, unit) in units.iter_mut().enumerate() {
            if let Some(product) = &unit.product {
                batch.products.push(product.clone());
            }
            for order in &unit.orders {
                match order_slots.get(&order.id) {
                    Some(&slot) => batch.orders[slot] = order.clone(),
                    None => {
                        order_slots.insert(order.id, batch.orders.len());
                        batch.orders.push(order.clone());
                    }
                }
            }
            batch.matches.extend(unit.matches.iter().cloned());
            for (event_index, event) in unit.events.iter_mut().enumerate() {
                if let FeedBody::UserMatch(notice) = &mut event.body {
                    self.notification += 1;
                    notice.notification_id = self.notification;
                }
                let last = *seqs
                    .entry(event.channel)
                    .or_insert_with(|| self.seqs.get(&event.channel).copied().unwrap_or(0));
                let seq = last + 1;
                seqs.insert(event.channel, seq);
                let payload = event.to_json(seq, &ts);
                if let FeedBody::UserMatch(notice) = &event.body {
                    batch.notifications.push(NotificationRecord {
                        id: notice.notification_id,
                        user_id: notice.user_id,
                        match_id: notice.match_id,
                        order_id: notice.order_id,
                        payload: payload.clone(),
                        created_at: now,
                    });
                }
                batch.events.push(FeedEventRecord {
                    channel: event.channel.to_string(),
                    seq,
                    event_type: event.body.event_type().to_owned(),
                    payload: payload.clone(),
                    created_at: now,
                });
                published.push((index, event_index, seq, payload));
            }
            if let Some(reply) = &unit.reply {
                let seq = seqs
                    .get(&unit.channel)
                    .or_else(|| self.seqs.get(&unit.channel))
                    .copied()
                    .unwrap_or(0);
                let body = reply
                    .response
                    .as_ref()
                    .map(|response| response.to_body(seq));
                if let (Some(draft), Some(body)) = (&reply.idempotency, &body) {
                    batch.idempotency.push(IdempotencyRecord {
                        user_id: draft.user_id,
                        key: draft.key.clone(),
                        request_hash: draft.request_hash.clone(),
                        status: 201,
                        response: body.clone(),
                        created_at: now,
                    });
                }
                let order_id = reply.response.as_ref().map(Response::order_id);
                replies.push((
                    index,
                    Committed {
                        seq,
                        body,
                        order_id,
                    },
                ));
            }
        }

        let started = Instant::now();
        // A database that hangs instead of failing must not hold every
        // request: past the bound the commit counts as failed, and since it
        // may still land, the counters are read back (see `unsure`).
        let result = match tokio::time::timeout(COMMIT_TIMEOUT, self.committer.commit(batch)).await
        {
            Ok(result) => result,
            Err(_) => Err(StoreError::TimedOut),
        };
        // A batch of refusals alone writes nothing and is no commit; and a
        // refusal is no command committed.
        if !batch.is_empty() {
            let commands = units
                .iter()
                .filter(|unit| {
                    unit.reply
                        .as_ref()
                        .is_none_or(|reply| reply.refusal.is_none())
                })
                .count();
            metrics::histogram!("bidask_commit_seconds").record(started.elapsed().as_secs_f64());
            metrics::histogram!("bidask_commit_batch_units").record(commands as f64);
        }
        result?;

        self.seqs.extend(seqs);
        for order in &batch.orders {
            if let Some(done) = Finished::new(order.user_id, &order.status) {
                self.finished.insert(order.id, done);
            }
        }
        for unit in units.iter_mut() {
            if let Some(OnCommit(hook)) = unit.on_commit.take() {
                hook();
            }
        }
        let mut events = Vec::with_capacity(published.len());
        for (index, event_index, seq, message) in published {
            let event = &units[index].events[event_index];
            if let Channel::Product(product_id) = event.channel {
                self.replicas.apply(product_id, seq, &event.body);
            }
            events.push(Published {
                channel: event.channel,
                seq,
                message,
            });
        }
        if !events.is_empty() {
            self.bus.publish(events);
        }
        metrics::counter!("bidask_events_published_total").increment(batch.events.len() as u64);
        metrics::counter!("bidask_matches_total").increment(batch.matches.len() as u64);
        for (index, committed) in replies {
            if let Some(reply) = units[index].reply.take() {
                let outcome = match reply.refusal {
                    Some(refusal) => Err(refusal),
                    None => Ok(committed),
                };
                let _ = reply.sender.send(outcome);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epoch protocol between an actor and the writer's force.
    #[tokio::test]
    async fn a_force_refuses_the_current_epoch_and_the_one_being_built() {
        let staleness = Staleness::default();
        staleness.set_current(3);
        staleness.force();
        // Units decided at epoch 3 are refused (epoch <= up_to)...
        assert!(staleness.up_to() >= 3);
        // ...and the actor was woken to rebuild.
        tokio::time::timeout(std::time::Duration::from_secs(1), staleness.marked())
            .await
            .expect("the actor is woken");

        // A rebuild announces epoch 4 before its reads; a force during
        // them leaves epoch 4 stale, so it rebuilds once more.
        let next = staleness.up_to() + 1;
        staleness.set_current(next);
        staleness.force();
        assert!(staleness.up_to() >= next, "the rebuild's epoch is stale");
    }

    #[test]
    fn only_new_product_events_name_a_product_to_open() {
        assert_eq!(
            new_product_id(r#"{"type":"NEW_PRODUCT","channel":"products","seq":3,"product_id":7}"#),
            Some(7)
        );
        assert_eq!(
            new_product_id(r#"{"type":"PRICE_DROP","channel":"products","seq":4,"product_id":7}"#),
            None
        );
        assert_eq!(new_product_id("not json"), None);
    }
}
