//! The contract's JSON shapes of orders and matches, built from stored rows
//! and the product they belong to.

use bidask_store::{MatchRecord, OrderRecord};
use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::Product;
use crate::clock::format_micros;

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct OrderView {
    /// Its id.
    pub id: i64,
    /// The product.
    pub product_id: i64,
    /// The size.
    pub size: String,
    /// `bid` or `ask`.
    pub side: String,
    /// Limit price, a decimal string.
    pub price: String,
    /// Units ordered.
    pub quantity: i64,
    /// Units never filled (what was left when it was cancelled or expired).
    pub remaining_quantity: i64,
    /// Units filled: `quantity - remaining_quantity`.
    pub filled_quantity: i64,
    /// `open`, `partially_filled`, `filled`, `cancelled` or `expired`.
    pub status: String,
    /// `gtc`, `ioc` or `fok`.
    pub time_in_force: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: the last change.
    pub updated_at: String,
    /// Why it was cancelled, or null.
    #[schema(required = true)]
    pub cancel_reason: Option<String>,
}

impl OrderView {
    /// The view of a stored order of `product`.
    pub fn new(order: &OrderRecord, product: &Product) -> Self {
        Self {
            id: order.id,
            product_id: order.product_id,
            size: product.size(order.market).to_owned(),
            side: order.side.clone(),
            price: product.format_ticks(order.price_ticks),
            quantity: order.quantity,
            remaining_quantity: order.remaining_quantity,
            filled_quantity: order.quantity - order.remaining_quantity,
            status: order.status.clone(),
            time_in_force: order.time_in_force.clone(),
            expires_at: format_micros(order.expires_at),
            created_at: format_micros(order.created_at),
            updated_at: format_micros(order.updated_at),
            cancel_reason: order.cancel_reason.clone(),
        }
    }
}

/// A match (a sale) as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct MatchView {
    /// Its id.
    pub id: i64,
    /// The product.
    pub product_id: i64,
    /// The size.
    pub size: String,
    /// The resting order's price.
    pub price: String,
    /// Units traded.
    pub quantity: i64,
    /// The buying order.
    pub bid_order_id: i64,
    /// The selling order.
    pub ask_order_id: i64,
    /// The side of the order that arrived and crossed.
    pub taker_side: String,
    /// RFC 3339.
    pub created_at: String,
    /// `buyer` or `seller`, in the caller's own list of matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub role: Option<&'static str>,
}

impl MatchView {
    /// The public view of a stored match of `product`.
    pub fn new(trade: &MatchRecord, product: &Product) -> Self {
        Self {
            id: trade.id,
            product_id: trade.product_id,
            size: product.size(trade.market).to_owned(),
            price: product.format_ticks(trade.price_ticks),
            quantity: trade.quantity,
            bid_order_id: trade.bid_order_id,
            ask_order_id: trade.ask_order_id,
            taker_side: trade.taker_side.clone(),
            created_at: format_micros(trade.created_at),
            role: None,
        }
    }

    /// The view for `user_id`, one of its two sides.
    pub fn for_user(trade: &MatchRecord, product: &Product, user_id: i64) -> Self {
        Self {
            role: Some(if trade.buyer_id == user_id {
                "buyer"
            } else {
                "seller"
            }),
            ..Self::new(trade, product)
        }
    }
}

/// `POST /bids` and `POST /asks`: the order after matching, its matches,
/// and the product feed `seq` of the last event it caused. Serialized by
/// the writer once the order committed, and described by the OpenAPI
/// document from this same type.
#[derive(Serialize, ToSchema)]
pub struct PlacedOrder<'a> {
    /// The order after matching.
    pub order: &'a OrderView,
    /// The matches it made, in the order they were made.
    pub matches: &'a [MatchView],
    /// For joining the product's feed without a gap.
    pub seq: i64,
}

/// `PATCH /orders/{id}`: the order, with the matches the amendment made
/// and the feed `seq`.
#[derive(Serialize, ToSchema)]
pub struct AmendedOrder<'a> {
    /// The order after the amendment and any matching.
    #[serde(flatten)]
    pub order: &'a OrderView,
    /// The matches the amendment made.
    pub matches: &'a [MatchView],
    /// For joining the product's feed without a gap.
    pub seq: i64,
}

/// `DELETE /orders/{id}`: the cancelled order and the feed `seq`.
#[derive(Serialize, ToSchema)]
pub struct CancelledOrder<'a> {
    /// The order as cancelled.
    #[serde(flatten)]
    pub order: &'a OrderView,
    /// For joining the product's feed without a gap.
    pub seq: i64,
}
