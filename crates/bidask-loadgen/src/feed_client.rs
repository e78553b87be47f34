//! One subscriber of the `fanout` scenario: a single task that opens a
//! WebSocket from its own loopback source address, subscribes to the
//! product channel, and then reads until told to stop, timing every event
//! against the `ts` the server stamped on it.
//!
//! Per message it reads the frame (tungstenite answers pings on its own
//! while reading), finds `seq` and `ts` in place ([`crate::feed_message`]),
//! and records into its shard of the shared [`Delivery`]; the rest of what
//! it sees (heartbeats, gaps, how it ended) stays in its own [`ClientTally`],
//! returned when the task ends. Nothing is allocated per message.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use crate::clock;
use crate::delivery::Delivery;
use crate::feed_message::{self, FeedMessage};

/// The close code of a subscriber that fell too far behind (API.md).
pub const SLOW_CONSUMER: u16 = 4008;

/// Bytes read from the socket at a time: events are a few hundred bytes,
/// and tungstenite's default of 128 KiB per connection would cost 2.4 GB
/// at 19,000 connections.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Where and how every client connects; one value shared by all of them.
#[derive(Debug)]
pub struct FeedTarget {
    /// The server's address.
    pub server: SocketAddr,
    /// `ws://host:port/ws`, for the handshake.
    pub url: String,
    /// The `subscribe` message, serialized once.
    pub subscribe: Utf8Bytes,
    /// Bound on each setup step (connect, upgrade, subscribe).
    pub timeout: Duration,
}

/// Why a client never got subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupFailure {
    /// The TCP connection failed (refused, no port left, …).
    Connect,
    /// The upgrade was answered with this HTTP status (503 at capacity).
    Refused(u16),
    /// The WebSocket handshake failed otherwise.
    Handshake,
    /// The server answered the subscription with an error.
    Rejected,
    /// The connection ended before the subscription was confirmed.
    Closed,
    /// Setup took longer than the timeout.
    Timeout,
}

/// How a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// Never subscribed; see its [`SetupFailure`].
    #[default]
    NotSubscribed,
    /// Held until the run stopped it: the expected ending.
    Stopped,
    /// The server closed it with this code (4008: a slow consumer).
    Closed(Option<u16>),
    /// The connection broke without a close frame.
    Broken,
}

/// What one client saw besides the events it recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTally {
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Events skipped over: the sum of every jump in `seq` past the next.
    pub missing: u64,
    /// Events whose `seq` was not above the last one seen.
    pub out_of_order: u64,
    /// Error messages received after subscribing.
    pub errors: u64,
    /// How the connection ended.
    pub ending: Ending,
}

/// A subscribed connection.
type Feed = WebSocketStream<TcpStream>;

impl SetupFailure {
    /// The key it is counted under in the report.
    pub fn key(self) -> String {
        match self {
            Self::Connect => "connect".to_owned(),
            Self::Refused(status) => format!("http_{status}"),
            Self::Handshake => "handshake".to_owned(),
            Self::Rejected => "subscribe_error".to_owned(),
            Self::Closed => "closed_during_setup".to_owned(),
            Self::Timeout => "setup_timeout".to_owned(),
        }
    }
}

/// Runs client `index`: connects from `source` (when given) once a setup
/// permit is free, reports the setup's outcome on `setup`, then reads
/// until `stop` turns true or the connection ends.
pub async fn run(
    index: usize,
    source: Option<IpAddr>,
    target: Arc<FeedTarget>,
    delivery: Arc<Delivery>,
    permits: Arc<Semaphore>,
    setup: mpsc::UnboundedSender<Result<(), SetupFailure>>,
    mut stop: watch::Receiver<bool>,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let (mut feed, subscribed_seq) = match open_bounded(source, &target, &permits, None).await {
        Ok(opened) => opened,
        Err(failure) => {
            let _ = setup.send(Err(failure));
            return tally;
        }
    };
    delivery.held.fetch_add(1, Ordering::Relaxed);
    let _ = setup.send(Ok(()));
    drop(setup);

    let mut last_seq = subscribed_seq;
    // One wait for the stop, made once: a `changed()` made per frame
    // registered and dropped a waiter on every message.
    let stopped = stopped(&mut stop);
    tokio::pin!(stopped);
    tally.ending = loop {
        let frame = tokio::select! {
            biased;
            () = &mut stopped => break Ending::Stopped,
            frame = feed.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let received = clock::now_micros();
                match feed_message::classify(text.as_str()) {
                    // A repeat is not a second delivery: counted, it
                    // would stand in for an event that never came.
                    FeedMessage::Event { seq, ts_micros } => {
                        if tally.check_seq(&mut last_seq, seq) {
                            delivery.record(index, ts_micros.map(|ts| received - ts));
                        }
                    }
                    FeedMessage::Heartbeat => tally.heartbeats += 1,
                    FeedMessage::Error => tally.errors += 1,
                    FeedMessage::Subscribed { .. } | FeedMessage::Other => {}
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break Ending::Closed(frame.map(|frame| u16::from(frame.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break Ending::Broken,
        }
    };
    if tally.ending != Ending::Stopped {
        delivery.held.fetch_sub(1, Ordering::Relaxed);
        delivery.lost.fetch_add(1, Ordering::Relaxed);
    } else {
        // A polite close, bounded: the run is over, and a server that
        // takes its time to answer must not hold the report back.
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            feed.close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::from_static("load run over"),
            })),
        )
        .await;
    }
    tally
}

/// Returns once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // `wait_for` also looks at the value as it is now.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Bytes a stalled client asks the kernel to buffer for it (Linux doubles
/// the figure, to 8 KiB): small, so the server's queue for it fills after
/// a few hundred events instead of megabytes of them.
const STALLED_RECEIVE_BUFFER: u32 = 4 * 1024;

/// Runs a stalled client: connects and subscribes like [`run`], then reads
/// nothing until `stop` turns true, as a client that hung would. Then it
/// reads what the server left it, for at most `drain`, to learn how the
/// server ended the connection: a server that protects its other clients
/// has closed it with 4008 by then.
pub async fn run_stalled(
    source: Option<IpAddr>,
    target: Arc<FeedTarget>,
    permits: Arc<Semaphore>,
    setup: mpsc::UnboundedSender<Result<(), SetupFailure>>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> Ending {
    let receive_buffer = Some(STALLED_RECEIVE_BUFFER);
    let mut feed = match open_bounded(source, &target, &permits, receive_buffer).await {
        Ok((feed, _)) => feed,
        Err(failure) => {
            let _ = setup.send(Err(failure));
            return Ending::NotSubscribed;
        }
    };
    let _ = setup.send(Ok(()));
    drop(setup);
    stopped(&mut stop).await;
    let ending = async {
        loop {
            match feed.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return Ending::Closed(frame.map(|frame| u16::from(frame.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ending::Broken,
            }
        }
    };
    // Still open after the drain: the server never cut it off.
    tokio::time::timeout(drain, ending)
        .await
        .unwrap_or(Ending::Stopped)
}

impl ClientTally {
    /// Follows the channel's `seq`: counts events skipped and events that
    /// came out of order, and says whether this one is new (an event
    /// without a `seq` cannot be told apart, so it counts as new).
    fn check_seq(&mut self, last_seq: &mut Option<i64>, seq: Option<i64>) -> bool {
        let Some(seq) = seq else { return true };
        match *last_seq {
            Some(last) if seq <= last => {
                self.out_of_order += 1;
                false
            }
            Some(last) => {
                self.missing += u64::try_from(seq - last - 1).unwrap_or(0);
                *last_seq = Some(seq);
                true
            }
            None => {
                *last_seq = Some(seq);
                true
            }
        }
    }
}

/// [`open`] once a setup permit is free, within the target's timeout.
async fn open_bounded(
    source: Option<IpAddr>,
    target: &FeedTarget,
    permits: &Semaphore,
    receive_buffer: Option<u32>,
) -> Result<(Feed, Option<i64>), SetupFailure> {
    // The semaphore is never closed, so this only waits.
    let _permit = permits.acquire().await;
    tokio::time::timeout(target.timeout, open(source, target, receive_buffer))
        .await
        .unwrap_or(Err(SetupFailure::Timeout))
}

/// Connects, upgrades and subscribes; returns the feed and the `seq` the
/// subscription starts after.
async fn open(
    source: Option<IpAddr>,
    target: &FeedTarget,
    receive_buffer: Option<u32>,
) -> Result<(Feed, Option<i64>), SetupFailure> {
    let socket = match target.server {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|_| SetupFailure::Connect)?;
    if let Some(bytes) = receive_buffer {
        // Before connecting, so the window the kernel offers starts small.
        socket
            .set_recv_buffer_size(bytes)
            .map_err(|_| SetupFailure::Connect)?;
    }
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|_| SetupFailure::Connect)?;
    }
    let tcp = socket
        .connect(target.server)
        .await
        .map_err(|_| SetupFailure::Connect)?;
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let (mut feed, _) =
        tokio_tungstenite::client_async_with_config(target.url.as_str(), tcp, Some(config))
            .await
            .map_err(|error| match error {
                tungstenite::Error::Http(response) => {
                    SetupFailure::Refused(response.status().as_u16())
                }
                _ => SetupFailure::Handshake,
            })?;
    feed.send(Message::Text(target.subscribe.clone()))
        .await
        .map_err(|_| SetupFailure::Closed)?;
    loop {
        match feed.next().await {
            Some(Ok(Message::Text(text))) => match feed_message::classify(text.as_str()) {
                FeedMessage::Subscribed { seq } => return Ok((feed, seq)),
                FeedMessage::Error => return Err(SetupFailure::Rejected),
                _ => {}
            },
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(SetupFailure::Closed),
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_jumps_count_as_missing_and_repeats_as_out_of_order() {
        let mut tally = ClientTally::default();
        let mut last = Some(10);
        let new: Vec<bool> = [11, 12, 15, 14, 16, 16]
            .into_iter()
            .map(|seq| tally.check_seq(&mut last, Some(seq)))
            .collect();
        assert_eq!(new, [true, true, true, false, true, false]);
        assert!(tally.check_seq(&mut last, None));
        assert_eq!((tally.missing, tally.out_of_order, last), (2, 2, Some(16)));
        let mut unknown = None;
        assert!(tally.check_seq(&mut unknown, Some(40)));
        assert_eq!(unknown, Some(40));
    }

    #[test]
    fn setup_failures_have_report_keys() {
        assert_eq!(SetupFailure::Refused(503).key(), "http_503");
        assert_eq!(SetupFailure::Timeout.key(), "setup_timeout");
    }
}
