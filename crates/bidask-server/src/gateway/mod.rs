//! The WebSocket feed (`GET /ws`) and `/realtime/stats`.
//!
//! Read in this order:
//! - [`hub`]: committed events from the writer to every subscriber's
//!   bounded outbox, a window of recent events per channel, the counters;
//! - [`connection`]: one task per connection, its subscriptions, resumes,
//!   heartbeats and closes;
//! - [`protocol`]: the client's messages and the error replies;
//! - [`snapshot`]: a product's book as of a `seq`;
//! - [`handshake`]: the upgrade from HTTP.
//!
//! Each event is serialized once by the writer; every subscriber's outbox
//! holds a pointer to the same bytes.

pub mod connection;
pub mod handshake;
pub mod hub;
pub mod protocol;
pub mod snapshot;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bidask_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use utoipa::ToSchema;

use crate::clock::{SECOND, now_micros};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ClientAddress, Credentials, credentials};
use crate::http::json::Query;
use crate::http::limits::client;
use crate::origin::{self, AllowedOrigin};
use connection::Connection;
use handshake::{Handshake, Refused};
use hub::Hub;

/// The gateway's limits.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// How often each connection gets a heartbeat and a ping.
    pub heartbeat: Duration,
    /// Events a connection may have queued before it is closed with 4008.
    pub queue: usize,
    /// Connections held at once; upgrades beyond get 503.
    pub max_connections: usize,
    /// Connections held at once from one client address (an IPv6 /64
    /// counts as one), so that one client cannot hold them all; 0 for no
    /// bound.
    pub max_connections_per_address: usize,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Client messages per second per connection (0: unlimited).
    pub messages_per_sec: u32,
    /// Largest client message, in bytes.
    pub max_message_bytes: usize,
    /// Database queries the feed may run at once (at least one).
    pub database_queries: usize,
    /// Browser origins allowed besides the server's own.
    pub allowed_origins: Vec<AllowedOrigin>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            queue: 1_024,
            max_connections: 19_000,
            max_connections_per_address: 1_000,
            max_subscriptions: 64,
            messages_per_sec: 20,
            max_message_bytes: 16 * 1024,
            database_queries: 4,
            allowed_origins: Vec::new(),
        }
    }
}

/// The hub and the limits, shared by every connection.
#[derive(Debug)]
pub struct Gateway {
    /// Where committed events arrive.
    pub hub: Arc<Hub>,
    /// The limits every connection holds to, set once at start.
    pub settings: GatewaySettings,
    /// Connections held per client address, for those that hold any.
    held: Mutex<HashMap<IpAddr, usize>>,
    /// Places for the feed's database queries: subscribes and resumes
    /// cost some, and however many clients send them, they wait for each
    /// other here instead of taking every pooled connection from REST.
    queries: Semaphore,
    /// The latest snapshot of each product, shared by its subscribers.
    pub snapshots: snapshot::Snapshots,
}

impl Gateway {
    /// A gateway in front of `hub`, and its task that lets go of what it
    /// keeps once it is old (until the gateway is dropped).
    pub fn start(hub: Arc<Hub>, settings: GatewaySettings) -> Arc<Self> {
        let gateway = Arc::new(Self {
            queries: Semaphore::new(settings.database_queries.max(1)),
            hub,
            settings,
            held: Mutex::default(),
            snapshots: snapshot::Snapshots::default(),
        });
        tokio::spawn(age_out(Arc::downgrade(&gateway)));
        gateway
    }

    /// Runs `query`, one of the feed's, once a place for it is free.
    pub async fn query<T>(
        &self,
        query: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // The semaphore is never closed, so a permit always comes.
        let _place = self.queries.acquire().await.ok();
        query.await
    }

    /// Takes a place for a connection from `address`, if it has one left
    /// and the server too.
    fn hold(self: &Arc<Self>, address: IpAddr) -> Result<Slot, ApiError> {
        let address = client(address);
        let refused = |message| {
            self.hub
                .counters
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            ApiError::AtCapacity(message)
        };
        {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let count = held.entry(address).or_insert(0);
            let bound = self.settings.max_connections_per_address;
            if bound > 0 && *count >= bound {
                return Err(refused(
                    "this address holds all the feed connections it may; close one first",
                ));
            }
            *count += 1;
        }
        // From here on, dropping the slot gives the place back.
        let mut slot = Slot {
            gateway: Arc::clone(self),
            address,
            counted: false,
        };
        let counters = &self.hub.counters;
        if counters.connections.fetch_add(1, Ordering::Relaxed) >= self.settings.max_connections {
            counters.connections.fetch_sub(1, Ordering::Relaxed);
            return Err(refused(
                "the server holds all the connections it can; retry later",
            ));
        }
        metrics::gauge!("bidask_ws_connections").increment(1.0);
        slot.counted = true;
        Ok(slot)
    }
}

/// Who a connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id: it names the one `user:{id}` channel the connection
    /// may follow.
    pub id: i64,
    /// The username, which the `welcome` and `authenticated` replies show.
    pub username: String,
    /// When the token expires, in seconds since the epoch: past it the
    /// connection stops receiving `user:{id}` until it sends a fresh one.
    pub expires_at: i64,
}

impl Identity {
    /// Whether the token it was proven with has expired.
    pub fn is_expired(&self) -> bool {
        now_micros() / SECOND >= self.expires_at
    }

    /// `{id, username}`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "username": self.username})
    }
}

/// The user a token names, if it is valid and the user exists: the same
/// errors as a REST request's `Authorization` (401, or 503 without a
/// database).
pub async fn identify(state: &AppState, token: &str) -> Result<Identity, ApiError> {
    let claims = state.tokens.verify(token)?;
    let invalid = |message| ApiError::Unauthorized {
        code: "invalid_token",
        message,
    };
    let id = claims
        .user_id()
        .ok_or_else(|| invalid("the token is not valid"))?;
    let user = state
        .gateway
        .query(state.store.user_by_id(id))
        .await?
        .ok_or_else(|| invalid("the token's user does not exist"))?;
    crate::http::extract::issued_to(&claims, user.token_key)?;
    Ok(Identity {
        id: user.id,
        username: user.username,
        expires_at: claims.exp,
    })
}

/// `/ws`, outside `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// `/realtime/stats`, under `/api/v1`.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/realtime/stats", get(stats))
}

#[derive(Deserialize)]
struct UpgradeQuery {
    token: Option<String>,
}

/// One held connection; dropping it frees the place.
struct Slot {
    gateway: Arc<Gateway>,
    address: IpAddr,
    /// Whether it counts toward the server's total yet.
    counted: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .gateway
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.address);
            }
        }
        drop(held);
        if self.counted {
            self.gateway
                .hub
                .counters
                .connections
                .fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("bidask_ws_connections").decrement(1.0);
        }
    }
}

async fn upgrade(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Query(query): Query<UpgradeQuery>,
    handshake: Result<Handshake, Refused>,
) -> Result<Response, ApiError> {
    let gateway = Arc::clone(&state.gateway);
    check_origin(&headers, &gateway.settings.allowed_origins)?;
    let handshake = match handshake {
        Ok(handshake) => handshake,
        Err(refused) => return Ok(refused.into_response()),
    };
    // The place first: a client refused for want of one costs no query.
    let slot = gateway.hold(client)?;
    // A token is optional here, and a header of another scheme is not
    // one: the page's own feed, behind a password-protected proxy, comes
    // with the `Basic` credentials the browser resends, and signs in with
    // an `auth` message. Nor is a bare `Bearer`, which REST refuses as an
    // empty token.
    let header = match credentials(&headers)? {
        Credentials::Bearer(token) if !token.is_empty() => Some(token),
        Credentials::Bearer(_) | Credentials::None | Credentials::Other => None,
    };
    // Two different tokens could be two users: which one the client
    // meant is not for the server to guess.
    let token = match (header, query.token) {
        (Some(header), Some(query)) if header != query => {
            return Err(ApiError::Malformed {
                code: "ambiguous_token",
                message: "the Authorization header and ?token= carry different tokens; send one"
                    .to_owned(),
            });
        }
        (header, query) => header.map(str::to_owned).or(query),
    };
    let user = match token {
        Some(token) => Some(identify(&state, &token).await?),
        None => None,
    };
    let limit = gateway.settings.max_message_bytes;
    // A client sends small messages; a server with thousands of
    // connections must not give each one tungstenite's 128 KiB buffers.
    // The read buffer is allocated up front at this size: 256 bytes hold
    // a usual subscribe, and a longer message is read in several steps.
    // With 1 KiB, 19,000 idle subscribers cost 6,379 bytes of server
    // memory each; with 256, 5,544 (docs/benchmarks.md). Frames are
    // gathered up to 2 KiB per write; the write buffer keeps its largest
    // size for the connection's life, which is why long messages go out
    // in fragments (see `connection::FRAGMENT`).
    let config = WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(connection::WRITE_TARGET)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    Ok(handshake.accept(config, move |socket| async move {
        Connection::new(state, Arc::clone(&gateway), user)
            .run(socket)
            .await;
        drop(slot);
    }))
}

/// Browsers send `Origin`; a page of another site may not open a feed
/// with the user's token unless that origin is allowed. Clients that are
/// not browsers send no `Origin` and are not concerned.
fn check_origin(headers: &HeaderMap, allowed: &[AllowedOrigin]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host));
    if same_origin || origin::allows(allowed, origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this origin may not open the feed; see BIDASK_ALLOWED_ORIGINS",
        ))
    }
}

/// `GET /realtime/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealtimeStats {
    /// Open WebSocket connections.
    pub connected_clients: usize,
    /// Subscriptions across them.
    pub subscriptions: usize,
    /// Events received from the writer since start.
    pub events_published: u64,
    /// Messages written to clients since start.
    pub messages_sent: u64,
    /// Connections closed with 4008 for not reading.
    pub slow_consumer_disconnects: u64,
    /// Connections dropped for not answering pings.
    pub ping_timeouts: u64,
    /// Upgrades refused at the connection limit.
    pub refused_connections: u64,
    /// The deepest outbox now, in messages: the slowest reader's lag.
    pub max_queue_depth: usize,
    /// `since_seq` resumes served from the in-memory window of recent
    /// events.
    pub resumes_from_window: u64,
    /// `since_seq` resumes that had to read the feed from the database.
    pub resumes_from_database: u64,
    /// `since_seq` resumes answered with a `reset` snapshot: the events
    /// were gone.
    pub resets: u64,
}

/// Live feed counters.
#[utoipa::path(get, path = "/api/v1/realtime/stats", tag = "realtime", operation_id = "realtime_stats",
    responses((status = 200, description = "The feed's counters since the server started.", body = RealtimeStats)))]
pub async fn stats(State(state): State<AppState>) -> Json<RealtimeStats> {
    let hub = &state.gateway.hub;
    let counters = &hub.counters;
    Json(RealtimeStats {
        connected_clients: counters.connections.load(Ordering::Relaxed),
        subscriptions: counters.subscriptions.load(Ordering::Relaxed),
        events_published: counters.events_published.load(Ordering::Relaxed),
        messages_sent: counters.messages_sent.load(Ordering::Relaxed),
        slow_consumer_disconnects: counters.slow_disconnects.load(Ordering::Relaxed),
        ping_timeouts: counters.ping_timeouts.load(Ordering::Relaxed),
        refused_connections: counters.refused_connections.load(Ordering::Relaxed),
        max_queue_depth: hub.max_lag(),
        resumes_from_window: counters.resumes_from_window.load(Ordering::Relaxed),
        resumes_from_database: counters.resumes_from_database.load(Ordering::Relaxed),
        resets: counters.resets.load(Ordering::Relaxed),
    })
}

/// Four times per window age, lets the hub's windows and the snapshot
/// cache go of what is older than that age: what both keep is for a
/// client that comes back in a moment, and a product that has gone quiet
/// should cost nothing.
async fn age_out(gateway: std::sync::Weak<Gateway>) {
    let Some(age) = gateway.upgrade().map(|gateway| gateway.hub.window_age()) else {
        return;
    };
    let mut ticks = tokio::time::interval((age / 4).max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        if let Some(cutoff) = Instant::now().checked_sub(age) {
            gateway.hub.forget_before(cutoff);
            gateway.snapshots.forget_before(cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: &str, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ORIGIN,
            HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("")),
        );
        headers.insert(
            HOST,
            HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static("")),
        );
        headers
    }

    #[test]
    fn same_origin_and_allowed_origins_pass_others_do_not() {
        assert!(
            check_origin(&HeaderMap::new(), &[]).is_ok(),
            "no Origin: not a browser"
        );
        assert!(check_origin(&headers("http://127.0.0.1:8080", "127.0.0.1:8080"), &[]).is_ok());
        assert!(check_origin(&headers("https://evil.example", "127.0.0.1:8080"), &[]).is_err());
        assert!(check_origin(&headers("null", "127.0.0.1:8080"), &[]).is_err());
        let allowed = ["https://shop.example".parse().expect("an origin")];
        assert!(check_origin(&headers("https://shop.example", "api.example"), &allowed).is_ok());
        assert!(check_origin(&headers("https://other.example", "api.example"), &allowed).is_err());
    }

    #[tokio::test]
    async fn feed_queries_past_their_places_wait_for_one() {
        let hub = hub::Hub::start(hub::Windows::default(), Duration::from_secs(5)).expect("a hub");
        let gateway = Gateway::start(
            hub,
            GatewaySettings {
                database_queries: 1,
                ..GatewaySettings::default()
            },
        );
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let gateway = Arc::clone(&gateway);
            async move {
                gateway
                    .query(async {
                        let _ = released.await;
                        Ok::<_, StoreError>("first")
                    })
                    .await
            }
        });
        for _ in 0..1_000 {
            if gateway.queries.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let second = tokio::spawn({
            let (gateway, started) = (Arc::clone(&gateway), Arc::clone(&started));
            async move {
                gateway
                    .query(async {
                        started.store(true, Ordering::SeqCst);
                        Ok::<_, StoreError>("second")
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!started.load(Ordering::SeqCst), "ran beside the first");
        let _ = release.send(());
        assert_eq!(first.await.expect("a task").expect("a result"), "first");
        assert_eq!(second.await.expect("a task").expect("a result"), "second");
    }
}
