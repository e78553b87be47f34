//! One WebSocket connection: a single task that reads the client's
//! messages, writes its subscriptions' events from a bounded outbox, and
//! sends heartbeats.
//!
//! A subscription remembers the last `seq` written per channel. Every event
//! passes that filter, so a snapshot (or a replay from the window or the
//! database) and the live events after it join without a gap or a
//! duplicate: the connection joins the hub *before* it reads the snapshot,
//! and drops the live events the snapshot already holds.
//!
//! Everything that can block on the client (a write to a socket nobody
//! reads) races the hub's "slow" mark, so a stuck client is closed with
//! 4008 as soon as its outbox overflows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bidask_store::StoreError;
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};

use super::handshake::Socket;
use super::hub::{Joined, Peer, SharedFrame, Signal};
use super::protocol::{self, Command, Refusal, Request};
use super::{Gateway, Identity};
use crate::auth::TokenError;
use crate::clock::{format_micros, now_micros};
use crate::feed::Channel;
use crate::http::AppState;
use crate::http::error::ApiError;

/// Writes are gathered up to this size before they go to the socket.
pub const WRITE_TARGET: usize = 2 * 1024;
/// The largest frame a message is written in. tungstenite's write buffer
/// keeps the largest size it ever had, so a longer message (a deep book's
/// snapshot) goes out in fragments, each written before the next is
/// made: a subscriber must not hold a copy of its snapshot for as long as
/// it stays connected.
pub const FRAGMENT: usize = 512;
/// Events read from the database per query of a resume.
const REPLAY_PAGE: i64 = 500;
/// Events written before the connection looks at its other work again.
const WRITE_BATCH: usize = 64;
/// Messages a connection writes before it adds them to the shared
/// counters (which it also does at each heartbeat and at the end).
const COUNT_BATCH: u64 = 64;
/// Heartbeats without a frame from the client before it is dropped.
const SILENT_BEATS: u32 = 3;
/// The least time a write of queued frames may wait on the client.
const MIN_STUCK: Duration = Duration::from_secs(1);
/// The least time a reply (a subscription's snapshot or replay, read from
/// the database and written) may take.
const MIN_REPLY_STUCK: Duration = Duration::from_secs(60);
/// How long a closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Close codes.
mod code {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const SLOW: u16 = 4008;
}

/// Why the connection ends.
#[derive(Debug)]
enum End {
    /// The network broke it, or the client went without a close frame.
    Gone,
    /// The client sent a close frame, whose echo tungstenite has queued.
    Closed,
    /// Its outbox overflowed.
    Slow,
    /// The server is stopping.
    Stopping,
    /// It stopped answering pings.
    Silent,
    /// A write to it waited too long: it stopped reading.
    Stuck,
    /// It kept sending past its message rate.
    Flood,
    /// It sent a message over the size limit.
    TooBig,
    /// Events it was owed were pruned while they were being replayed to
    /// it, after its `subscribed` had promised them.
    Pruned,
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

impl From<WsError> for End {
    fn from(_: WsError) -> Self {
        Self::Gone
    }
}

/// What woke the connection.
enum Wake {
    Beat,
    Incoming(Option<Result<Message, WsError>>),
    Frame(SharedFrame),
}

struct Subscription {
    channel: Channel,
    /// The last `seq` written to the client.
    seq: i64,
}

/// See the module docs.
pub struct Connection {
    id: u64,
    state: AppState,
    gateway: Arc<Gateway>,
    user: Option<Identity>,
    subscriptions: Vec<Subscription>,
    outbox_sender: mpsc::Sender<SharedFrame>,
    outbox: mpsc::Receiver<SharedFrame>,
    peer: Arc<Peer>,
    limiter: Option<DefaultDirectRateLimiter>,
    strikes: u32,
    silent_beats: u32,
    /// The user channel's `seq` last recorded as delivered.
    marked: i64,
    /// Where this connection's `user:{id}` stopped when its token expired:
    /// a fresh `auth` resumes there, not after what the user's other
    /// connections were given meanwhile.
    own_stopped_at: Option<i64>,
    /// Messages written since the counter was last updated.
    unsent_count: u64,
    /// A message is being written in fragments: if the connection ends
    /// before its last one, no other message may follow (RFC 6455,
    /// section 5.4), only the close.
    mid_message: bool,
}

impl Connection {
    /// A connection of `user` (if it authenticated at the upgrade).
    pub fn new(state: AppState, gateway: Arc<Gateway>, user: Option<Identity>) -> Self {
        let (outbox_sender, outbox) = mpsc::channel(gateway.settings.queue.max(1));
        let limiter = std::num::NonZeroU32::new(gateway.settings.messages_per_sec)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Self {
            id: gateway.hub.connection_id(),
            state,
            gateway,
            user,
            subscriptions: Vec::new(),
            outbox_sender,
            outbox,
            peer: Arc::new(Peer::default()),
            limiter,
            strikes: 0,
            silent_beats: 0,
            marked: 0,
            own_stopped_at: None,
            unsent_count: 0,
            mid_message: false,
        }
    }

    /// Serves the connection until it ends, then closes it.
    pub async fn run(mut self, mut socket: Socket) {
        let signals = self.gateway.hub.signals(self.id);
        let end = self.serve(&mut socket, signals).await;
        // Boxed, like every path but the one that forwards events: an idle
        // connection's task is only as large as what it does all the time.
        Box::pin(self.finish(&mut socket, end)).await;
    }

    async fn serve(&mut self, socket: &mut Socket, signals: watch::Receiver<Signal>) -> End {
        let peer = Arc::clone(&self.peer);
        // Writing queued frames or a heartbeat may wait on the client as
        // long as it may stay silent. A reply may also wait on the database
        // and write a long replay, so it gets longer.
        let stuck_after = (self.gateway.settings.heartbeat * SILENT_BEATS).max(MIN_STUCK);
        let reply_stuck_after = (stuck_after * 4).max(MIN_REPLY_STUCK);
        let greeting = Box::pin(self.greet(socket));
        if let Err(end) = race(&peer, reply_stuck_after, greeting).await {
            return end;
        }
        // One wait for the next signal for the whole loop: made anew each
        // time round, it would register with the hub's shared notifier for
        // every event this connection writes.
        let mut signal = std::pin::pin!(next_signal(signals));
        loop {
            // No wait on the slow mark here: the hub marks a connection
            // slow only when its outbox is full, which wakes this loop.
            if peer.is_slow() {
                return End::Slow;
            }
            let wake = tokio::select! {
                biased;
                (signals, received) = &mut signal => {
                    match received {
                        Some(received) if !received.stopping => {
                            signal.set(next_signal(signals));
                            Wake::Beat
                        }
                        _ => return End::Stopping,
                    }
                }
                incoming = socket.next() => Wake::Incoming(incoming),
                Some(frame) = self.outbox.recv() => Wake::Frame(frame),
            };
            let outcome = match wake {
                Wake::Frame(frame) => race(&peer, stuck_after, self.forward(socket, frame)).await,
                Wake::Beat => race(&peer, stuck_after, Box::pin(self.beat(socket))).await,
                Wake::Incoming(incoming) => {
                    let reply = Box::pin(self.receive(socket, incoming));
                    race(&peer, reply_stuck_after, reply).await
                }
            };
            if let Err(end) = outcome {
                return end;
            }
        }
    }

    /// `welcome`, then the user's own channel from where it was left.
    async fn greet(&mut self, socket: &mut Socket) -> Result<(), End> {
        let welcome = json!({
            "type": "welcome",
            "connection_id": self.id,
            "user": self.user.as_ref().map(Identity::to_json),
            "heartbeat_interval_ms": self.gateway.settings.heartbeat.as_millis() as u64,
        });
        self.send(socket, welcome.to_string()).await?;
        self.join_own_channel(socket, None).await
    }

    /// Writes `first` and whatever else is queued, up to a batch, then
    /// flushes once.
    async fn forward(&mut self, socket: &mut Socket, first: SharedFrame) -> Result<(), End> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(frame) = next.take() {
            if self
                .feed_event(socket, frame.channel, frame.seq, &frame.text)
                .await?
            {
                written += 1;
            }
            if written < WRITE_BATCH {
                next = self.outbox.try_recv().ok();
            }
        }
        if written > 0 {
            socket.flush().await?;
            self.unsent_count += written as u64;
            if self.unsent_count >= COUNT_BATCH {
                self.count_sent();
            }
            self.record_delivery();
        }
        Ok(())
    }

    /// Feeds event `seq` of `channel` to the socket if the client is owed
    /// it; false for one it already has or no longer wants. The channel's
    /// mark moves only once the socket took the event: a close that cuts
    /// into a blocked write names, and records as delivered, only what was
    /// handed over.
    async fn feed_event(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        seq: i64,
        text: &Utf8Bytes,
    ) -> Result<bool, WsError> {
        let Some(index) = self
            .subscriptions
            .iter()
            .position(|subscription| subscription.channel == channel)
        else {
            return Ok(false);
        };
        let last = self.subscriptions[index].seq;
        if seq <= last {
            return Ok(false);
        }
        if seq != last + 1 {
            tracing::error!(%channel, expected = last + 1, seq, "feed gap");
        }
        socket.feed(Message::Text(text.clone())).await?;
        self.subscriptions[index].seq = seq;
        Ok(true)
    }

    /// A heartbeat with every subscription's `seq`, and a ping; drops a
    /// client that has been silent for too long.
    async fn beat(&mut self, socket: &mut Socket) -> Result<(), End> {
        self.silent_beats += 1;
        if self.silent_beats > SILENT_BEATS {
            return Err(End::Silent);
        }
        self.record_delivery();
        self.count_sent();
        self.expire(socket).await?;
        let lag = self.gateway.settings.queue - self.outbox_sender.capacity();
        metrics::histogram!("bidask_ws_queue_depth").record(lag as f64);
        let seqs: Map<String, Value> = self
            .written()
            .map(|(channel, seq)| (channel.to_string(), seq.into()))
            .collect();
        let heartbeat =
            json!({"type": "heartbeat", "ts": format_micros(now_micros()), "seqs": seqs});
        socket
            .feed(Message::Text(heartbeat.to_string().into()))
            .await?;
        socket.feed(Message::Ping(Bytes::new())).await?;
        socket.flush().await?;
        self.unsent_count += 1;
        Ok(())
    }

    /// Ends the private channel of a connection whose token has expired,
    /// checked at each heartbeat: a token is a credential for a while,
    /// not for as long as a socket stays open. An `auth` with a fresh
    /// token resumes it where it stopped.
    async fn expire(&mut self, socket: &mut Socket) -> Result<(), End> {
        let Some(user) = self.user.as_ref().filter(|user| user.is_expired()) else {
            return Ok(());
        };
        let channel = Channel::User(user.id);
        if !self.is_subscribed(channel) {
            return Ok(());
        }
        let stopped = self
            .written()
            .find(|(written, _)| *written == channel)
            .map(|(_, seq)| seq);
        self.own_stopped_at = stopped;
        self.drop_subscription(channel);
        self.send(socket, token_expired(None).to_message()).await
    }

    async fn receive(
        &mut self,
        socket: &mut Socket,
        incoming: Option<Result<Message, WsError>>,
    ) -> Result<(), End> {
        let message = match incoming {
            None => return Err(End::Gone),
            Some(Err(error)) => return Err(classify(error)),
            Some(Ok(message)) => message,
        };
        self.silent_beats = 0;
        match message {
            Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(End::Closed),
            // Every frame that makes the server write counts toward the
            // rate: text, binary (answered with an error) and pings
            // (answered with a pong by tungstenite).
            Message::Text(_) | Message::Binary(_) | Message::Ping(_) => {}
            // Reading yields whole messages, never raw frames.
            Message::Frame(_) => return Ok(()),
        }
        if let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            self.strikes += 1;
            if self.strikes > self.gateway.settings.messages_per_sec {
                return Err(End::Flood);
            }
            let id = match &message {
                Message::Text(text) => protocol::id_of(text),
                _ => None,
            };
            let refusal = Refusal::new(
                "rate_limited",
                format!(
                    "at most {} messages per second; this one was ignored",
                    self.gateway.settings.messages_per_sec
                ),
                id,
            );
            return self.send(socket, refusal.to_message()).await;
        }
        self.strikes = 0;
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let refusal = Refusal::new("unsupported_frame", "send JSON in text frames", None);
                return self.send(socket, refusal.to_message()).await;
            }
            _ => return Ok(()),
        };
        match protocol::parse(&text) {
            Ok(request) => self.execute(socket, request).await,
            Err(refusal) => self.send(socket, refusal.to_message()).await,
        }
    }

    async fn execute(&mut self, socket: &mut Socket, request: Request) -> Result<(), End> {
        let Request { id, command } = request;
        let outcome = match command {
            Command::Ping => {
                let mut pong = json!({"type": "pong"});
                protocol::with_id(&mut pong, id.as_ref());
                return self.send(socket, pong.to_string()).await;
            }
            Command::Auth { token } => self.authenticate(socket, &token, id.as_ref()).await,
            Command::Subscribe {
                channels,
                since_seq,
            } => {
                self.subscribe(socket, &channels, since_seq, id.as_ref())
                    .await
            }
            Command::Unsubscribe { channels } => {
                self.unsubscribe(socket, &channels, id.as_ref()).await
            }
        };
        match outcome {
            Ok(result) => result,
            Err(refusal) => self.send(socket, refusal.to_message()).await,
        }
    }

    /// The `auth` message: who the connection is, once.
    async fn authenticate(
        &mut self,
        socket: &mut Socket,
        token: &str,
        id: Option<&Value>,
    ) -> Result<Result<(), End>, Refusal> {
        let identity = super::identify(&self.state, token)
            .await
            .map_err(|error| Refusal::from_api(&error, id))?;
        match &mut self.user {
            Some(user) if user.id != identity.id => {
                return Err(Refusal::new(
                    "already_authenticated",
                    "this connection belongs to another user; open a new one",
                    id.cloned(),
                ));
            }
            // The same user again: a fresh token extends the connection's.
            Some(user) => user.expires_at = user.expires_at.max(identity.expires_at),
            None => self.user = Some(identity.clone()),
        }
        let mut reply = json!({"type": "authenticated", "user": identity.to_json()});
        protocol::with_id(&mut reply, id);
        if let Err(end) = self.send(socket, reply.to_string()).await {
            return Ok(Err(end));
        }
        Ok(self.join_own_channel(socket, id).await)
    }

    /// Subscribes an authenticated connection to its `user:{id}`, resuming
    /// after the last event delivered to any of the user's connections, or
    /// where this one stopped when its token expired. A refusal carries the
    /// `id` of the `auth` message that caused the join, so that the client
    /// can tell its sign-in did not bring its private events.
    async fn join_own_channel(
        &mut self,
        socket: &mut Socket,
        id: Option<&Value>,
    ) -> Result<(), End> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        let channel = Channel::User(user.id);
        if self.is_subscribed(channel) {
            return Ok(());
        }
        let outcome = if let Some(stopped) = self.own_stopped_at.take() {
            self.join(socket, channel, Some(stopped), None).await
        } else {
            let read = self.state.store.delivered_seq(user.id);
            match self.gateway.query(read).await {
                Ok(delivered) => {
                    self.marked = delivered;
                    self.join(socket, channel, Some(delivered), None).await
                }
                Err(error) => Err(unavailable(&error, None)),
            }
        };
        match outcome {
            Ok(result) => result,
            Err(mut refusal) => {
                refusal.id = refusal.id.or_else(|| id.cloned());
                self.send(socket, refusal.to_message()).await
            }
        }
    }

    async fn subscribe(
        &mut self,
        socket: &mut Socket,
        names: &[String],
        since_seq: Option<i64>,
        id: Option<&Value>,
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
            return Err(Refusal::new(
                "too_many_subscriptions",
                format!("at most {limit} subscriptions per connection"),
                id.cloned(),
            ));
        }
        let mut seen = Vec::with_capacity(channels.len());
        for channel in channels {
            if seen.contains(&channel) {
                continue;
            }
            seen.push(channel);
            match self.join(socket, channel, since_seq, id).await {
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
    /// events after `since`.
    async fn join(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        since: Option<i64>,
        id: Option<&Value>,
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
            let mut reply = json!({
                "type": "subscribed",
                "channel": channel.to_string(),
                "seq": seq,
                "snapshot": null,
            });
            protocol::with_id(&mut reply, id);
            return Ok(self.send(socket, reply.to_string()).await);
        }
        let joined =
            self.gateway
                .hub
                .join(channel, self.id, &self.outbox_sender, &self.peer, since);
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
            Some(since) => self.resume(socket, channel, joined, since, id).await,
            None => self.start(socket, channel, &joined, id, false).await,
        };
        match &result {
            Err(_) => self.drop_subscription(channel),
            Ok(Ok(())) => self.record_delivery(),
            Ok(Err(_)) => {}
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
        id: Option<&Value>,
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
        protocol::with_id(&mut reply, id);
        // The snapshot is shared with the product's other subscribers: it
        // goes out as it is, after this connection's own fields.
        let mut head = reply.to_string();
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
        let page = self
            .gateway
            .query(self.state.store.feed_events(&name, seq, REPLAY_PAGE))
            .await
            .map_err(|error| unavailable(&error, id))?;
        // These events were published moments ago, so they are pruned
        // only under a retention shorter than the replica's lag.
        Ok(match self.replay(socket, channel, page, seq, id).await? {
            Ok(Replayed::Whole) => Ok(()),
            Ok(Replayed::Pruned(_)) => Err(End::Pruned),
            Err(end) => Err(end),
        })
    }

    /// `subscribed` without a snapshot, then every event after `since`:
    /// from the hub's window, else from the database; a `reset` snapshot
    /// when they are gone.
    async fn resume(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        joined: Joined,
        since: i64,
        id: Option<&Value>,
    ) -> Result<Result<(), End>, Refusal> {
        self.mark(channel, since);
        let counters = &self.gateway.hub.counters;
        if let Some(backlog) = joined.backlog {
            counters.resumes_from_window.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("bidask_ws_resumes_total", "from" => "window").increment(1);
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
            self.count_reset();
            if matches!(channel, Channel::Product(_)) || page.is_empty() {
                return self.start(socket, channel, &joined, id, true).await;
            }
            return self.replay_what_is_left(socket, channel, page, id).await;
        }
        counters
            .resumes_from_database
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("bidask_ws_resumes_total", "from" => "database").increment(1);
        if let Err(end) = self.send(socket, subscribed(channel, since, id)).await {
            return Ok(Err(end));
        }
        match self.replay(socket, channel, page, since, id).await? {
            Ok(Replayed::Whole) => Ok(Ok(())),
            // The events still owed are gone: a second `subscribed`, with
            // the state they would have built, as for a resume that came
            // too late.
            Ok(Replayed::Pruned(page)) => {
                self.count_reset();
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
        id: Option<&Value>,
    ) -> Result<Result<(), End>, Refusal> {
        loop {
            let Some(&(first, _)) = page.first() else {
                return Ok(Ok(()));
            };
            let from = first - 1;
            self.mark(channel, from);
            let mut reply = json!({
                "type": "subscribed",
                "channel": channel.to_string(),
                "seq": from,
                "reset": true,
                "snapshot": null,
            });
            protocol::with_id(&mut reply, id);
            if let Err(end) = self.send(socket, reply.to_string()).await {
                return Ok(Err(end));
            }
            match self.replay(socket, channel, page, from, id).await? {
                Ok(Replayed::Whole) => return Ok(Ok(())),
                Ok(Replayed::Pruned(next)) => page = next,
                Err(end) => return Ok(Err(end)),
            }
        }
    }

    /// Counts a resume answered with a `reset` snapshot.
    fn count_reset(&self) {
        let counters = &self.gateway.hub.counters;
        counters.resets.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("bidask_ws_resumes_total", "from" => "reset").increment(1);
    }

    /// Sends `page`, the first page of stored events after `since`, and
    /// the pages after it, as long as each goes on from the one before.
    async fn replay(
        &mut self,
        socket: &mut Socket,
        channel: Channel,
        mut page: Vec<(i64, String)>,
        since: i64,
        id: Option<&Value>,
    ) -> Result<Result<Replayed, End>, Refusal> {
        let name = channel.to_string();
        let store = self.state.store.clone();
        let mut last = since;
        loop {
            if page.first().is_some_and(|&(first, _)| first != last + 1) {
                return Ok(Ok(Replayed::Pruned(page)));
            }
            let full = page.len() as i64 == REPLAY_PAGE;
            for (seq, payload) in page {
                last = seq;
                if let Err(end) = self.feed_event(socket, channel, seq, &payload.into()).await {
                    return Ok(Err(end.into()));
                }
            }
            if let Err(end) = socket.flush().await {
                return Ok(Err(end.into()));
            }
            if !full {
                return Ok(Ok(Replayed::Whole));
            }
            page = self
                .gateway
                .query(store.feed_events(&name, last, REPLAY_PAGE))
                .await
                .map_err(|error| unavailable(&error, id))?;
        }
    }

    async fn unsubscribe(
        &mut self,
        socket: &mut Socket,
        names: &[String],
        id: Option<&Value>,
    ) -> Result<Result<(), End>, Refusal> {
        let channels = protocol::channels(names, id)?;
        for channel in &channels {
            self.drop_subscription(*channel);
        }
        let names: Vec<String> = channels.iter().map(Channel::to_string).collect();
        let mut reply = json!({"type": "unsubscribed", "channels": names});
        protocol::with_id(&mut reply, id);
        Ok(self.send(socket, reply.to_string()).await)
    }

    /// The `seq` of `channel` last sent on this connection, if it is
    /// subscribed and its reply went out.
    fn written_seq(&self, channel: Channel) -> Option<i64> {
        self.written()
            .find(|(subscribed, _)| *subscribed == channel)
            .map(|(_, seq)| seq)
    }

    fn is_subscribed(&self, channel: Channel) -> bool {
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

    fn drop_subscription(&mut self, channel: Channel) {
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

    /// Records how far the user's channel was delivered, off the
    /// connection's path: right after each write of it, so that the next
    /// connection of the user starts after what this one received.
    fn record_delivery(&mut self) {
        let Some(user) = &self.user else { return };
        let Some(subscription) = self
            .subscriptions
            .iter()
            .find(|subscription| subscription.channel == Channel::User(user.id))
        else {
            return;
        };
        if subscription.seq <= self.marked || subscription.seq == i64::MAX {
            return;
        }
        self.marked = subscription.seq;
        // Not one of the gateway's places: these follow deliveries, not
        // client requests, and a burst of them must not queue ahead of a
        // subscribe; past the pool's acquire bound one fails, and the
        // next delivery records a later `seq` anyway.
        let (store, user_id, seq) = (self.state.store.clone(), user.id, subscription.seq);
        tokio::spawn(async move {
            if let Err(error) = store.mark_delivered(user_id, seq).await {
                tracing::warn!(%error, user_id, seq, "could not record a delivery; it will be sent again");
            }
        });
    }

    async fn send(&mut self, socket: &mut Socket, text: String) -> Result<(), End> {
        self.send_parts(socket, &[text.into()]).await
    }

    /// Sends the concatenation of `parts` as one message.
    async fn send_parts(&mut self, socket: &mut Socket, parts: &[Utf8Bytes]) -> Result<(), End> {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        if length <= FRAGMENT {
            let message = match parts {
                [one] => one.clone(),
                _ => parts.concat().into(),
            };
            socket.send(Message::Text(message)).await?;
        } else {
            self.mid_message = true;
            send_fragments(socket, parts).await?;
            self.mid_message = false;
        }
        self.unsent_count += 1;
        Ok(())
    }

    fn count_sent(&mut self) {
        if self.unsent_count > 0 {
            let counters = &self.gateway.hub.counters;
            counters
                .messages_sent
                .fetch_add(self.unsent_count, Ordering::Relaxed);
            metrics::counter!("bidask_ws_messages_sent_total").increment(self.unsent_count);
            self.unsent_count = 0;
        }
    }

    /// Leaves every channel, records the delivery and closes with the
    /// code that says why.
    async fn finish(mut self, socket: &mut Socket, end: End) {
        self.count_sent();
        self.record_delivery();
        let counters = &self.gateway.hub.counters;
        let mut messages = Vec::new();
        let echo = matches!(end, End::Closed);
        let close = match end {
            End::Gone | End::Closed => None,
            End::Slow => {
                counters.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("bidask_ws_slow_disconnects_total").increment(1);
                let seqs: Map<String, Value> = self
                    .written()
                    .map(|(channel, seq)| (channel.to_string(), seq.into()))
                    .collect();
                messages.push(Message::Text(
                    json!({
                        "type": "error",
                        "code": "slow_consumer",
                        "message": "you fell too far behind; resubscribe with since_seq",
                        "seqs": seqs,
                    })
                    .to_string()
                    .into(),
                ));
                Some((code::SLOW, self.slow_reason()))
            }
            End::Stopping => Some((code::GOING_AWAY, "server shutting down".to_owned())),
            End::Silent => {
                counters.ping_timeouts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("bidask_ws_ping_timeouts_total").increment(1);
                Some((code::POLICY, "no answer to pings".to_owned()))
            }
            // Unresponsive like a silent client, and counted with them.
            End::Stuck => {
                counters.ping_timeouts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("bidask_ws_ping_timeouts_total").increment(1);
                Some((code::POLICY, "not reading".to_owned()))
            }
            End::Flood => Some((code::POLICY, "too many messages".to_owned())),
            End::TooBig => Some((code::TOO_BIG, "message too big".to_owned())),
            // A reconnect that resumes with `since_seq` gets a reset.
            End::Pruned => Some((
                code::INTERNAL,
                "events were pruned; resubscribe with since_seq".to_owned(),
            )),
        };
        for subscription in std::mem::take(&mut self.subscriptions) {
            self.gateway.hub.leave(subscription.channel, self.id);
            counters.subscriptions.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("bidask_ws_subscriptions").decrement(1.0);
        }
        let Some((code, reason)) = close else {
            // RFC 6455 5.5.1: a close is answered with a close.
            if echo {
                let _ = tokio::time::timeout(CLOSE_WAIT, socket.flush()).await;
            }
            return;
        };
        if self.mid_message {
            messages.clear();
        }
        messages.push(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from(reason),
        })));
        let closing = async {
            for message in messages {
                socket.feed(message).await?;
            }
            socket.flush().await?;
            // Read until the client's close (or its end), so unread input
            // does not turn the close into a reset.
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            Ok::<_, WsError>(())
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
    }

    /// Each subscription's last written `seq`, but for one whose join was
    /// cut short before it had any.
    fn written(&self) -> impl Iterator<Item = (Channel, i64)> + '_ {
        self.subscriptions
            .iter()
            .filter(|subscription| subscription.seq != i64::MAX)
            .map(|subscription| (subscription.channel, subscription.seq))
    }

    /// `last seq product:42=1240 user:7=3`, cut at a channel to fit the
    /// 123 bytes a close reason may have.
    fn slow_reason(&self) -> String {
        let mut reason = String::from("slow consumer; last seq");
        for (channel, seq) in self.written() {
            let part = format!(" {channel}={seq}");
            if reason.len() + part.len() > 123 {
                break;
            }
            reason.push_str(&part);
        }
        reason
    }
}

/// Runs `work` unless the connection is marked slow first, or `work` has
/// not finished after `stuck_after`. Most writes finish at once; only one
/// that waits (on the client, or for a reply on the database) also waits
/// on the slow mark (registering with it costs a lock) and on the clock.
///
/// The bound matters for a client that stopped reading with its kernel
/// buffers full but its outbox not: no further event comes to overflow the
/// outbox, and while a write waits the loop hears no heartbeat, so without
/// it the connection would wait for ever.
async fn race<F: Future<Output = Result<(), End>>>(
    peer: &Peer,
    stuck_after: Duration,
    work: F,
) -> Result<(), End> {
    let mut work = std::pin::pin!(work);
    if let Poll::Ready(outcome) =
        std::future::poll_fn(|context| Poll::Ready(work.as_mut().poll(context))).await
    {
        return outcome;
    }
    let mut slowed = std::pin::pin!(peer.slowed());
    let mut stuck = std::pin::pin!(tokio::time::sleep(stuck_after));
    std::future::poll_fn(|context| {
        if let Poll::Ready(outcome) = work.as_mut().poll(context) {
            return Poll::Ready(outcome);
        }
        if slowed.as_mut().poll(context).is_ready() {
            return Poll::Ready(Err(End::Slow));
        }
        if stuck.as_mut().poll(context).is_ready() {
            return Poll::Ready(Err(End::Stuck));
        }
        Poll::Pending
    })
    .await
}

/// The next heartbeat or stop, handing the receiver back so that the next
/// wait can be made in the same place.
async fn next_signal(
    mut signals: watch::Receiver<Signal>,
) -> (watch::Receiver<Signal>, Option<Signal>) {
    let received = match signals.changed().await {
        Ok(()) => Some(*signals.borrow_and_update()),
        Err(_) => None,
    };
    (signals, received)
}

/// The API's own answer to an expired token, as a feed error.
fn token_expired(id: Option<&Value>) -> Refusal {
    Refusal::from_api(&ApiError::from(TokenError::Expired), id)
}

fn subscribed(channel: Channel, seq: i64, id: Option<&Value>) -> String {
    let mut reply = json!({"type": "subscribed", "channel": channel.to_string(), "seq": seq});
    protocol::with_id(&mut reply, id);
    reply.to_string()
}

fn unavailable(error: &StoreError, id: Option<&Value>) -> Refusal {
    tracing::warn!(%error, "a subscription could not read the feed");
    Refusal::new(
        "unavailable",
        "storage is unavailable; subscribe again shortly",
        id.cloned(),
    )
}

/// A read error: an over-long message, or a broken connection.
fn classify(error: WsError) -> End {
    match error {
        WsError::Capacity(_) => End::TooBig,
        _ => End::Gone,
    }
}

/// Writes the concatenation of `parts`, longer than [`FRAGMENT`], as one
/// text message in fragments (RFC 6455, section 5.4), each written before
/// the next is made.
async fn send_fragments(socket: &mut Socket, parts: &[Utf8Bytes]) -> Result<(), WsError> {
    let mut fragments = fragments(parts, FRAGMENT).peekable();
    let mut opcode = OpCode::Data(Data::Text);
    while let Some(fragment) = fragments.next() {
        let last = fragments.peek().is_none();
        socket
            .send(Message::Frame(Frame::message(fragment, opcode, last)))
            .await?;
        opcode = OpCode::Data(Data::Continue);
    }
    Ok(())
}

/// `parts` cut into pieces of at most `size` bytes (at least 4), each from
/// one part and between characters, so that even a client that decodes
/// each frame on its own reads valid UTF-8; the bytes are not copied.
fn fragments(parts: &[Utf8Bytes], size: usize) -> impl Iterator<Item = Bytes> + '_ {
    parts.iter().flat_map(move |part| {
        let bytes = Bytes::from(part.clone());
        let mut start = 0;
        std::iter::from_fn(move || {
            if start == bytes.len() {
                return None;
            }
            let mut end = (start + size).min(bytes.len());
            // UTF-8 continuation bytes are 0b10xx_xxxx; a character is at
            // most four bytes, so this steps back at most three.
            while end < bytes.len() && bytes[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            let piece = bytes.slice(start..end);
            start = end;
            Some(piece)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(parts: &[&str], size: usize) -> Vec<String> {
        let parts: Vec<Utf8Bytes> = parts.iter().map(|part| Utf8Bytes::from(*part)).collect();
        fragments(&parts, size)
            .map(|piece| String::from_utf8(piece.to_vec()).expect("each piece is UTF-8"))
            .collect()
    }

    #[test]
    fn pieces_are_cut_between_characters_and_within_parts() {
        // "é" is two bytes, "€" three, "𝄞" four: every cut point of a
        // 5-byte piece falls inside one of them somewhere.
        let text = "aé€𝄞bé€𝄞c".repeat(7);
        for size in 4..=9 {
            let pieces = cut(&[&text], size);
            assert_eq!(pieces.concat(), text);
            assert!(
                pieces
                    .iter()
                    .all(|piece| !piece.is_empty() && piece.len() <= size)
            );
        }
        assert_eq!(cut(&["ab", "", "cdefg", "h"], 4), ["ab", "cdef", "g", "h"]);
        assert!(cut(&["", ""], 4).is_empty());
    }
}
