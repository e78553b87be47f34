//! The hub between the writer and the connections: per channel, the last
//! published `seq`, a window of recent events for resumes, and the
//! connections subscribed to it.
//!
//! The writer hands each commit's events to [`Hub::publish`], which only
//! queues them; one fan-out thread moves them into every subscriber's bounded
//! outbox with `try_send`. A full outbox marks its connection slow (it is
//! closed with 4008) and drops it from the channel, so neither the writer
//! nor any other connection ever waits for a slow reader.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::bus::{Bus, Published};
use crate::feed::Channel;

/// One committed event as every subscriber receives it: serialized once,
/// shared by reference.
#[derive(Debug)]
pub struct Frame {
    /// Its channel: a connection writes only the frames of channels it
    /// follows, since one outbox serves all of them.
    pub channel: Channel,
    /// Its `seq` on that channel, which a subscription compares with the
    /// last it wrote to drop what a snapshot or replay already gave.
    pub seq: i64,
    /// The JSON text, made once for every subscriber, so a fan-out to
    /// thousands of connections serializes nothing.
    pub text: Utf8Bytes,
}

/// What an outbox holds: a pointer, so a slot costs 8 bytes however large
/// the event.
pub type SharedFrame = Arc<Frame>;

/// The hub's side of one connection.
#[derive(Debug, Default)]
pub struct Peer {
    slow: AtomicBool,
    wake: Notify,
    /// Messages the connection has written, counted as each goes: a
    /// long reply that keeps writing is not stuck, however long it takes.
    written: AtomicU64,
}

impl Peer {
    /// Counts one more message written.
    pub fn wrote(&self) {
        self.written.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Whether the connection fell too far behind.
    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }

    /// Resolves once the connection has been marked slow.
    pub async fn slowed(&self) {
        while !self.is_slow() {
            self.wake.notified().await;
        }
    }

    fn mark_slow(&self) {
        self.slow.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// How many recent events each kind of channel keeps for resumes, and for
/// how long; older ones are read back from the database.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// `product:{id}` channels.
    pub product: usize,
    /// `user:{id}` channels: many of them, each quiet, so few.
    pub user: usize,
    /// The `products` channel.
    pub products: usize,
    /// How long an event stays in a window. A window is for the client
    /// that lost its connection a moment ago; without an age, every
    /// product that ever traded 1,024 events would hold them (by estimate,
    /// some 300 KB) for as long as the process runs, and a large catalog
    /// would grow the server by gigabytes.
    pub age: Duration,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            product: 1_024,
            user: 16,
            products: 256,
            age: Duration::from_secs(60),
        }
    }
}

impl Windows {
    fn of(&self, channel: Channel) -> usize {
        match channel {
            Channel::Product(_) => self.product,
            Channel::User(_) => self.user,
            Channel::Products => self.products,
        }
    }
}

struct Subscriber {
    outbox: mpsc::Sender<SharedFrame>,
    peer: Arc<Peer>,
}

#[derive(Default)]
struct ChannelState {
    /// The last `seq` fanned out since the process started (0: none yet).
    seq: i64,
    /// The window, with when each event arrived.
    recent: VecDeque<(Instant, SharedFrame)>,
    /// By connection id: joining and leaving a channel of 10,000
    /// subscribers stays O(1).
    subscribers: HashMap<u64, Subscriber>,
}

/// A connection's place on a channel, as the hub saw it when it joined.
#[derive(Debug)]
pub struct Joined {
    /// The last `seq` fanned out on the channel (0 if none since start);
    /// every later event reaches the connection's outbox.
    pub seq: i64,
    /// With a resume point the window covers: the events after it, up to
    /// `seq`. `None` when the window does not reach back that far.
    pub backlog: Option<Vec<SharedFrame>>,
}

/// What `/realtime/stats` reports, as counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Open WebSocket connections.
    pub connections: AtomicUsize,
    /// Subscriptions across connections.
    pub subscriptions: AtomicUsize,
    /// Events the hub received from the writer.
    pub events_published: AtomicU64,
    /// Messages written to clients (events, replies, heartbeats).
    pub messages_sent: AtomicU64,
    /// Connections closed with 4008.
    pub slow_disconnects: AtomicU64,
    /// Connections dropped for not answering pings.
    pub ping_timeouts: AtomicU64,
    /// Upgrades refused because the server held its maximum.
    pub refused_connections: AtomicU64,
    /// `since_seq` resumes served from the in-memory window.
    pub resumes_from_window: AtomicU64,
    /// `since_seq` resumes that read the feed from the database.
    pub resumes_from_database: AtomicU64,
    /// `since_seq` resumes answered with a `reset` snapshot.
    pub resets: AtomicU64,
}

/// Connections beat in this many groups, one group per tick of the hub's
/// clock: 10,000 heartbeats written at once would hold up every event
/// behind them for as long as those writes take.
const BEAT_GROUPS: usize = 16;

/// How long a reading of the deepest outbox is reused.
const LAG_READING: Duration = Duration::from_secs(1);

/// A heartbeat tick or the order to close: what every connection watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signal {
    /// Counts heartbeats.
    pub beat: u64,
    /// The server is shutting down: close with 1001.
    pub stopping: bool,
}

/// See the module docs.
pub struct Hub {
    channels: Mutex<HashMap<Channel, ChannelState>>,
    inbox: mpsc::UnboundedSender<Vec<Published>>,
    windows: Windows,
    /// One per group of connections (see [`BEAT_GROUPS`]).
    signals: Vec<watch::Sender<Signal>>,
    next_connection: AtomicU64,
    /// The counters of `/realtime/stats`.
    pub counters: Counters,
    /// The last [`Hub::max_lag`] reading and when it was taken.
    lag: Mutex<Option<(Instant, usize)>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Hub")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub, its fan-out thread and its heartbeat clock; both run until
    /// the hub is dropped. Fails only if the thread cannot be made.
    pub fn start(windows: Windows, heartbeat: Duration) -> std::io::Result<Arc<Self>> {
        let (inbox, events) = mpsc::unbounded_channel();
        let hub = Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            inbox,
            windows,
            signals: (0..BEAT_GROUPS)
                .map(|_| watch::Sender::new(Signal::default()))
                .collect(),
            next_connection: AtomicU64::new(1),
            counters: Counters::default(),
            lag: Mutex::new(None),
        });
        let weak = Arc::downgrade(&hub);
        std::thread::Builder::new()
            .name("bidask-fanout".to_owned())
            .spawn(move || fan_out(weak, events))?;
        tokio::spawn(beat(Arc::downgrade(&hub), heartbeat));
        Ok(hub)
    }

    /// A new connection's id.
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Heartbeats and shutdown, for connection `connection` to watch.
    pub fn signals(&self, connection: u64) -> watch::Receiver<Signal> {
        let mut signals = self.signals[connection as usize % BEAT_GROUPS].subscribe();
        // A new receiver counts the value it starts with as seen, so a
        // connection that opens during the drain would not hear the stop.
        if signals.borrow().stopping {
            signals.mark_changed();
        }
        signals
    }

    /// Tells one group of connections to send their heartbeats.
    fn beat(&self, group: usize) {
        self.signals[group % BEAT_GROUPS].send_modify(|signal| signal.beat += 1);
    }

    /// Tells every connection to close with 1001.
    pub fn stop(&self) {
        for signal in &self.signals {
            signal.send_modify(|signal| signal.stopping = true);
        }
    }

    /// Adds a connection to `channel`. With `since`, the events after it
    /// that the window still holds come back as the backlog.
    pub fn join(
        &self,
        channel: Channel,
        connection: u64,
        outbox: &mpsc::Sender<SharedFrame>,
        peer: &Arc<Peer>,
        since: Option<i64>,
    ) -> Joined {
        let mut channels = self.lock();
        let state = channels.entry(channel).or_default();
        state.subscribers.insert(
            connection,
            Subscriber {
                outbox: outbox.clone(),
                peer: Arc::clone(peer),
            },
        );
        let backlog = since.and_then(|since| {
            let first = state
                .recent
                .front()
                .map_or(state.seq + 1, |(_, frame)| frame.seq);
            (state.seq > 0 && first - 1 <= since && since <= state.seq).then(|| {
                state
                    .recent
                    .iter()
                    .filter(|(_, frame)| frame.seq > since)
                    .map(|(_, frame)| Arc::clone(frame))
                    .collect()
            })
        });
        Joined {
            seq: state.seq,
            backlog,
        }
    }

    /// Removes a connection from `channel`.
    pub fn leave(&self, channel: Channel, connection: u64) {
        let mut channels = self.lock();
        if let Some(state) = channels.get_mut(&channel) {
            state.subscribers.remove(&connection);
            if state.subscribers.is_empty() && matches!(channel, Channel::User(_)) {
                channels.remove(&channel);
            }
        }
    }

    /// How long an event stays in a window.
    pub fn window_age(&self) -> Duration {
        self.windows.age
    }

    /// Lets go of the events that arrived in their window before
    /// `cutoff`, and of the room they took. A channel keeps its `seq`: a
    /// subscriber's snapshot must be current to at least it.
    ///
    /// Walks every channel under the lock the fan-out needs, once every
    /// quarter of the age (not timed; a check of one front per channel).
    pub fn forget_before(&self, cutoff: Instant) {
        for state in self.lock().values_mut() {
            let before = state.recent.len();
            while state
                .recent
                .front()
                .is_some_and(|(arrived, _)| *arrived < cutoff)
            {
                state.recent.pop_front();
            }
            if state.recent.len() < before && state.recent.len() * 4 <= state.recent.capacity() {
                state.recent.shrink_to(state.recent.len() * 2);
            }
        }
    }

    /// The deepest outbox across connections: how far the slowest reader
    /// is behind, in messages.
    ///
    /// Finding it walks every subscriber under the lock the fan-out needs,
    /// and anyone may poll `/realtime/stats`: a reading is reused for up
    /// to `LAG_READING`, and concurrent callers wait for one walk.
    pub fn max_lag(&self) -> usize {
        let mut last = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, lag)) = *last
            && at.elapsed() < LAG_READING
        {
            return lag;
        }
        let lag = self.walk_lag();
        *last = Some((Instant::now(), lag));
        lag
    }

    fn walk_lag(&self) -> usize {
        self.lock()
            .values()
            .flat_map(|state| state.subscribers.values())
            .map(|subscriber| subscriber.outbox.max_capacity() - subscriber.outbox.capacity())
            .max()
            .unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Channel, ChannelState>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, channels: &mut HashMap<Channel, ChannelState>, event: Published) {
        // Users are many and each is mostly offline: a user channel is kept
        // only while someone listens (a resume reads the database), so the
        // hub does not grow with every trader who ever traded.
        if matches!(event.channel, Channel::User(_)) && !channels.contains_key(&event.channel) {
            return;
        }
        let window = self.windows.of(event.channel);
        let state = channels.entry(event.channel).or_default();
        let frame = Arc::new(Frame {
            channel: event.channel,
            seq: event.seq,
            text: Utf8Bytes::from(event.message),
        });
        state.seq = event.seq;
        if state.recent.len() == window {
            state.recent.pop_front();
        }
        if window > 0 {
            state.recent.push_back((Instant::now(), Arc::clone(&frame)));
        }
        state.subscribers.retain(|_, subscriber| {
            match subscriber.outbox.try_send(Arc::clone(&frame)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.peer.mark_slow();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

impl Bus for Hub {
    fn publish(&self, events: Vec<Published>) {
        if events.is_empty() {
            return;
        }
        // Only fails once the fan-out thread is gone, that is at shutdown.
        let _ = self.inbox.send(events);
    }
}

/// One clock for every connection's heartbeat, rather than a timer each:
/// each tick wakes the next group, so every connection beats once per
/// `every`.
async fn beat(hub: std::sync::Weak<Hub>, every: Duration) {
    let groups = u32::try_from(BEAT_GROUPS).unwrap_or(u32::MAX);
    let mut ticks = tokio::time::interval(every / groups);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    for group in (0..BEAT_GROUPS).cycle() {
        ticks.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        hub.beat(group);
    }
}

/// Most events the fan-out thread delivers per hold of the hub's lock.
const BATCH: usize = 256;

/// Moves queued events into the outboxes, a batch per lock, on a thread
/// of its own: as a task it would wait its turn behind every connection
/// task woken by the previous event, thousands of them, before the next
/// event even began to go out.
fn fan_out(hub: std::sync::Weak<Hub>, mut commits: mpsc::UnboundedReceiver<Vec<Published>>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = commits.blocking_recv() {
        batch.extend(first);
        while batch.len() < BATCH {
            match commits.try_recv() {
                Ok(events) => batch.extend(events),
                Err(_) => break,
            }
        }
        // What is still waiting, unbounded since the writer must never
        // wait on subscribers: shown, so that a fan-out that falls behind
        // (thousands of subscribers on a busy product) can be seen.
        metrics::gauge!("bidask_ws_fanout_backlog").set(commits.len() as f64);
        let Some(hub) = hub.upgrade() else { return };
        let count = batch.len() as u64;
        // One commit's list can be long (a read-back publishes pages of
        // a thousand): the lock is let go every BATCH events so joins and
        // leaves are not held up behind all of it.
        let mut events = batch.drain(..).peekable();
        while events.peek().is_some() {
            let mut channels = hub.lock();
            for event in events.by_ref().take(BATCH) {
                hub.deliver(&mut channels, event);
            }
        }
        hub.counters
            .events_published
            .fetch_add(count, Ordering::Relaxed);
        metrics::counter!("bidask_ws_events_fanned_out_total").increment(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(channel: Channel, seq: i64) -> Published {
        Published {
            channel,
            seq,
            message: format!("{{\"seq\":{seq}}}"),
        }
    }

    /// Waits until the fan-out thread has handled everything published
    /// so far: a marker event on a channel of its own has arrived.
    async fn settle(hub: &Hub) {
        static MARKS: AtomicU64 = AtomicU64::new(1);
        let seq = i64::try_from(MARKS.fetch_add(1, Ordering::Relaxed)).unwrap_or(i64::MAX);
        hub.publish(vec![event(Channel::Product(999), seq)]);
        for _ in 0..5_000 {
            if hub
                .lock()
                .get(&Channel::Product(999))
                .is_some_and(|state| state.seq >= seq)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the fan-out thread did not catch up");
    }

    #[tokio::test]
    async fn a_connection_that_opens_after_the_stop_hears_it() {
        // No heartbeat during the test: it would wake the receiver anyway.
        let hub = Hub::start(Windows::default(), Duration::from_secs(3600)).expect("a hub");
        hub.stop();
        let mut signals = hub.signals(hub.connection_id());
        let changed = tokio::time::timeout(Duration::from_secs(1), signals.changed()).await;
        assert!(matches!(changed, Ok(Ok(()))), "the stop was not heard");
        assert!(signals.borrow_and_update().stopping);
    }

    #[tokio::test]
    async fn subscribers_get_their_channel_only_in_order() {
        let hub = Hub::start(Windows::default(), Duration::from_secs(5)).expect("a hub");
        let (outbox, mut frames) = mpsc::channel(16);
        let peer = Arc::new(Peer::default());
        hub.join(Channel::Product(1), 1, &outbox, &peer, None);
        // One commit's events come as one list, and a list may hold
        // several channels' events.
        for seq in 1..=3 {
            hub.publish(vec![
                event(Channel::Product(1), seq),
                event(Channel::Product(2), seq),
            ]);
        }
        settle(&hub).await;
        for seq in 1..=3 {
            let frame = frames.recv().await.expect("a frame");
            assert_eq!((frame.channel, frame.seq), (Channel::Product(1), seq));
        }
        assert!(frames.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_list_longer_than_one_lock_hold_arrives_whole_and_in_order() {
        // Over two lock holds and a part, through a window shorter than
        // the list.
        let events = i64::try_from(2 * BATCH + 88).expect("a small count");
        let windows = Windows {
            product: usize::try_from(events / 2).expect("a small count"),
            ..Windows::default()
        };
        let hub = Hub::start(windows, Duration::from_secs(5)).expect("a hub");
        let (outbox, mut frames) = mpsc::channel(2 * BATCH + 100);
        let peer = Arc::new(Peer::default());
        hub.join(Channel::Product(1), 1, &outbox, &peer, None);
        hub.publish(
            (1..=events)
                .map(|seq| event(Channel::Product(1), seq))
                .collect(),
        );
        settle(&hub).await;
        // Settled: everything is in the outbox already.
        for seq in 1..=events {
            let frame = frames.try_recv().expect("a frame");
            assert_eq!(frame.seq, seq);
        }
        assert!(frames.try_recv().is_err());
        // The window kept the newest, whole: a resume from just before its
        // oldest gets all of it, and one from further back gets nothing.
        let oldest = events - events / 2 + 1;
        let joined = hub.join(Channel::Product(1), 2, &outbox, &peer, Some(oldest - 1));
        let backlog: Vec<i64> = joined
            .backlog
            .expect("the window reaches back to its oldest")
            .iter()
            .map(|frame| frame.seq)
            .collect();
        assert_eq!(backlog, (oldest..=events).collect::<Vec<_>>());
        let joined = hub.join(Channel::Product(1), 3, &outbox, &peer, Some(oldest - 2));
        assert!(joined.backlog.is_none());
    }

    #[tokio::test]
    async fn the_deepest_outbox_is_read_at_most_once_a_second() {
        let hub = Hub::start(Windows::default(), Duration::from_secs(5)).expect("a hub");
        let (outbox, mut frames) = mpsc::channel(8);
        let peer = Arc::new(Peer::default());
        hub.join(Channel::Product(1), 1, &outbox, &peer, None);
        hub.publish(vec![
            event(Channel::Product(1), 1),
            event(Channel::Product(1), 2),
        ]);
        for _ in 0..1_000 {
            if frames.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(hub.max_lag(), 2);
        while frames.try_recv().is_ok() {}
        assert_eq!(hub.max_lag(), 2, "the reading of a moment ago");
        tokio::time::sleep(LAG_READING + Duration::from_millis(50)).await;
        assert_eq!(hub.max_lag(), 0, "a fresh reading");
    }

    #[tokio::test]
    async fn a_full_outbox_marks_the_connection_slow_and_drops_it() {
        let hub = Hub::start(Windows::default(), Duration::from_secs(5)).expect("a hub");
        let (outbox, _frames) = mpsc::channel(2);
        let peer = Arc::new(Peer::default());
        hub.join(Channel::Product(1), 1, &outbox, &peer, None);
        for seq in 1..=3 {
            hub.publish(vec![event(Channel::Product(1), seq)]);
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), peer.slowed())
            .await
            .expect("marked slow");
        assert_eq!(hub.max_lag(), 0, "a slow connection leaves the channel");
    }

    #[tokio::test]
    async fn every_group_beats_and_all_hear_the_stop() {
        let hub = Hub::start(Windows::default(), Duration::from_millis(160)).expect("a hub");
        let mut receivers: Vec<_> = (0..BEAT_GROUPS as u64).map(|id| hub.signals(id)).collect();
        for receiver in &mut receivers {
            tokio::time::timeout(Duration::from_secs(10), receiver.changed())
                .await
                .expect("every group beats")
                .expect("the hub is alive");
            assert!(!receiver.borrow_and_update().stopping);
        }
        hub.stop();
        for receiver in &mut receivers {
            assert!(receiver.borrow_and_update().stopping);
        }
    }

    #[tokio::test]
    async fn user_channels_are_kept_only_while_someone_listens() {
        let hub = Hub::start(Windows::default(), Duration::from_secs(5)).expect("a hub");
        hub.publish(vec![event(Channel::User(7), 1)]);
        settle(&hub).await;
        assert!(
            !hub.lock().contains_key(&Channel::User(7)),
            "nobody listens to user:7"
        );
        let (outbox, mut frames) = mpsc::channel(16);
        let peer = Arc::new(Peer::default());
        hub.join(Channel::User(7), 1, &outbox, &peer, None);
        hub.publish(vec![event(Channel::User(7), 2)]);
        settle(&hub).await;
        assert_eq!(frames.recv().await.map(|frame| frame.seq), Some(2));
        hub.leave(Channel::User(7), 1);
        assert!(
            !hub.lock().contains_key(&Channel::User(7)),
            "its last listener left"
        );
    }

    #[tokio::test]
    async fn events_leave_the_window_with_age_and_their_room_with_them() {
        let hub = Hub::start(Windows::default(), Duration::from_secs(5)).expect("a hub");
        hub.publish(
            (1..=600)
                .map(|seq| event(Channel::Product(1), seq))
                .collect(),
        );
        settle(&hub).await;
        // One event later than the rest, so that a moment falls between.
        tokio::time::sleep(Duration::from_millis(5)).await;
        hub.publish(vec![event(Channel::Product(1), 601)]);
        settle(&hub).await;
        let (outbox, _frames) = mpsc::channel(16);
        let peer = Arc::new(Peer::default());
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(0));
        assert_eq!(joined.backlog.map(|backlog| backlog.len()), Some(601));
        let recent = |hub: &Hub| {
            let channels = hub.lock();
            let state = channels.get(&Channel::Product(1)).expect("the channel");
            (state.recent.len(), state.recent.capacity())
        };
        let arrived = |hub: &Hub, index: usize| {
            let channels = hub.lock();
            let state = channels.get(&Channel::Product(1)).expect("the channel");
            state.recent[index].0
        };
        let (first, last_old, young) = (arrived(&hub, 0), arrived(&hub, 599), arrived(&hub, 600));
        assert!(last_old < young);

        hub.forget_before(first);
        assert_eq!(
            recent(&hub).0,
            601,
            "arrived at the cutoff is not before it"
        );
        // The cutoff once the 600 are old and the last one is not yet.
        hub.forget_before(young - Duration::from_nanos(1));
        let (kept, room) = recent(&hub);
        assert_eq!(kept, 1);
        assert!(room < 8, "the room of 601 was kept: {room}");
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(0));
        assert!(joined.backlog.is_none(), "the database serves that resume");
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(600));
        let seqs: Vec<i64> = joined
            .backlog
            .expect("the young event is still there")
            .iter()
            .map(|frame| frame.seq)
            .collect();
        assert_eq!((joined.seq, seqs), (601, vec![601]));

        // Once all have aged, the channel still knows its `seq`.
        hub.forget_before(young + Duration::from_nanos(1));
        assert_eq!(recent(&hub), (0, 0));
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(601));
        let backlog = joined.backlog.map(|backlog| backlog.len());
        assert_eq!((joined.seq, backlog), (601, Some(0)));
    }

    #[tokio::test]
    async fn the_window_serves_a_resume_it_covers_and_only_that() {
        let windows = Windows {
            product: 4,
            ..Windows::default()
        };
        let hub = Hub::start(windows, Duration::from_secs(5)).expect("a hub");
        for seq in 1..=6 {
            hub.publish(vec![event(Channel::Product(1), seq)]);
        }
        settle(&hub).await;
        let (outbox, _frames) = mpsc::channel(16);
        let peer = Arc::new(Peer::default());
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(3));
        let seqs: Vec<i64> = joined
            .backlog
            .expect("covered")
            .iter()
            .map(|frame| frame.seq)
            .collect();
        assert_eq!((joined.seq, seqs), (6, vec![4, 5, 6]));
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(1));
        assert!(joined.backlog.is_none(), "seq 2 has left the window");
        let joined = hub.join(Channel::Product(1), 1, &outbox, &peer, Some(9));
        assert!(joined.backlog.is_none(), "a resume from the future");
    }
}
