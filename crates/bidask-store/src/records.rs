//! The rows, as plain values.
//!
//! Prices are integer ticks of their product's tick size and times are
//! microseconds since the Unix epoch, as in the matching engine; enums are
//! stored as the snake_case words of the API. Turning these into domain
//! types is the server's business, so this crate does not depend on the
//! engine. Rows read back map onto these by column name (`FromRow`).

/// A new account, before the database gives it an id.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique, already validated.
    pub username: String,
    /// The argon2 PHC string; the password itself never reaches the store.
    pub password_hash: String,
    /// `trader` or `admin`.
    pub role: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// What the account's tokens carry besides its id (see
    /// [`UserRecord::token_key`]).
    pub token_key: i64,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    /// The `sub` of the user's tokens.
    pub id: i64,
    /// Unique.
    pub username: String,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// `trader` or `admin`.
    pub role: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Carried by the account's tokens, which are refused once it differs:
    /// it tells this account from another that got its id after the
    /// database was reset, and changes when its password is reset.
    pub token_key: i64,
}

/// A product with its sizes; size `i` is the engine's market `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    /// Assigned by the server, so a batch can refer to it before commit.
    pub id: i64,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name, e.g. `Air Jordan 1 Retro High OG "Chicago"`.
    pub name: String,
    /// e.g. `Nike`.
    pub brand: String,
    /// The tick size is `tick_units * 10^-scale`.
    pub tick_units: i64,
    /// Decimals shown in prices.
    pub scale: u32,
    /// Sizes in market order.
    pub sizes: Vec<String>,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// An order as it stands after the command that last changed it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderRecord {
    /// Assigned by the server.
    pub id: i64,
    /// The owner.
    pub user_id: i64,
    /// The product.
    pub product_id: i64,
    /// The size, as the engine's market number.
    pub market: i64,
    /// `bid` or `ask`.
    pub side: String,
    /// Ticks of the product's tick size.
    pub price_ticks: i64,
    /// Units ordered (the total after any amendment).
    pub quantity: i64,
    /// Units still to fill.
    pub remaining_quantity: i64,
    /// `open`, `partially_filled`, `filled`, `cancelled` or `expired`.
    pub status: String,
    /// `gtc`, `ioc` or `fok`.
    pub time_in_force: String,
    /// Why it was cancelled, when `status` is `cancelled`.
    pub cancel_reason: Option<String>,
    /// Microseconds since the epoch.
    pub expires_at: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: i64,
    /// Place in its level's queue: open orders sorted by it rebuild the books.
    pub priority: i64,
}

/// A trade between one bid and one ask.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MatchRecord {
    /// Assigned by the server.
    pub id: i64,
    /// The product.
    pub product_id: i64,
    /// The size, as the engine's market number.
    pub market: i64,
    /// The resting order's price, in ticks.
    pub price_ticks: i64,
    /// Units traded.
    pub quantity: i64,
    /// The buying order.
    pub bid_order_id: i64,
    /// The selling order.
    pub ask_order_id: i64,
    /// The bid's owner.
    pub buyer_id: i64,
    /// The ask's owner.
    pub seller_id: i64,
    /// The side of the order that arrived and crossed: `bid` or `ask`.
    pub taker_side: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// One published feed event: the exact JSON sent on its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEventRecord {
    /// e.g. `product:42`, `user:7`, `products`.
    pub channel: String,
    /// Gap-free per channel, from 1.
    pub seq: i64,
    /// e.g. `BID_UPDATED`.
    pub event_type: String,
    /// The message as published.
    pub payload: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// A stored match notification for one side of a trade.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRecord {
    /// Assigned by the server; `GET /notifications?after=` pages by it.
    pub id: i64,
    /// Who it is for.
    pub user_id: i64,
    /// The trade.
    pub match_id: i64,
    /// The user's order in the trade.
    pub order_id: i64,
    /// The `MATCH_CREATED` message as sent on the user's channel.
    pub payload: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// The first response to a request that carried an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    /// Keys are per user.
    pub user_id: i64,
    /// The client's key.
    pub key: String,
    /// A digest of the request, to tell a retry from a different request.
    pub request_hash: String,
    /// The HTTP status of the first response.
    pub status: i64,
    /// Its body.
    pub response: String,
    /// Microseconds since the epoch; keys expire after 24 hours.
    pub created_at: i64,
}
