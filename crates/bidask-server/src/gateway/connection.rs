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
//!
//! What it follows, and how each subscription starts or resumes, is in
//! `subscriptions`; the cutting of long messages into frames in
//! `fragments`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};

mod fragments;
mod subscriptions;

use self::fragments::send_fragments;
use super::handshake::Socket;
use super::hub::{Peer, SharedFrame, Signal};
use super::protocol::{self, Command, MessageId, Refusal, Request};
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
/// Events written before the connection looks at its other work again.
const WRITE_BATCH: usize = 64;
/// Messages a connection writes before it adds them to the shared
/// counters (which it also does at each heartbeat and at the end).
const COUNT_BATCH: u64 = 64;
/// Heartbeats without a frame from the client before it is dropped.
const SILENT_BEATS: u32 = 3;
/// Messages refused for the rate count toward a close over this long: a
/// client refused more than a second's worth of messages in it is closed.
/// Counting in a window, not in a row, closes one that keeps sending at a
/// few times its rate, whose messages pass now and then.
const STRIKE_WINDOW: Duration = Duration::from_secs(5);
/// The least time a write of queued frames may wait on the client.
const MIN_STUCK: Duration = Duration::from_secs(1);
/// The least time a reply (a subscription's snapshot or replay, read from
/// the database and written) may go without writing a message.
const MIN_REPLY_STUCK: Duration = Duration::from_secs(60);
/// Pings whose pongs are still taken as answers (see `Connection::pinged`).
const PINGS_AWAITED: usize = 4;
/// How long a closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Close codes.
mod code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const NOT_UTF8: u16 = 1007;
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
    /// It broke the framing rules (RFC 6455): a stray continuation, a
    /// control frame too long or fragmented, a malformed close.
    Protocol,
    /// It sent text (or a close reason) that is not UTF-8.
    NotUtf8,
    /// Events it was owed were pruned while they were being replayed to
    /// it, after its `subscribed` had promised them.
    Pruned,
    /// Events it was owed could not be read from the database after its
    /// `subscribed` had promised them: a refusal then would leave a hole
    /// between the events it had and the live ones, so it is closed, to
    /// resume with `since_seq`.
    Unreadable,
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
    /// The hub's key for this connection (joins, leaves, signals), and
    /// the `connection_id` the client is welcomed with.
    id: u64,
    /// The store and the replicas, for snapshots and replays.
    state: AppState,
    /// Shared with every connection: the hub, the settings and the
    /// places for database reads.
    gateway: Arc<Gateway>,
    /// Who authenticated, if anyone: it decides which `user:` channel may
    /// be followed, and its token's expiry ends that channel.
    user: Option<Identity>,
    /// At most `BIDASK_WS_MAX_SUBSCRIPTIONS` (64 by default), and most
    /// clients follow one or two channels: a vector searched in order
    /// costs less than a map at these sizes.
    subscriptions: Vec<Subscription>,
    /// Given to the hub when a channel is joined: the hub pushes events
    /// here and marks the connection slow when it is full.
    outbox_sender: mpsc::Sender<SharedFrame>,
    /// Bounded, so one client that does not read holds at most this many
    /// events of the server's memory.
    outbox: mpsc::Receiver<SharedFrame>,
    /// What the hub knows of this connection (its slow mark) and how many
    /// messages it has written, shared so that a write blocked on the
    /// socket can race them.
    peer: Arc<Peer>,
    /// `None` when the message rate is off (`BIDASK_WS_MESSAGES_PER_SEC=0`).
    limiter: Option<DefaultDirectRateLimiter>,
    /// Messages refused for the rate since `strikes_since`: more than a
    /// second's worth in the window closes the connection, so a client
    /// that ignores `rate_limited` is not answered forever.
    strikes: u32,
    /// When the current strike window began.
    strikes_since: Option<tokio::time::Instant>,
    /// Heartbeats since the client last sent anything: a peer that
    /// vanished without a close would otherwise hold its slot forever.
    silent_beats: u32,
    /// The user channel's `seq` last recorded as delivered.
    marked: i64,
    /// The user channel's `seq` the client is known to have read: it
    /// answered a ping written after it (see [`Connection::beat`]).
    acked: i64,
    /// The last few pings whose pongs have not come, oldest first (free
    /// slots are `None`), each as the `seq` it carried, or `None` for an
    /// empty one. Only such a pong counts: it records how far the client
    /// read (one record a heartbeat at most), and is free of the message
    /// rate. Any other pong is a message like the rest, since a client can
    /// send them as fast as any. A few, not one: a client on a slow link
    /// may answer a ping after the next one went out. Kept in place, not
    /// on the heap: every idle connection has them.
    pinged: [Option<Option<i64>>; PINGS_AWAITED],
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
            strikes_since: None,
            silent_beats: 0,
            marked: 0,
            acked: 0,
            pinged: [None; PINGS_AWAITED],
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
            if self.unsent_count >= COUNT_BATCH {
                self.count_sent();
            }
        }
        Ok(())
    }

    /// Feeds event `seq` of `channel` to the socket if the client is owed
    /// it; false for one it already has or no longer wants. The channel's
    /// mark moves only once the socket took the event: a close that cuts
    /// into a blocked write names only what was handed over.
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
        // Live or replayed by a resume, it is a message sent.
        self.wrote();
        Ok(true)
    }

    /// A heartbeat with every subscription's `seq`, and a ping; drops a
    /// client that has been silent for too long.
    ///
    /// The ping carries the user channel's last written `seq`. Bytes the
    /// kernel took may still never be read (a phone that lost its
    /// network), but a pong means the client read everything before the
    /// ping, so its `seq` is what gets recorded as delivered.
    async fn beat(&mut self, socket: &mut Socket) -> Result<(), End> {
        self.silent_beats += 1;
        if self.silent_beats > SILENT_BEATS {
            return Err(End::Silent);
        }
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
        let written = self.own_written();
        self.pinged.rotate_left(1);
        self.pinged[PINGS_AWAITED - 1] = Some(written);
        let payload =
            written.map_or_else(Bytes::new, |seq| Bytes::copy_from_slice(&seq.to_be_bytes()));
        socket.feed(Message::Ping(payload)).await?;
        socket.flush().await?;
        self.wrote();
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
        match &message {
            Message::Pong(payload) => {
                if self.acknowledged(payload) {
                    return Ok(());
                }
            }
            Message::Close(_) => return Err(End::Closed),
            // Every other frame counts toward the rate: text, binary
            // (answered with an error) and pings (answered with a pong by
            // tungstenite), like the pongs of no ping awaited, above.
            Message::Text(_) | Message::Binary(_) | Message::Ping(_) => {}
            // Reading yields whole messages, never raw frames.
            Message::Frame(_) => return Ok(()),
        }
        if let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            let now = tokio::time::Instant::now();
            if self
                .strikes_since
                .is_none_or(|since| now.duration_since(since) > STRIKE_WINDOW)
            {
                self.strikes = 0;
                self.strikes_since = Some(now);
            }
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
                let pong = protocol::with_id(&json!({"type": "pong"}), id.as_ref());
                return self.send(socket, pong).await;
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
        id: Option<&MessageId>,
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
        let reply = json!({"type": "authenticated", "user": identity.to_json()});
        if let Err(end) = self.send(socket, protocol::with_id(&reply, id)).await {
            return Ok(Err(end));
        }
        Ok(self.join_own_channel(socket, id).await)
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
        self.wrote();
        Ok(())
    }

    /// Counts a message written: for the shared counters, and for
    /// [`race`] to see that the connection is getting on.
    fn wrote(&mut self) {
        self.unsent_count += 1;
        self.peer.wrote();
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

    /// Leaves every channel and closes with the code that says why.
    async fn finish(mut self, socket: &mut Socket, end: End) {
        // What the client read was recorded at its pongs; a close says
        // nothing of it (a browser drops what arrives once it is closing).
        self.count_sent();
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
            End::Protocol => Some((code::PROTOCOL, "protocol error".to_owned())),
            End::NotUtf8 => Some((code::NOT_UTF8, "text that is not UTF-8".to_owned())),
            // A reconnect that resumes with `since_seq` gets a reset.
            End::Pruned => Some((
                code::INTERNAL,
                "events were pruned; resubscribe with since_seq".to_owned(),
            )),
            End::Unreadable => Some((
                code::INTERNAL,
                "the feed could not be read; resubscribe with since_seq".to_owned(),
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

    /// The last `seq` written on the user's own channel, if it follows it.
    fn own_written(&self) -> Option<i64> {
        let user = self.user.as_ref()?;
        self.written()
            .find(|(channel, _)| *channel == Channel::User(user.id))
            .map(|(_, seq)| seq)
    }

    /// Whether `payload` answers a ping awaited, which then says the
    /// client read the user channel up to the `seq` it carried. The pings
    /// before it are answered by it too.
    fn acknowledged(&mut self, payload: &[u8]) -> bool {
        let carried = match <[u8; 8]>::try_from(payload) {
            Ok(bytes) => Some(i64::from_be_bytes(bytes)),
            Err(_) if payload.is_empty() => None,
            Err(_) => return false,
        };
        let Some(answered) = self.pinged.iter().position(|sent| *sent == Some(carried)) else {
            return false;
        };
        self.pinged[..=answered].fill(None);
        let Some(seq) = carried else {
            return true;
        };
        // Never past what is written now: the channel may have been left
        // and joined again since the ping.
        if self.own_written().is_some_and(|written| seq <= written) {
            self.acked = self.acked.max(seq);
            self.record_delivery();
        }
        true
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

/// Runs `work` unless the connection is marked slow first, or `work`
/// goes `stuck_after` without finishing or writing a message. Most writes
/// finish at once; only one that waits (on the client, or for a reply on
/// the database) also waits on the slow mark (registering with it costs a
/// lock) and on the clock. A reply that keeps writing (a long replay to a
/// client that reads) is not stuck, however long it takes.
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
    let mut written = peer.written();
    std::future::poll_fn(|context| {
        if let Poll::Ready(outcome) = work.as_mut().poll(context) {
            return Poll::Ready(outcome);
        }
        if slowed.as_mut().poll(context).is_ready() {
            return Poll::Ready(Err(End::Slow));
        }
        while stuck.as_mut().poll(context).is_ready() {
            let now = peer.written();
            if now == written {
                return Poll::Ready(Err(End::Stuck));
            }
            written = now;
            stuck
                .as_mut()
                .reset(tokio::time::Instant::now() + stuck_after);
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
fn token_expired(id: Option<&MessageId>) -> Refusal {
    Refusal::from_api(&ApiError::from(TokenError::Expired), id)
}

/// A read error: an over-long message, a broken rule of the protocol
/// (answered with its close code, RFC 6455 section 7.1.7), or a broken
/// connection.
fn classify(error: WsError) -> End {
    match error {
        WsError::Capacity(_) => End::TooBig,
        WsError::Utf8(_) => End::NotUtf8,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        WsError::Protocol(_) => End::Protocol,
        _ => End::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long reply to a client that reads (a replay of many pages) goes
    /// on past the bound as long as it writes; one that writes nothing
    /// for that long is stuck.
    #[tokio::test]
    async fn a_reply_is_stuck_only_when_it_stops_writing() {
        let peer = Peer::default();
        let stuck_after = Duration::from_millis(100);
        let writing = async {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                peer.wrote();
            }
            Ok(())
        };
        let started = std::time::Instant::now();
        assert!(matches!(race(&peer, stuck_after, writing).await, Ok(())));
        assert!(started.elapsed() >= Duration::from_millis(400));

        let stalled = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let started = std::time::Instant::now();
        assert!(matches!(
            race(&peer, stuck_after, stalled).await,
            Err(End::Stuck)
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
