//! What an actor hands the writer, and what comes back: a [`Unit`] holds
//! the results of one command to commit together, a [`Reply`] the request
//! waiting for them, and [`Committed`] the answer it gets once they are
//! durable.

use std::sync::Arc;

use bidask_store::{MatchRecord, OrderRecord, ProductRecord};
use tokio::sync::oneshot;

use crate::feed::{Channel, PendingEvent};
use crate::market::actor::MarketError;
use crate::market::staleness::Staleness;
use crate::views::{AmendedOrder, CancelledOrder, MatchView, OrderView, PlacedOrder};

/// The results of one command, to be committed together.
#[derive(Debug)]
pub struct Unit {
    /// The channel whose `seq` the reply reports: the product's, or
    /// `products` for a new product.
    pub channel: Channel,
    /// The product's staleness marker and the epoch the actor decided in
    /// (`None` for catalog units).
    pub epoch: Option<(Arc<Staleness>, u64)>,
    /// A new product.
    pub product: Option<ProductRecord>,
    /// Orders as they stand after the command.
    pub orders: Vec<OrderRecord>,
    /// Trades it made.
    pub matches: Vec<MatchRecord>,
    /// Events it caused, in order.
    pub events: Vec<PendingEvent>,
    /// Who waits for the commit, if anyone (expiry runs wait for nobody).
    pub reply: Option<Reply>,
    /// Runs once the unit is committed, before its events are published.
    pub on_commit: Option<OnCommit>,
}

/// What a committed unit makes visible before anyone hears of it.
pub struct OnCommit(pub Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for OnCommit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("OnCommit(..)")
    }
}

/// A request waiting for its unit's commit.
#[derive(Debug)]
pub struct Reply {
    /// The body to answer with, given its `seq` once committed.
    pub response: Option<Response>,
    /// Stores the response under the caller's idempotency key.
    pub idempotency: Option<IdempotencyDraft>,
    /// Where the outcome goes.
    pub sender: oneshot::Sender<Result<Committed, MarketError>>,
    /// A refusal that rests on the product's book (its order was filled
    /// by an earlier unit, an amendment goes below what traded): it is
    /// answered only once the units before it are committed, and becomes
    /// a 503 if they fail.
    pub refusal: Option<MarketError>,
}

/// An `Idempotency-Key` to record with the response.
#[derive(Debug, Clone)]
pub struct IdempotencyDraft {
    /// Keys are per user.
    pub user_id: i64,
    /// The key.
    pub key: String,
    /// The request digest.
    pub request_hash: String,
}

/// A response body that still lacks its `seq`.
#[derive(Debug, Clone)]
pub enum Response {
    /// `POST /bids`, `POST /asks`: `{order, matches, seq}`.
    Placed {
        /// The order after matching.
        order: OrderView,
        /// The matches it made.
        matches: Vec<MatchView>,
    },
    /// `PATCH /orders/{id}`: the order, with `matches` and `seq` added.
    Amended {
        /// The order after the amendment and any matching.
        order: OrderView,
        /// The matches it made.
        matches: Vec<MatchView>,
    },
    /// `DELETE /orders/{id}`: the order, with `seq` added.
    Cancelled {
        /// The cancelled order.
        order: OrderView,
    },
}

impl Response {
    /// The body, with the `seq` its commit gave.
    pub fn to_body(&self, seq: i64) -> String {
        let body = match self {
            Self::Placed { order, matches } => serde_json::to_string(&PlacedOrder {
                order,
                matches,
                seq,
            }),
            Self::Amended { order, matches } => serde_json::to_string(&AmendedOrder {
                order,
                matches,
                seq,
            }),
            Self::Cancelled { order } => serde_json::to_string(&CancelledOrder { order, seq }),
        };
        // Plain structs of strings and numbers always serialize.
        body.unwrap_or_default()
    }

    /// The id of the order the response is about.
    pub fn order_id(&self) -> i64 {
        match self {
            Self::Placed { order, .. }
            | Self::Amended { order, .. }
            | Self::Cancelled { order } => order.id,
        }
    }
}

/// A committed unit.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The `seq` of the last event the unit caused on its channel (or the
    /// channel's current `seq` if it caused none there).
    pub seq: i64,
    /// The response body, when the unit had a [`Response`].
    pub body: Option<String>,
    /// The id of the order the [`Response`] is about: a placed order's
    /// `Location`.
    pub order_id: Option<i64>,
}
