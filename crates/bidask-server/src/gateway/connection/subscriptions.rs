//! What a connection follows: the automatic join of the user's own
//! channel, `subscribe` and `unsubscribe`, and how a subscription starts
//! (a snapshot, or just the `seq`) or resumes (from the hub's window, else
//! from the feed's rows, else with a `reset`), and the record of what was
//! delivered on the user's channel.

use std::sync::atomic::Ordering;

use bidask_store::StoreError;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Connection, End, Subscription, token_expired};
use crate::feed::Channel;
use crate::gateway::Identity;
use crate::gateway::handshake::Socket;
use crate::gateway::hub::Joined;
use crate::gateway::protocol::{self, MessageId, Refusal};

/// Events read from the database per query of a resume.
const REPLAY_PAGE: i64 = 500;

/// How a resume was served, for `/realtime/stats`.
#[derive(Debug, Clone, Copy)]
enum Served {
    /// From the hub's in-memory window.
    Window,
    /// From the database.
    Database,
    /// With a `reset`: the events were gone.
    Reset,
}

/// How a replay from the database ended.
enum Replayed {
    /// Every stored event after the starting point went out.
    Whole,
    /// The next stored event was not the next `seq`: the ones between
    /// were pruned (see `BIDASK_FEED_RETENTION_SECS`) during the replay.
    /// Holds the page that begins after the hole.
    Pruned(Vec<(i64, String)>),
}

impl Connection {
    /// Subscribes an authenticated connection to its `user:{id}`, resuming
    /// after the last event delivered to any of the user's connections, or
    /// where this one stopped when its token expired. A refusal carries the
    /// `id` of the `auth` message that caused the join, so that the client
    /// can tell its sign-in did not bring its private events.
    pub(super) async fn join_own_channel(
        &mut self,
        socket: &mut Socket,
        id: Option<&MessageId>,
    ) -> Result<(), End> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        let channel = Channel::User(user.id);
        if self.is_subscribed(channel) {
            return Ok(());
        }
        let limit = self.gateway.settings.max_subscriptions;
        let outcome = if self.subscriptions.len() >= limit {
            Err(too_many_subscriptions(limit, None))
        } else {
            match self.own_start(None).await {
                Ok(start) => self.join(socket, channel, Some(start), false, None).await,
                Err(refusal) => Err(refusal),
            }
        };
        match outcome {
            Ok(result) => result,
            Err(mut refusal) => {
                // `join` was given no id: the refusal is the `auth`'s.
                refusal.id = id.cloned();
                self.send(socket, refusal.to_message()).await
            }
        }
    }

    /// Where the user's own channel starts when it is joined without a
    /// `since_seq`: where this connection stopped when its token expired,
    /// or else after what the user's connections were seen to read. Not at
    /// the channel's newest `seq`, which would skip what was never sent.
    async fn own_start(&mut self, id: Option<&MessageId>) -> Result<i64, Refusal> {
        if let Some(stopped) = self.own_stopped_at.take() {
            return Ok(stopped);
        }
        let Some(user) = &self.user else {
            return Ok(0);
        };
        let read = self.state.store.delivered_seq(user.id);
        let delivered = self
            .gateway
            .query(read)
            .await
            .map_err(|error| unavailable(&error, id))?;
        self.marked = self.marked.max(delivered);
        self.acked = self.acked.max(delivered);
        Ok(delivered)
    }

    pub(super) async fn subscribe(
        &mut self,
        socket: &mut Socket,
        names: &[String],
        since_seq: Option<i64>,
        id: Option<&MessageId>,
    ) -> Result<Result<(), End>, Refusal> {
        let channels = protocol::channels(names, id)?;
        for channel in &channels {
            match channel {
                Channel::User(user) if self.user.as_ref().is_none_or(|me| me.id != *user) => {
                    return Err(Refusal::new(
                        "forbidden",
                        format!("{channel} is another user's channel; authenticate as its owner"),
                        id.cloned(),
                    ));
                }
                Channel::User(_) if self.user.as_ref().is_some_and(Identity::is_expired) => {
                    return Err(token_expired(id));
                }
                Channel::Product(product) if self.state.catalog.get(*product).is_none() => {
                    return Err(Refusal::new(
                        "unknown_channel",
                        format!("there is no product {product}"),
                        id.cloned(),
                    ));
                }
                _ => {}
            }
        }
        let mut added: Vec<Channel> = channels
            .iter()
            .copied()
            .filter(|channel| !self.is_subscribed(*channel))
            .collect();
        added.sort_unstable();
        added.dedup();
        let limit = self.gateway.settings.max_subscriptions;
        if self.subscriptions.len() + added.len() > limit {
            return Err(too_many_subscriptions(limit, id));
        }
        let mut seen = Vec::with_capacity(channels.len());
        for channel in channels {
            if seen.contains(&channel) {
                continue;
            }
            seen.push(channel);
            // The user's own channel, joined without a `since_seq`, starts
            // where their events were last read: a start, not a resume the
            // client asked for.
            let asked = since_seq.is_some();
            let since = match channel {
                Channel::User(_) if !asked && !self.is_subscribed(channel) => {
                    match self.own_start(id).await {
                        Ok(start) => Some(start),
                        Err(refusal) => {
                            if let Err(end) = self.send(socket, refusal.to_message()).await {
                                return Ok(Err(end));
                            }
                            continue;
                        }
                    }
                }
                _ => since_seq,
            };
            match self.join(socket, channel, since, asked, id).await {
                Ok(Ok(())) => {}
                Ok(Err(end)) => return Ok(Err(end)),
                Err(refusal) => {
                    if let Err(end) = self.send(socket, refusal.to_message()).await {
                        return Ok(Err(end));
                    }
                }
            }
        }
        Ok(Ok(()))
    }

    /// Joins one channel: its `subscribed` reply, then (on a resume) the
    /// events after `since`. `asked` when the client gave `since` (a
    /// `since_seq`), which `/realtime/stats` counts as a resume.
    async fn join(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        since: Option<i64>,
        asked: bool,
        id: Option<&MessageId>,
    ) -> Result<Result<(), End>, Refusal> {
        // A `user:` or `products` channel already followed, with nothing
        // to resume: it stands at what this connection was last sent, and
        // what is queued for it follows as it would have anyway. The
        // database's `seq` could be past those queued events, which would
        // then be skipped, and asking it again and again costs a read
        // each. (A product's subscribe gets a fresh snapshot: the client
        // may want to start over.)
        if since.is_none()
            && !matches!(channel, Channel::Product(_))
            && let Some(seq) = self.written_seq(channel)
        {
            return Ok(self.send(socket, subscribed(channel, seq, id)).await);
        }
        let joined =
            self.gateway
                .hub
                .join(channel, self.id, &self.outbox_sender, &self.peer, since);
        let followed = self.written_seq(channel);
        if self.is_subscribed(channel) {
            self.mark(channel, since.unwrap_or(i64::MAX));
        } else {
            self.subscriptions.push(Subscription {
                channel,
                seq: i64::MAX,
            });
            let counters = &self.gateway.hub.counters;
            counters.subscriptions.fetch_add(1, Ordering::Relaxed);
            metrics::gauge!("bidask_ws_subscriptions").increment(1.0);
        }
        let result = match since {
            Some(since) => self.resume(socket, channel, joined, since, asked, id).await,
            None => self.start(socket, channel, &joined, id, false).await,
        };
        if result.is_err() {
            match followed {
                // A refused request leaves the connection as it was: a
                // channel it followed goes on from what was written last,
                // before the request or by the part of its replay that
                // went out (past its `since`; the `since` itself was only
                // the client's word, which the refusal takes back).
                Some(before) => {
                    let replayed = self
                        .written_seq(channel)
                        .filter(|seq| since.is_some_and(|since| *seq > since));
                    self.mark(channel, replayed.map_or(before, |seq| seq.max(before)));
                }
                None => self.drop_subscription(channel),
            }
        }
        result
    }

    /// `subscribed` with the channel's current state: a product's
    /// snapshot, or just the `seq` of the others.
    async fn start(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        joined: &Joined,
        id: Option<&MessageId>,
        reset: bool,
    ) -> Result<Result<(), End>, Refusal> {
        let (seq, snapshot) = match channel {
            Channel::Product(product_id) => {
                let (seq, snapshot) = self
                    .gateway
                    .snapshots
                    .product(&self.state, product_id, joined.seq)
                    .await
                    .ok_or_else(|| {
                        Refusal::new(
                            "unknown_channel",
                            format!("there is no product {product_id}"),
                            id.cloned(),
                        )
                    })?;
                (seq, Some(snapshot))
            }
            _ => {
                let name = channel.to_string();
                let committed = self
                    .gateway
                    .query(self.state.store.channel_seq(&name))
                    .await
                    .map_err(|error| unavailable(&error, id))?;
                (committed.max(joined.seq), None)
            }
        };
        let mut reply = json!({"type": "subscribed", "channel": channel.to_string(), "seq": seq});
        if reset {
            reply["reset"] = Value::Bool(true);
        }
        // The snapshot is shared with the product's other subscribers: it
        // goes out as it is, after this connection's own fields.
        let mut head = protocol::with_id(&reply, id);
        head.pop();
        head.push_str(",\"snapshot\":");
        let snapshot = snapshot.unwrap_or_else(|| Utf8Bytes::from_static("null"));
        let parts = [head.into(), snapshot, Utf8Bytes::from_static("}")];
        if let Err(end) = self.send_parts(socket, &parts).await {
            return Ok(Err(end));
        }
        // Only now: a close cut into the reply names the `seq` the
        // client last had whole.
        self.mark(channel, seq);
        if joined.seq <= seq {
            return Ok(Ok(()));
        }
        // The hub published events the snapshot does not hold: the
        // replica can lag behind it (a commit that counted as failed but
        // landed is published before its product is rebuilt). Those
        // events are committed, so they follow from the database; the
        // ones after the join follow from the outbox.
        let name = channel.to_string();
        let page = match self
            .gateway
            .query(self.state.store.feed_events(&name, seq, REPLAY_PAGE))
            .await
        {
            Ok(page) => page,
            Err(error) => return Ok(Err(unreadable(&error))),
        };
        // These events were published moments ago, so they are pruned
        // only under a retention shorter than the replica's lag.
        Ok(match self.replay(socket, channel, page, seq).await {
            Ok(Replayed::Whole) => Ok(()),
            Ok(Replayed::Pruned(_)) => Err(End::Pruned),
            Err(end) => Err(end),
        })
    }

    /// `subscribed` without a snapshot, then every event after `since`:
    /// from the hub's window, else from the database; a `reset` snapshot
    /// when they are gone. Counted as a resume when `asked`.
    async fn resume(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        joined: Joined,
        since: i64,
        asked: bool,
        id: Option<&MessageId>,
    ) -> Result<Result<(), End>, Refusal> {
        self.mark(channel, since);
        if let Some(backlog) = joined.backlog {
            self.count_resume(asked, Served::Window);
            if let Err(end) = self.send(socket, subscribed(channel, since, id)).await {
                return Ok(Err(end));
            }
            for frame in backlog {
                if let Err(end) = self
                    .feed_event(socket, frame.channel, frame.seq, &frame.text)
                    .await
                {
                    return Ok(Err(end.into()));
                }
            }
            return Ok(socket.flush().await.map_err(End::from));
        }
        let name = channel.to_string();
        let store = self.state.store.clone();
        let page = self
            .gateway
            .query(store.feed_events(&name, since, REPLAY_PAGE))
            .await
            .map_err(|error| unavailable(&error, id))?;
        let gone = match page.first() {
            Some((first, _)) => *first - 1 != since,
            None => {
                let committed = self
                    .gateway
                    .query(store.channel_seq(&name))
                    .await
                    .map_err(|error| unavailable(&error, id))?;
                since > committed.max(joined.seq)
            }
        };
        if gone {
            self.count_resume(asked, Served::Reset);
            if matches!(channel, Channel::Product(_)) || page.is_empty() {
                return self.start(socket, channel, &joined, id, true).await;
            }
            return self.replay_what_is_left(socket, channel, page, id).await;
        }
        self.count_resume(asked, Served::Database);
        if let Err(end) = self.send(socket, subscribed(channel, since, id)).await {
            return Ok(Err(end));
        }
        match self.replay(socket, channel, page, since).await {
            Ok(Replayed::Whole) => Ok(Ok(())),
            // The events still owed are gone: a second `subscribed`, with
            // the state they would have built, as for a resume that came
            // too late.
            Ok(Replayed::Pruned(page)) => {
                self.count_resume(asked, Served::Reset);
                if matches!(channel, Channel::Product(_)) {
                    self.start(socket, channel, &joined, id, true).await
                } else {
                    self.replay_what_is_left(socket, channel, page, id).await
                }
            }
            Err(end) => Ok(Err(end)),
        }
    }

    /// A reset of a private or catalog channel, which has no state to give
    /// instead of the events that are gone: `subscribed` with `reset`
    /// just before `page`, the oldest events still stored, and then every
    /// event from there, since they are still news (a sale the user has
    /// not heard of). Goes again past any hole a prune makes meanwhile.
    async fn replay_what_is_left(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        mut page: Vec<(i64, String)>,
        id: Option<&MessageId>,
    ) -> Result<Result<(), End>, Refusal> {
        loop {
            let Some(&(first, _)) = page.first() else {
                return Ok(Ok(()));
            };
            let from = first - 1;
            self.mark(channel, from);
            let reply = json!({
                "type": "subscribed",
                "channel": channel.to_string(),
                "seq": from,
                "reset": true,
                "snapshot": null,
            });
            if let Err(end) = self.send(socket, protocol::with_id(&reply, id)).await {
                return Ok(Err(end));
            }
            match self.replay(socket, channel, page, from).await {
                Ok(Replayed::Whole) => return Ok(Ok(())),
                Ok(Replayed::Pruned(next)) => page = next,
                Err(end) => return Ok(Err(end)),
            }
        }
    }

    /// Counts a resume by how it was served, if the client `asked` for it
    /// with `since_seq` (not the automatic join of its own channel).
    fn count_resume(&self, asked: bool, served: Served) {
        if !asked {
            return;
        }
        let counters = &self.gateway.hub.counters;
        let (counter, from) = match served {
            Served::Window => (&counters.resumes_from_window, "window"),
            Served::Database => (&counters.resumes_from_database, "database"),
            Served::Reset => (&counters.resets, "reset"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("bidask_ws_resumes_total", "from" => from).increment(1);
    }

    /// Sends `page`, the first page of stored events after `since`, and
    /// the pages after it, as long as each goes on from the one before.
    /// A page that cannot be read ends the connection
    /// ([`End::Unreadable`]): its `subscribed` is out already.
    async fn replay(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        mut page: Vec<(i64, String)>,
        since: i64,
    ) -> Result<Replayed, End> {
        let name = channel.to_string();
        let store = self.state.store.clone();
        let mut last = since;
        loop {
            if page.first().is_some_and(|&(first, _)| first != last + 1) {
                return Ok(Replayed::Pruned(page));
            }
            let full = page.len() as i64 == REPLAY_PAGE;
            for (seq, payload) in page {
                last = seq;
                if let Err(end) = self.feed_event(socket, channel, seq, &payload.into()).await {
                    return Err(end.into());
                }
            }
            if let Err(end) = socket.flush().await {
                return Err(end.into());
            }
            if !full {
                return Ok(Replayed::Whole);
            }
            page = match self
                .gateway
                .query(store.feed_events(&name, last, REPLAY_PAGE))
                .await
            {
                Ok(page) => page,
                Err(error) => return Err(unreadable(&error)),
            };
        }
    }

    pub(super) async fn unsubscribe(
        &mut self,
        socket: &mut Socket,
        names: &[String],
        id: Option<&MessageId>,
    ) -> Result<Result<(), End>, Refusal> {
        let channels = protocol::channels(names, id)?;
        for channel in &channels {
            self.drop_subscription(*channel);
        }
        let names: Vec<String> = channels.iter().map(Channel::to_string).collect();
        let reply = json!({"type": "unsubscribed", "channels": names});
        Ok(self.send(socket, protocol::with_id(&reply, id)).await)
    }

    /// The `seq` of `channel` last sent on this connection, if it is
    /// subscribed and its reply went out.
    fn written_seq(&self, channel: Channel) -> Option<i64> {
        self.written()
            .find(|(subscribed, _)| *subscribed == channel)
            .map(|(_, seq)| seq)
    }

    pub(super) fn is_subscribed(&self, channel: Channel) -> bool {
        self.subscriptions
            .iter()
            .any(|subscription| subscription.channel == channel)
    }

    fn mark(&mut self, channel: Channel, seq: i64) {
        if let Some(subscription) = self
            .subscriptions
            .iter_mut()
            .find(|subscription| subscription.channel == channel)
        {
            subscription.seq = seq;
        }
    }

    pub(super) fn drop_subscription(&mut self, channel: Channel) {
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|subscription| subscription.channel != channel);
        if self.subscriptions.len() < before {
            self.gateway.hub.leave(channel, self.id);
            let counters = &self.gateway.hub.counters;
            counters.subscriptions.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("bidask_ws_subscriptions").decrement(1.0);
        }
    }

    /// Records how far the client has read the user's channel, off the
    /// connection's path, so that the user's next connection starts after
    /// it: at each pong that moved it.
    pub(super) fn record_delivery(&mut self) {
        let Some(user) = &self.user else { return };
        if self.acked <= self.marked {
            return;
        }
        self.marked = self.acked;
        // Not one of the gateway's places: these follow pongs, not client
        // requests, and a burst of them must not queue ahead of a
        // subscribe. Past the pool's acquire bound one fails; the next
        // pong that moves the mark records a later `seq`, and until then
        // the events after the last record would come again (at least
        // once, never skipped).
        let (store, user_id, seq) = (self.state.store.clone(), user.id, self.acked);
        tokio::spawn(async move {
            if let Err(error) = store.mark_delivered(user_id, seq).await {
                tracing::warn!(%error, user_id, seq, "could not record a delivery; it will be sent again");
            }
        });
    }
}

/// A `subscribed` without a snapshot (the field is there, `null`, as in
/// every `subscribed`): a resume's, with the `seq` it resumes after, or a
/// followed channel's, with the `seq` last sent.
fn subscribed(channel: Channel, seq: i64, id: Option<&MessageId>) -> String {
    let reply = json!({
        "type": "subscribed",
        "channel": channel.to_string(),
        "seq": seq,
        "snapshot": null,
    });
    protocol::with_id(&reply, id)
}

/// The end of a connection whose owed events could not be read after
/// its `subscribed` went out (see [`End::Unreadable`]).
fn unreadable(error: &StoreError) -> End {
    tracing::warn!(%error, "a replay could not read the feed; closing for a resume");
    End::Unreadable
}

fn unavailable(error: &StoreError, id: Option<&MessageId>) -> Refusal {
    tracing::warn!(%error, "a subscription could not read the feed");
    Refusal::new(
        "unavailable",
        "storage is unavailable; subscribe again shortly",
        id.cloned(),
    )
}

/// The refusal of a subscription past `BIDASK_WS_MAX_SUBSCRIPTIONS`.
fn too_many_subscriptions(limit: usize, id: Option<&MessageId>) -> Refusal {
    Refusal::new(
        "too_many_subscriptions",
        format!("at most {limit} subscriptions per connection"),
        id.cloned(),
    )
}
