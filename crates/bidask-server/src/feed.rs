//! Feed channels and the events published on them.
//!
//! The market actors describe what happened with [`FeedBody`] values that
//! keep raw ticks beside formatted prices (the book replica needs the
//! former, clients the latter); the writer gives each one its channel's
//! next `seq` and serializes it once, into the JSON that is stored and
//! published.

use std::fmt;

use bidask_engine::Side;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::catalog::Size;

/// A feed channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// `product:{id}`: every market event of one product.
    Product(i64),
    /// `user:{id}`: one user's private events.
    User(i64),
    /// `products`: catalog-wide events.
    Products,
}

impl fmt::Display for Channel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Product(id) => write!(formatter, "product:{id}"),
            Self::User(id) => write!(formatter, "user:{id}"),
            Self::Products => formatter.write_str("products"),
        }
    }
}

impl Channel {
    /// Parses `product:42`, `user:7` or `products`, each only as written
    /// here: replies and events carry the channel's name, and a client
    /// that subscribed to `product:042` or `product:+42` would never see
    /// that name again.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "products" {
            return Some(Self::Products);
        }
        let (kind, id) = text.split_once(':')?;
        let canonical = id.bytes().all(|digit| digit.is_ascii_digit()) && !id.starts_with('0');
        let id = id.parse().ok().filter(|id: &i64| *id > 0 && canonical)?;
        match kind {
            "product" => Some(Self::Product(id)),
            "user" => Some(Self::User(id)),
            _ => None,
        }
    }
}

/// A best price: `{price, quantity}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Best {
    /// Decimal string.
    pub price: String,
    /// Units at that price.
    pub quantity: u64,
    /// The price in ticks, for the replica.
    #[serde(skip)]
    pub ticks: u64,
}

/// `BID_UPDATED` / `ASK_UPDATED`: one price level's new totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelUpdated {
    /// The product.
    pub product_id: i64,
    /// The engine market of the size.
    pub market: u16,
    /// The size.
    pub size: String,
    /// Which side of the book.
    pub side: Side,
    /// The level's price in ticks.
    pub ticks: u64,
    /// The level's price.
    pub price: String,
    /// Units now at the level; 0 when it is gone.
    pub quantity: u64,
    /// Orders now at the level.
    pub orders: u32,
    /// The side's best level after the change.
    pub best: Option<Best>,
}

impl Serialize for LevelUpdated {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("product_id", &self.product_id)?;
        map.serialize_entry("size", &self.size)?;
        map.serialize_entry("price", &self.price)?;
        map.serialize_entry("quantity", &self.quantity)?;
        map.serialize_entry("orders", &self.orders)?;
        let best_key = match self.side {
            Side::Bid => "highest_bid",
            Side::Ask => "lowest_ask",
        };
        map.serialize_entry(best_key, &self.best)?;
        map.end()
    }
}

/// `MATCH_CREATED` on a product channel: no user ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicMatch {
    /// The match.
    pub match_id: i64,
    /// The product.
    pub product_id: i64,
    /// The size.
    pub size: String,
    /// The resting order's price.
    pub price: String,
    /// Units traded.
    pub quantity: u32,
    /// `bid` or `ask`.
    pub taker_side: &'static str,
    /// The engine market, for the replica's last sale.
    #[serde(skip)]
    pub market: u16,
    /// The price in ticks, for the replica's last sale.
    #[serde(skip)]
    pub ticks: u64,
}

/// `MATCH_CREATED` on a user channel, also stored as a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserMatch {
    /// The match.
    pub match_id: i64,
    /// The stored notification: ids grow in the order they were
    /// committed, so `GET /notifications?after=` never passes one.
    // The writer numbers it as it writes the batch (the actor leaves 0): a
    // client reading `?after=` could pass one that commits later if each
    // product's actor took ids as it went.
    pub notification_id: i64,
    /// `buyer` or `seller`.
    #[schema(value_type = String)]
    pub role: &'static str,
    /// The user's order in the match.
    pub order_id: i64,
    /// The product.
    pub product_id: i64,
    /// The size.
    pub size: String,
    /// The price.
    pub price: String,
    /// Units traded.
    pub quantity: u32,
    /// A sentence for the user.
    pub message: String,
    /// Who it is for.
    #[serde(skip)]
    pub user_id: i64,
}

/// `ORDER_UPDATED`: one of the user's orders filled, was cancelled or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderUpdated {
    /// The order.
    pub order_id: i64,
    /// Its product.
    pub product_id: i64,
    /// Its size.
    pub size: String,
    /// `bid` or `ask`.
    pub side: &'static str,
    /// Its new status.
    pub status: &'static str,
    /// Units never filled.
    pub remaining_quantity: u32,
    /// Why it was cancelled, or null.
    pub cancel_reason: Option<&'static str>,
}

/// `NEW_PRODUCT` on `products`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewProduct {
    /// The product.
    pub product_id: i64,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its brand.
    pub brand: String,
    /// Its sizes.
    pub sizes: Vec<Size>,
    /// Its tick size.
    pub tick_size: String,
}

/// `PRICE_DROP` on `products`: a market's lowest ask fell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceDrop {
    /// The product.
    pub product_id: i64,
    /// The size.
    pub size: String,
    /// The lowest ask before.
    pub old_price: String,
    /// The lowest ask now.
    pub new_price: String,
}

/// What an event says, without its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FeedBody {
    /// `BID_UPDATED` or `ASK_UPDATED`.
    Level(LevelUpdated),
    /// `MATCH_CREATED` on a product channel.
    PublicMatch(PublicMatch),
    /// `MATCH_CREATED` on a user channel.
    UserMatch(UserMatch),
    /// `ORDER_UPDATED`.
    OrderUpdated(OrderUpdated),
    /// `NEW_PRODUCT`.
    NewProduct(NewProduct),
    /// `PRICE_DROP`.
    PriceDrop(PriceDrop),
}

impl FeedBody {
    /// The event's `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Level(level) => match level.side {
                Side::Bid => "BID_UPDATED",
                Side::Ask => "ASK_UPDATED",
            },
            Self::PublicMatch(_) | Self::UserMatch(_) => "MATCH_CREATED",
            Self::OrderUpdated(_) => "ORDER_UPDATED",
            Self::NewProduct(_) => "NEW_PRODUCT",
            Self::PriceDrop(_) => "PRICE_DROP",
        }
    }
}

/// An event waiting for its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// Where it goes.
    pub channel: Channel,
    /// What it says.
    pub body: FeedBody,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    channel: String,
    seq: i64,
    ts: &'a str,
    #[serde(flatten)]
    body: &'a FeedBody,
}

impl PendingEvent {
    /// The message as published: `{type, channel, seq, ts, ...}`.
    pub fn to_json(&self, seq: i64, ts: &str) -> String {
        let envelope = Envelope {
            event_type: self.body.event_type(),
            channel: self.channel.to_string(),
            seq,
            ts,
            body: &self.body,
        };
        // Serializing these plain structs cannot fail: every key is a
        // string and every value a string, number, bool or null.
        serde_json::to_string(&envelope).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_print_and_parse() {
        for channel in [Channel::Product(42), Channel::User(7), Channel::Products] {
            assert_eq!(Channel::parse(&channel.to_string()), Some(channel));
        }
        assert_eq!(Channel::parse("product:0"), None);
        assert_eq!(Channel::parse("product:x"), None);
        assert_eq!(Channel::parse("orders:1"), None);
        // Another spelling of a channel is not that channel.
        for other in [
            "product:042",
            "product:+42",
            "user:07",
            "product: 42",
            "product:",
        ] {
            assert_eq!(Channel::parse(other), None, "{other}");
        }
    }

    #[test]
    fn a_level_event_names_the_best_of_its_side() {
        let event = PendingEvent {
            channel: Channel::Product(42),
            body: FeedBody::Level(LevelUpdated {
                product_id: 42,
                market: 0,
                size: "10".to_owned(),
                side: Side::Ask,
                ticks: 22_000,
                price: "220.00".to_owned(),
                quantity: 0,
                orders: 0,
                best: None,
            }),
        };
        let json: serde_json::Value =
            serde_json::from_str(&event.to_json(5, "2026-11-22T03:04:05.000000Z"))
                .unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "ASK_UPDATED", "channel": "product:42", "seq": 5,
                "ts": "2026-11-22T03:04:05.000000Z", "product_id": 42, "size": "10",
                "price": "220.00", "quantity": 0, "orders": 0, "lowest_ask": null
            })
        );
    }
}
