//! The slice of bidask's REST contract (`API.md`) that the generator
//! speaks: one keep-alive connection pool to one base URL, every request
//! timed from send to the last byte of its body, and the JSON shapes it
//! writes and reads.
//!
//! Answers are returned whole, status and all, rather than turned into
//! errors here: during the measured phase a 409 or a 429 is a figure to
//! count, and only the caller knows which.

use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use reqwest::header::RETRY_AFTER;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::error::LoadgenError;

/// How much of a non-JSON error body goes into a message.
const BODY_EXCERPT_CHARS: usize = 200;

/// A client for one server: the only place the generator opens
/// connections, so it can only ever talk to the URL it was given.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `http://host:port[/prefix]` without a trailing slash, so paths join
    /// with a plain `format!`.
    base: String,
}

/// A complete answer: the status, and the body read to its end.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// From just before the request was sent to the last byte of the body.
    pub elapsed: Duration,
    /// The server's `Retry-After` (whole seconds), for setup steps that wait
    /// out a rate limit instead of failing.
    pub retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct TransportFailure {
    /// Counted separately in the report: a timeout says "slow", a
    /// connection failure says "down or refusing".
    pub kind: TransportKind,
    /// What the HTTP client said, for setup messages.
    #[source]
    pub source: reqwest::Error,
}

/// The two ways a request can fail below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No complete answer within `--timeout`.
    Timeout,
    /// Refused, reset, or not HTTP.
    Connection,
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
    /// (connecting included) and room to keep `connections` idle
    /// connections alive, one per concurrent trader.
    pub fn new(url: &str, timeout: Duration, connections: usize) -> Result<Self, LoadgenError> {
        let base = base_url(url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("bidask-loadgen/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            // A proxy from the environment would send the load somewhere
            // other than the URL given.
            .no_proxy()
            .build()
            .map_err(LoadgenError::Client)?;
        Ok(Self { http, base })
    }

    /// The base URL requests go to, for messages.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/auth/register`.
    pub async fn register(
        &self,
        credentials: &Credentials<'_>,
    ) -> Result<Answer, TransportFailure> {
        let url = self.endpoint("/auth/register");
        self.exchange(self.http.post(url).json(credentials)).await
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, credentials: &Credentials<'_>) -> Result<Answer, TransportFailure> {
        let url = self.endpoint("/auth/login");
        self.exchange(self.http.post(url).json(credentials)).await
    }

    /// `GET /api/v1/products?limit=100[&cursor=…]`: one page of the catalog.
    pub async fn products(&self, cursor: Option<&str>) -> Result<Answer, TransportFailure> {
        let mut url = self.endpoint("/products?limit=100");
        if let Some(cursor) = cursor {
            url.push_str("&cursor=");
            url.push_str(&percent_encode(cursor));
        }
        self.exchange(self.http.get(url)).await
    }

    /// `POST /api/v1/bids` or `POST /api/v1/asks`.
    pub async fn place(
        &self,
        token: &str,
        side: Side,
        order: &NewOrder<'_>,
    ) -> Result<Answer, TransportFailure> {
        let url = self.endpoint(match side {
            Side::Bid => "/bids",
            Side::Ask => "/asks",
        });
        let request = self.http.post(url).bearer_auth(token).json(order);
        self.exchange(request).await
    }

    /// `DELETE /api/v1/orders/{id}`.
    pub async fn cancel(&self, token: &str, order_id: i64) -> Result<Answer, TransportFailure> {
        let url = self.endpoint(&format!("/orders/{order_id}"));
        self.exchange(self.http.delete(url).bearer_auth(token))
            .await
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends `request` and reads the whole body, timing both.
    async fn exchange(&self, request: RequestBuilder) -> Result<Answer, TransportFailure> {
        let started = Instant::now();
        let response = request.send().await.map_err(TransportFailure::from)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(TransportFailure::from)?;
        Ok(Answer {
            status,
            elapsed: started.elapsed(),
            retry_after,
            body: Vec::from(body),
        })
    }
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

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

impl From<reqwest::Error> for TransportFailure {
    fn from(source: reqwest::Error) -> Self {
        let kind = if source.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Connection
        };
        Self { kind, source }
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

/// Checks `url` and returns it without a trailing slash. Only plain HTTP:
/// the build carries no TLS, and a load test belongs next to the server.
pub(crate) fn base_url(url: &str) -> Result<String, LoadgenError> {
    let invalid = |reason: &str| LoadgenError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
    match parsed.scheme() {
        "http" => {}
        "https" => return Err(invalid("this build speaks plain HTTP only; use http://")),
        _ => return Err(invalid("the scheme must be http://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
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
    fn base_urls_lose_their_trailing_slash() {
        let base = base_url("http://127.0.0.1:8080/").map_err(|error| error.to_string());
        assert_eq!(base, Ok("http://127.0.0.1:8080".to_owned()));
        let base = base_url("http://localhost:9000/prefix/").map_err(|error| error.to_string());
        assert_eq!(base, Ok("http://localhost:9000/prefix".to_owned()));
    }

    #[test]
    fn only_plain_http_base_urls_are_taken() {
        for url in [
            "https://127.0.0.1:8080",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/?x=1",
            "",
        ] {
            assert!(base_url(url).is_err(), "{url:?} was accepted");
        }
    }

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
            body: body.to_vec(),
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
