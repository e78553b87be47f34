//! The slice of bidask's REST contract (`API.md`) that the generator
//! speaks: the endpoints, over the keep-alive connections of [`crate::http`],
//! and the JSON shapes it writes and reads.
//!
//! Answers are returned whole, status and all, rather than turned into
//! errors here: during the measured phase a 409 or a 429 is a figure to
//! count, and only the caller knows which.

use std::sync::Arc;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::LoadgenError;
pub use crate::http::{Answer, TransportError, TransportKind};
use crate::http::{HttpClient, Outgoing, ServerUrl};

/// How much of a non-JSON error body goes into a message.
const BODY_EXCERPT_CHARS: usize = 200;

/// A client for one server: the only place the generator sends requests
/// from, so it can only ever talk to the URL it was given. Clones share
/// the connections.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: Arc<HttpClient>,
    url: Arc<ServerUrl>,
}

/// Which book an order goes to; it picks the endpoint, not a body field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A buy offer, `POST /bids`.
    Bid,
    /// A sell offer, `POST /asks`.
    Ask,
}

/// The contract's `time_in_force` values the generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Rests until filled or cancelled; the contract's default.
    Gtc,
    /// Trades what it can now; the rest is cancelled (Buy Now / Sell Now).
    Ioc,
}

/// Username and password, the body of both register and login.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials<'a> {
    /// 3..=32 characters of `[A-Za-z0-9_.-]`.
    pub username: &'a str,
    /// At least 8 characters.
    pub password: &'a str,
}

/// The body of `POST /bids` and `POST /asks`.
#[derive(Debug, Clone, Serialize)]
pub struct NewOrder<'a> {
    /// The catalog id of the product.
    pub product_id: i64,
    /// One of the product's sizes, exactly as the catalog spelled it.
    pub size: &'a str,
    /// A decimal string on the product's tick (the contract's preferred form).
    pub price: String,
    /// Units; sneakers are mostly bought one pair at a time.
    pub quantity: u32,
    /// Left out for the contract's default (`gtc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<TimeInForce>,
}

/// The parts of a 201 from `POST /bids` or `POST /asks` the generator uses.
#[derive(Debug, Deserialize)]
pub struct Placed {
    /// The order as it stands after matching.
    pub order: PlacedOrder,
    /// The matches it made; only their number matters here.
    #[serde(default)]
    pub matches: Option<Vec<IgnoredAny>>,
}

/// The parts of an order the generator uses.
#[derive(Debug, Deserialize)]
pub struct PlacedOrder {
    /// What `DELETE /orders/{id}` takes.
    pub id: i64,
    /// `open`, `partially_filled`, `filled`, `cancelled` or `expired`.
    pub status: String,
    /// Why the server cancelled (part of) it, e.g. `self_trade`.
    #[serde(default)]
    pub cancel_reason: Option<String>,
}

/// The parts of a register or login answer the generator uses.
#[derive(Debug, Deserialize)]
pub struct SignedIn {
    /// The bearer token every trading request carries.
    pub token: String,
}

/// The contract's error body, `{"error": {"code", "message"}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl ApiClient {
    /// A client for the server at `url`, with `timeout` on every request
    /// (connecting included).
    pub async fn new(url: &str, timeout: Duration) -> Result<Self, LoadgenError> {
        let url = ServerUrl::parse(url)?;
        let http = HttpClient::new(&url, timeout).await?;
        Ok(Self {
            http: Arc::new(http),
            url: Arc::new(url),
        })
    }

    /// The base URL requests go to, for messages.
    pub fn base_url(&self) -> &str {
        self.url.as_str()
    }

    /// `POST /api/v1/auth/register`.
    pub async fn register(&self, credentials: &Credentials<'_>) -> Result<Answer, TransportError> {
        let path = self.endpoint("/auth/register");
        self.http
            .send(Outgoing::post(&path).json(to_json(credentials)))
            .await
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, credentials: &Credentials<'_>) -> Result<Answer, TransportError> {
        let path = self.endpoint("/auth/login");
        self.http
            .send(Outgoing::post(&path).json(to_json(credentials)))
            .await
    }

    /// `GET /api/v1/products?limit=100[&cursor=…]`: one page of the catalog.
    pub async fn products(&self, cursor: Option<&str>) -> Result<Answer, TransportError> {
        let mut path = self.endpoint("/products?limit=100");
        if let Some(cursor) = cursor {
            path.push_str("&cursor=");
            path.push_str(&percent_encode(cursor));
        }
        self.http.send(Outgoing::get(&path)).await
    }

    /// `POST /api/v1/bids` or `POST /api/v1/asks`.
    pub async fn place(
        &self,
        token: &str,
        side: Side,
        order: &NewOrder<'_>,
    ) -> Result<Answer, TransportError> {
        let path = self.endpoint(match side {
            Side::Bid => "/bids",
            Side::Ask => "/asks",
        });
        let request = Outgoing::post(&path).bearer(token).json(to_json(order));
        self.http.send(request).await
    }

    /// `DELETE /api/v1/orders/{id}`.
    pub async fn cancel(&self, token: &str, order_id: i64) -> Result<Answer, TransportError> {
        let path = self.endpoint(&format!("/orders/{order_id}"));
        self.http.send(Outgoing::delete(&path).bearer(token)).await
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url.prefix())
    }
}

/// `value` as JSON. The request bodies here are plain structs of strings
/// and numbers, which always serialize.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Answer {
    /// A human sentence for a refused setup step: the contract's
    /// `error.code` and `error.message`, or the start of whatever came back.
    pub fn error_message(&self) -> String {
        if let Ok(ErrorBody { error }) = self.json::<ErrorBody>() {
            return match (error.code.is_empty(), error.message.is_empty()) {
                (false, false) => format!("{} ({})", error.message, error.code),
                (true, false) => error.message,
                (false, true) => error.code,
                (true, true) => "an error without a message".to_owned(),
            };
        }
        let text = String::from_utf8_lossy(&self.body);
        let excerpt: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
        if excerpt.trim().is_empty() {
            "an empty body".to_owned()
        } else {
            excerpt
        }
    }
}

impl Placed {
    /// How many matches the order made when it arrived.
    pub fn match_count(&self) -> usize {
        self.matches.as_ref().map_or(0, Vec::len)
    }
}

impl PlacedOrder {
    /// Whether it still rests in the book, and so can be cancelled.
    pub fn is_resting(&self) -> bool {
        matches!(self.status.as_str(), "open" | "partially_filled")
    }

    /// Whether self-trade prevention cancelled (the rest of) it.
    pub fn stopped_by_self_trade(&self) -> bool {
        self.cancel_reason.as_deref() == Some("self_trade")
    }
}

/// Escapes everything but RFC 3986's unreserved characters, so an opaque
/// cursor survives the trip in a query string.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_escaped_for_a_query_string() {
        assert_eq!(percent_encode("abc-_.~09"), "abc-_.~09");
        assert_eq!(percent_encode("a b+c/="), "a%20b%2Bc%2F%3D");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn orders_leave_out_the_default_time_in_force() {
        let order = NewOrder {
            product_id: 3,
            size: "10.5",
            price: "201.37".to_owned(),
            quantity: 1,
            time_in_force: None,
        };
        let json = serde_json::to_value(&order).map_err(|error| error.to_string());
        assert_eq!(
            json,
            Ok(
                serde_json::json!({"product_id": 3, "size": "10.5", "price": "201.37", "quantity": 1})
            )
        );
        let ioc = NewOrder {
            time_in_force: Some(TimeInForce::Ioc),
            ..order
        };
        let json = serde_json::to_value(&ioc).map_err(|error| error.to_string());
        assert_eq!(
            json.map(|json| json["time_in_force"].clone()),
            Ok(serde_json::json!("ioc"))
        );
    }

    #[test]
    fn placed_orders_read_with_or_without_matches() {
        let body = br#"{"order":{"id":7,"status":"partially_filled","cancel_reason":null},"matches":[{"id":1},{"id":2}],"seq":9}"#;
        let placed: Result<Placed, _> = serde_json::from_slice(body);
        let placed = placed.map_err(|error| error.to_string());
        assert_eq!(placed.as_ref().map(Placed::match_count), Ok(2));
        assert_eq!(
            placed.as_ref().map(|placed| placed.order.is_resting()),
            Ok(true)
        );

        let body = br#"{"order":{"id":8,"status":"cancelled","cancel_reason":"self_trade"},"matches":null}"#;
        let placed: Result<Placed, _> = serde_json::from_slice(body);
        let placed = placed.map_err(|error| error.to_string());
        assert_eq!(placed.as_ref().map(Placed::match_count), Ok(0));
        assert_eq!(
            placed
                .as_ref()
                .map(|placed| placed.order.stopped_by_self_trade()),
            Ok(true)
        );
    }

    #[test]
    fn error_messages_prefer_the_contracts_shape() {
        let answer = |body: &[u8]| Answer {
            status: 422,
            elapsed: Duration::ZERO,
            retry_after: None,
            body: bytes::Bytes::copy_from_slice(body),
        };
        assert_eq!(
            answer(br#"{"error":{"code":"invalid_price","message":"price is off tick"}}"#)
                .error_message(),
            "price is off tick (invalid_price)"
        );
        assert_eq!(answer(b"Bad Gateway").error_message(), "Bad Gateway");
        assert_eq!(answer(b"").error_message(), "an empty body");
    }
}
