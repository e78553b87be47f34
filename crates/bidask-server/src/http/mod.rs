//! The REST API: shared state, the router, and the layers around it.
//!
//! Each route module exposes `router()`; [`router`] merges them under
//! `/api/v1` beside the operational endpoints.

pub mod account;
pub mod decimal;
pub mod error;
pub mod extract;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod products;
pub mod users;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bidask_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::auth::Tokens;
use crate::catalog::Catalog;
use crate::market::Markets;
use crate::origin::AllowedOrigin;
use error::ApiError;

/// Limits of the API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Browser origins allowed to call the API (empty: same origin only).
    pub allowed_origins: Vec<AllowedOrigin>,
    /// Longest a request may take before it is answered 503 (or 408, when
    /// its body had not all arrived).
    pub request_timeout: Duration,
}

/// What every handler can reach. axum clones the state for every
/// extractor of every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppContext>);

impl AppState {
    /// The state of an application.
    pub fn new(context: AppContext) -> Self {
        Self(Arc::new(context))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppContext {
    /// The database, for reads and accounts.
    pub store: Store,
    /// Products in memory.
    pub catalog: Arc<Catalog>,
    /// The market actors and the writer.
    pub markets: Arc<Markets>,
    /// Token issuing and verification.
    pub tokens: Tokens,
    /// Prometheus text for `/metrics`.
    pub metrics: PrometheusHandle,
    /// The token key of each user known to exist, so that a valid token
    /// of a user the database does not have, or of another account than
    /// the one with its id now, is refused before any of its orders reach
    /// a batch. Keys change only at start-up (the admin's password reset),
    /// before this is filled.
    pub known_users: Arc<Mutex<HashMap<i64, i64>>>,
    /// Idempotency keys whose first request is still running: a second
    /// request with the same key waits for nothing and gets 409.
    pub keys_in_flight: Arc<Mutex<HashSet<(i64, String)>>>,
    /// Requests per second per user and per client address.
    pub limits: Arc<limits::RateLimits>,
    /// Whose `X-Forwarded-For` names the client.
    pub proxies: crate::proxies::TrustedProxies,
    /// The WebSocket feed.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// One product creation at a time, so a duplicate SKU is caught before
    /// it reaches a batch.
    pub catalog_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The whole application's router.
pub fn router(state: AppState, settings: &ApiSettings) -> Router {
    let api = Router::new()
        .merge(users::router())
        .merge(products::router())
        .merge(orders::router())
        .merge(account::router())
        .merge(crate::gateway::api_router());
    // Answers carry tokens and a trader's own orders: no cache keeps
    // them (RFC 6749, section 5.1, for the tokens), and none is read as
    // anything but what it says it is.
    let api = api
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::router())
        .merge(crate::gateway::router())
        .merge(crate::web::router())
        .merge(openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost, so that the 500 goes out through every layer below:
        // CORS (a page may read it), the request id, the trace.
        .layer(CatchPanicLayer::custom(panicked))
        // Every route: the feed's upgrade, the page and the operational
        // endpoints cost the server as much as the API's.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_address,
        ))
        // Around the fallbacks too: a preflight is an `OPTIONS` request,
        // which no route takes, so CORS must answer it before they do;
        // and around the rate limit, so a page of an allowed origin can
        // read its 429.
        .layer(cors(settings))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(Extension(json::BodyLimit(settings.body_limit)))
        .layer(middleware::from_fn_with_state(
            settings.request_timeout,
            bound_time,
        ))
        .layer(middleware::from_fn(record_latency))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default();
                    // The path only: `/ws?token=…` carries a credential in
                    // its query string, and logs are not the place for it.
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                // Every 5xx gets a line, but the errors worth waking
                // someone for (a bug's 500) log their cause at ERROR
                // themselves; a 503 from shedding load or from a database
                // outage is a warning, not one error per refused request.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn(bound_request_id))
        .with_state(state)
}

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// Keeps a client's `x-request-id` only if it is one header of 1 to
/// [`MAX_REQUEST_ID`] visible ASCII characters; otherwise the server makes
/// its own. The id is echoed and written into every log line of the
/// request, which a client's 500-character id would fill.
async fn bound_request_id(mut request: Request, next: Next) -> Response {
    let mut ids = request.headers().get_all("x-request-id").iter();
    let fitting = match (ids.next(), ids.next()) {
        (Some(id), None) => {
            (1..=MAX_REQUEST_ID).contains(&id.len())
                && id.as_bytes().iter().all(u8::is_ascii_graphic)
        }
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !fitting {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

fn cors(settings: &ApiSettings) -> CorsLayer {
    let origins = &settings.allowed_origins;
    let allow_origin = if origins.contains(&AllowedOrigin::Any) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| match origin {
            AllowedOrigin::Exact(exact) => Some(exact.clone()),
            AllowedOrigin::Any => None,
        }))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        // A page must read when to retry a 429, the id to quote, and
        // where a 201's new order or product is.
        .expose_headers([
            axum::http::header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            axum::http::header::LOCATION,
        ])
        .max_age(Duration::from_secs(600))
}

/// Answers 503 for a request that is not done within `limit`, or 408 if
/// it was the client that was slow: its body had not all arrived.
///
/// Reads take a pooled connection without testing it first, so against a
/// database that stopped answering (rather than refusing connections) a
/// query would wait as long as TCP does. Dropping the handler stops the
/// wait; the connection goes back to the pool, whose test of it waits in
/// the background, so once every connection is stuck like that, reads
/// fail on the pool's 2 s acquire bound instead. A WebSocket is not held:
/// its upgrade answers at once and the connection lives on in a task of
/// its own. An order whose reply timed out may still commit, as after any
/// lost reply; an `Idempotency-Key` makes its retry safe. One whose body
/// did not arrive was never sent to a market, so nothing was done.
async fn bound_time(State(limit): State<Duration>, mut request: Request, next: Next) -> Response {
    let reading = json::BodyReading::default();
    request.extensions_mut().insert(reading.clone());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        // Inside the request's span, which names its method and path.
        Err(_) if reading.unfinished() => {
            tracing::info!(?limit, "request body not received in time; answering 408");
            metrics::counter!("bidask_http_timeouts_total", "waiting_for" => "client").increment(1);
            let mut response = ApiError::BodyTimeout(limit).into_response();
            // The rest of the body may still come; hyper closes the
            // connection rather than read it, and says so (RFC 9110, 15.5.9).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(_) => {
            tracing::warn!(?limit, "request timed out; answering 503");
            metrics::counter!("bidask_http_timeouts_total", "waiting_for" => "server").increment(1);
            ApiError::Unavailable.into_response()
        }
    }
}

/// A handler that panicked answers the contract's 500, logged with the
/// request's span, instead of a connection closed without a word. No
/// request should reach a panic; this is for the one that does.
fn panicked(cause: Box<dyn std::any::Any + Send>) -> Response {
    let message = cause
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    ApiError::Internal(format!("a handler panicked: {message}")).into_response()
}

/// Records every request's latency per route and status.
async fn record_latency(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    metrics::histogram!(
        "bidask_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// A request's method as a metrics label. Any token is a valid method to
/// the HTTP parser, and a label value that is new is a new series kept
/// for good: the ones the API does not use share one.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn not_found(State(_): State<AppState>) -> ApiError {
    ApiError::NotFound("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `limit` of list endpoints: at most 100, default 50.
pub fn page_limit(limit: Option<&str>) -> Result<i64, ApiError> {
    in_range("limit", limit, 1..=100, 50)
}

/// A number of the query string, `default` when not given. Read here from
/// the text, like `cursor`, so that every refusal gives the range: a
/// typed field would answer `limit=1e3` and `limit=99999999999999999999`
/// with the parser's words.
pub fn in_range<T>(
    field: &'static str,
    text: Option<&str>,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T, ApiError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse::<T>()
        .ok()
        .filter(|value| range.contains(value))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field} must be from {} to {}", range.start(), range.end()),
            )
        })
}

/// A `cursor` of a newest-first list: the last id of the previous page.
pub fn page_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "cursor must come from next_cursor"))
        })
        .transpose()
}

/// `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// This page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` that asked for `limit`; when full, the next page
    /// starts after `last`.
    pub fn new(items: Vec<T>, limit: i64, last: Option<i64>) -> Self {
        let full = i64::try_from(items.len()).is_ok_and(|len| len == limit);
        Self {
            items,
            next_cursor: last.filter(|_| full).map(|id| id.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_the_contracts_500() {
        async fn broken() -> &'static str {
            panic!("a bug")
        }
        let router = Router::new()
            .route("/broken", get(broken))
            .layer(CatchPanicLayer::custom(panicked));
        let request = Request::get("/broken")
            .body(Body::empty())
            .expect("a request");
        let response = router.oneshot(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4_096)
            .await
            .expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(
            !body.to_string().contains("a bug"),
            "the cause leaked: {body}"
        );
    }
}
