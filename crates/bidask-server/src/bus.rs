//! The bus that carries committed events to whoever listens: the WebSocket
//! gateway on this node today, other nodes (through Redis) later.
//!
//! The writer publishes each event once, already serialized, after its
//! batch committed and in `seq` order per channel; subscribers share the
//! same bytes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::feed::Channel;

/// One committed event, as sent to clients.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its channel.
    pub channel: Channel,
    /// Its sequence number on that channel.
    pub seq: i64,
    /// The JSON message.
    pub message: Arc<str>,
}

/// Where committed events go. Publishing never waits for a listener.
pub trait Bus: Send + Sync + 'static {
    /// Publishes one event.
    fn publish(&self, event: Published);
}

/// The in-process bus: one broadcast channel per feed channel, made on
/// first subscription. Events of a channel nobody listens to are dropped
/// (they are in the database).
#[derive(Debug)]
pub struct LocalBus {
    channels: RwLock<HashMap<Channel, broadcast::Sender<Published>>>,
    /// How many events a subscriber may fall behind before it misses some.
    capacity: usize,
}

impl LocalBus {
    /// A bus whose subscribers may lag `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Receives every event published on `channel` from now on.
    pub fn subscribe(&self, channel: Channel) -> broadcast::Receiver<Published> {
        let mut channels = self
            .channels
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        channels
            .entry(channel)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: Published) {
        let channels = self
            .channels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = channels.get(&event.channel) {
            // An error only means nobody is subscribed right now.
            let _ = sender.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_their_channel_only_in_order() {
        let bus = LocalBus::new(16);
        let mut product = bus.subscribe(Channel::Product(1));
        for seq in 1..=3 {
            bus.publish(Published {
                channel: Channel::Product(1),
                seq,
                message: Arc::from(format!("{{\"seq\":{seq}}}")),
            });
            bus.publish(Published {
                channel: Channel::Product(2),
                seq,
                message: Arc::from("other"),
            });
        }
        for seq in 1..=3 {
            let event = product.recv().await.expect("an event");
            assert_eq!((event.channel, event.seq), (Channel::Product(1), seq));
        }
        assert!(product.try_recv().is_err());
    }
}
