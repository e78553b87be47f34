//! The bus that carries committed events to whoever listens: the WebSocket
//! gateway's hub on this node today, other nodes (through Redis) later.
//!
//! The writer publishes each event once, already serialized, after its
//! batch committed and in `seq` order per channel; subscribers share the
//! same bytes. A commit's events go out together, as one hand-over: one
//! wake-up of the listener per commit, not one per event.

use crate::feed::Channel;

/// One committed event, as sent to clients.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its channel.
    pub channel: Channel,
    /// Its sequence number on that channel.
    pub seq: i64,
    /// The JSON message.
    pub message: String,
}

/// Where committed events go. Publishing never waits for a listener.
pub trait Bus: Send + Sync + 'static {
    /// Publishes `events`, in order (nothing for an empty list).
    fn publish(&self, events: Vec<Published>);
}
