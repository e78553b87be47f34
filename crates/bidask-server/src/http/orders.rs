//! Placing, listing, amending and cancelling orders.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bidask_engine::{MAX_PRICE, PriceError, Quantity, Side, TimeInForce};
use bidask_store::reads::Page as StorePage;
use bidask_store::{IdempotencyRecord, OrderRecord};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::decimal::{StringOrNumber, Unreadable, decimal, string_or_number};
use super::error::{ApiError, ErrorBody};
use super::extract::User;
use super::json::{self, PathId, Query};
use super::{AppState, Page, page_cursor, page_limit};
use crate::catalog::Product;
use crate::clock::{DAY, now_micros, parse_rfc3339};
use crate::market::actor::{Expiry, MarketError, PlaceOrder, Request, side_name};
use crate::market::unit::{Committed, IdempotencyDraft};
use crate::views::{AmendedOrder, CancelledOrder, OrderView, PlacedOrder};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bids", post(place_bid))
        .route("/asks", post(place_ask))
        .route("/orders", get(list))
        .route("/orders/{id}", get(show).patch(amend).delete(cancel))
}

/// How long an order rests when the request does not say.
const DEFAULT_LIFETIME: i64 = 30 * DAY;
/// The OpenAPI descriptions the two ways of placing an order share.
const PLACED: &str =
    "The order after matching, its trades and the product feed's `seq`, all committed.";
const PLACE_CONFLICT: &str = "The caller has too many resting orders (`too_many_open_orders`), or the \
    `Idempotency-Key` was used with another body (`idempotency_key_reused`) or by a request still running \
    (`idempotency_key_in_use`).";
/// Another user's order is as unknown as one that does not exist.
const NOT_YOURS: &str = "No such order of the caller's (`not_found`), whoever else's it may be.";
/// The longest an order may rest.
const MAX_LIFETIME: i64 = 365 * DAY;
/// How long an idempotency key is remembered.
const KEY_LIFETIME: i64 = DAY;

/// A new bid or ask.
#[derive(Deserialize, ToSchema)]
pub struct PlaceBody {
    /// The product to trade.
    product_id: i64,
    /// A string or a number, one of the product's sizes.
    size: StringOrNumber,
    /// A decimal string or number, e.g. `"210.00"`.
    price: StringOrNumber,
    /// Units, 1 by default (sneakers are one pair).
    quantity: Option<i64>,
    /// `gtc` by default: rest until filled, cancelled or `expires_at`.
    time_in_force: Option<TimeInForceBody>,
    /// RFC 3339; a resting order leaves the book then (default: 30 days
    /// after placement, at most 365).
    expires_at: Option<String>,
}

/// `gtc` (default), `ioc` or `fok`.
#[derive(Deserialize, Clone, Copy, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForceBody {
    /// Good till cancelled (or expired).
    Gtc,
    /// Immediate or cancel: trade what crosses now, cancel the rest.
    Ioc,
    /// Fill or kill: all of it now, or nothing.
    Fok,
}

#[utoipa::path(post, path = "/api/v1/bids", tag = "orders", operation_id = "place_bid", security(("bearer" = [])),
    request_body = PlaceBody, params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = PLACED, body = PlacedOrder,
            headers(("Location" = String, description = "The order's address, `/api/v1/orders/{id}`."))),
        (status = 409, description = PLACE_CONFLICT, body = ErrorBody)))]
async fn place_bid(
    state: State<AppState>,
    user: User,
    headers: HeaderMap,
    body: Result<json::Body, ApiError>,
) -> Result<Response, ApiError> {
    counted(place(state, user, headers, body, Side::Bid).await)
}

#[utoipa::path(post, path = "/api/v1/asks", tag = "orders", operation_id = "place_ask", security(("bearer" = [])),
    request_body = PlaceBody, params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = PLACED, body = PlacedOrder,
            headers(("Location" = String, description = "The order's address, `/api/v1/orders/{id}`."))),
        (status = 409, description = PLACE_CONFLICT, body = ErrorBody)))]
async fn place_ask(
    state: State<AppState>,
    user: User,
    headers: HeaderMap,
    body: Result<json::Body, ApiError>,
) -> Result<Response, ApiError> {
    counted(place(state, user, headers, body, Side::Ask).await)
}

/// Counts refused orders by reason. (Requests refused for their token
/// never reach the handler; they count in the per-route metric by status.)
fn counted(result: Result<Response, ApiError>) -> Result<Response, ApiError> {
    if let Err(error) = &result {
        metrics::counter!("bidask_orders_rejected_total", "reason" => error.code().to_owned())
            .increment(1);
    }
    result
}

fn quantity(value: i64) -> Result<Quantity, ApiError> {
    u32::try_from(value)
        .ok()
        .and_then(|units| Quantity::new(units).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "quantity",
                "quantity must be a whole number from 1 to 10000",
            )
        })
}

fn price(product: &Product, raw: &RawValue) -> Result<bidask_engine::Price, ApiError> {
    let value = decimal(raw).map_err(|unreadable| {
        let message = match unreadable {
            Unreadable::NotANumber => "price must be a decimal such as \"210.00\"".to_owned(),
            Unreadable::TooManyDigits => format!(
                "price must be greater than zero, at most {MAX_PRICE}, and a multiple of the \
                 tick size {}",
                product.tick_size()
            ),
        };
        ApiError::invalid("price", message)
    })?;
    product.price(value).map_err(|error| match error {
        // The tick as the product shows it ("5.00", not "5").
        PriceError::OffTick(_) => ApiError::invalid(
            "price",
            format!(
                "price must be a multiple of the tick size {}",
                product.tick_size()
            ),
        ),
        other => ApiError::invalid("price", other),
    })
}

async fn place(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    body: Result<json::Body, ApiError>,
    side: Side,
) -> Result<Response, ApiError> {
    let json::Body(body) = body?;
    let Some(key) = idempotency_key(&headers)? else {
        let order = parse_order(&state, user, &body, side, None)?;
        return submit(&state, order).await;
    };
    // The key is claimed before anything else, and the rest runs in a task
    // of its own that holds it: a client that disconnects cannot cancel the
    // request half-way, and its retry finds the key in use or the stored
    // response, never a second order.
    let guard = KeyGuard::claim(&state, user.id, &key)?;
    let task = tokio::spawn(async move {
        let _guard = guard;
        let request_hash = request_hash(side, &body);
        let since = now_micros() - KEY_LIFETIME;
        match state.store.idempotency(user.id, &key).await? {
            Some(stored) if stored.created_at < since => {
                state.store.forget_idempotency(user.id, &key, since).await?;
            }
            Some(stored) => return replay(stored, &request_hash, side, &body),
            None => {}
        }
        let draft = IdempotencyDraft {
            user_id: user.id,
            key,
            request_hash,
        };
        let order = parse_order(&state, user, &body, side, Some(draft.clone()))?;
        match submit(&state, order).await {
            Err(
                refusal @ ApiError::Conflict {
                    code: "too_many_open_orders",
                    ..
                },
            ) => {
                let hash = draft.request_hash.clone();
                let first = remember(&state, draft, refusal).await?;
                replay(first, &hash, side, &body)
            }
            answered => answered,
        }
    });
    task.await
        .map_err(|error| ApiError::Internal(format!("order task: {error}")))?
}

/// Stores a refusal that rests on the market's state (the bound on open
/// orders) as the key's first response, as a 201 is stored: a retry gets
/// the same 409 instead of an order once there is room, which would be
/// something new placed under a key that was answered. Refusals of the
/// request itself (422) are not stored: a retry gets them again anyway;
/// nor are 503s, whose request may have landed.
///
/// Returns the key's first response: this refusal, or, when the key turns
/// out to hold one already, that one (an earlier attempt answered 503
/// whose order landed meanwhile, which may be why this one was refused).
async fn remember(
    state: &AppState,
    draft: IdempotencyDraft,
    refusal: ApiError,
) -> Result<IdempotencyRecord, ApiError> {
    let (status, response) = refusal.to_stored();
    let record = IdempotencyRecord {
        user_id: draft.user_id,
        key: draft.key,
        request_hash: draft.request_hash,
        status: i64::from(status.as_u16()),
        response,
        created_at: now_micros(),
    };
    if state.store.remember_idempotency(&record).await? {
        return Ok(record);
    }
    Ok(state
        .store
        .idempotency(record.user_id, &record.key)
        .await?
        .unwrap_or(record))
}

/// The stored first response to a key, for a retry of the same request.
/// A key stored before retries were compared as orders holds the hash of
/// the bytes, which a retry sent as before still matches.
fn replay(
    stored: IdempotencyRecord,
    request_hash: &str,
    side: Side,
    body: &[u8],
) -> Result<Response, ApiError> {
    if stored.request_hash != request_hash && stored.request_hash != bytes_hash(side, body) {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        ));
    }
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::CREATED);
    if status == StatusCode::CREATED {
        // Only the body was stored; the order's id is in it.
        let order_id = serde_json::from_str::<StoredPlacement>(&stored.response)
            .ok()
            .map(|placement| placement.order.id);
        return Ok(placed(order_id, stored.response));
    }
    Ok(json_response(status, stored.response))
}

/// What a replay reads of a stored 201.
#[derive(Deserialize)]
struct StoredPlacement {
    /// The order placed, as stored since the first version.
    order: StoredOrder,
}

/// Of the stored order, its id only.
#[derive(Deserialize)]
struct StoredOrder {
    /// For the replay's `Location`.
    id: i64,
}

/// What identifies a request under its idempotency key: the order it
/// asks for, as parsed, so that a client that serializes its retry anew
/// (other key order or spacing, `250` for `"250.00"`, an explicit
/// `"quantity": 1`, a field the API ignores) retries the same order. An
/// omitted `expires_at` stays apart from any given one: it means 30 days
/// from placement. A body that is no order object is taken as sent.
fn request_hash(side: Side, body: &[u8]) -> String {
    // An array would fill the struct by position, which the order parser
    // refuses: it must not stand for an order here either.
    let object = body.trim_ascii_start().starts_with(b"{");
    let Some(order) = object
        .then(|| serde_json::from_slice::<PlaceBody>(body).ok())
        .flatten()
    else {
        return bytes_hash(side, body);
    };
    // Each field is either what it parsed to or, tagged apart, what was
    // sent: a value that does not parse never reads as one that does.
    let size = string_or_number(&order.size).ok_or_else(|| order.size.get().to_owned());
    let price = decimal(&order.price)
        .map(|price| price.normalize().to_string())
        .map_err(|_| order.price.get().to_owned());
    let time_in_force = match order.time_in_force.unwrap_or(TimeInForceBody::Gtc) {
        TimeInForceBody::Gtc => "gtc",
        TimeInForceBody::Ioc => "ioc",
        TimeInForceBody::Fok => "fok",
    };
    let expires_at = order
        .expires_at
        .map(|text| parse_rfc3339(&text).ok_or(text));
    // Debug formatting quotes strings, so each field keeps its bounds.
    let canonical = format!(
        "\0order {} {size:?} {price:?} {} {time_in_force} {expires_at:?}",
        order.product_id,
        order.quantity.unwrap_or(1),
    );
    let mut digest = Sha256::new();
    digest.update(side_name(side).as_bytes());
    digest.update(canonical.as_bytes());
    format!("sha256:{:x}", digest.finalize())
}

/// The side and the body exactly as sent: how keys were compared before
/// they were compared as orders, and how a body that is no order still is.
fn bytes_hash(side: Side, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(side_name(side).as_bytes());
    digest.update(b"\n");
    digest.update(body);
    format!("sha256:{:x}", digest.finalize())
}

/// Parses and checks an order body: every 4xx is decided here.
fn parse_order(
    state: &AppState,
    user: User,
    body: &[u8],
    side: Side,
    idempotency: Option<IdempotencyDraft>,
) -> Result<(i64, PlaceOrder), ApiError> {
    let body: PlaceBody = json::parse(body)?;
    let product = state
        .catalog
        .get(body.product_id)
        .ok_or_else(|| ApiError::invalid("product_id", "no product has this id"))?;
    let size = string_or_number(&body.size)
        .ok_or_else(|| ApiError::invalid("size", "size must be a string such as \"10.5\""))?;
    let market = product
        .market(&size)
        .ok_or_else(|| ApiError::invalid("size", format!("the product has no size {size}")))?;
    let price = price(&product, &body.price)?;
    let quantity = quantity(body.quantity.unwrap_or(1))?;
    let time_in_force = match body.time_in_force.unwrap_or(TimeInForceBody::Gtc) {
        TimeInForceBody::Gtc => TimeInForce::GoodTillCancelled,
        TimeInForceBody::Ioc => TimeInForce::ImmediateOrCancel,
        TimeInForceBody::Fok => TimeInForce::FillOrKill,
    };
    let now = now_micros();
    let expiry = match &body.expires_at {
        // Counted by the market from the order's `created_at`, so that an
        // order's default lifetime is exactly 30 days.
        None => Expiry::After(DEFAULT_LIFETIME),
        Some(text) => {
            let at = parse_rfc3339(text).ok_or_else(|| {
                ApiError::invalid("expires_at", "expires_at must be an RFC 3339 time")
            })?;
            if at <= now {
                return Err(ApiError::invalid(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            if at > now + MAX_LIFETIME {
                return Err(ApiError::invalid(
                    "expires_at",
                    "expires_at must be at most 365 days away",
                ));
            }
            Expiry::At(at)
        }
    };
    Ok((
        product.id,
        PlaceOrder {
            user_id: user.id,
            market,
            side,
            price,
            quantity,
            time_in_force,
            expiry,
            idempotency,
        },
    ))
}

/// Sends a checked order to its product's actor and answers with the
/// committed result.
async fn submit(
    state: &AppState,
    (product_id, order): (i64, PlaceOrder),
) -> Result<Response, ApiError> {
    let committed = state
        .markets
        .request(product_id, |reply| Request::Place { order, reply })
        .await?;
    metrics::counter!("bidask_orders_accepted_total").increment(1);
    Ok(placed(
        committed.order_id,
        committed.body.unwrap_or_default(),
    ))
}

/// A 201 with the new order's address (RFC 9110, 15.3.2), where a client
/// reads it again.
fn placed(order_id: Option<i64>, body: String) -> Response {
    let mut response = json_response(StatusCode::CREATED, body);
    if let Some(location) =
        order_id.and_then(|id| HeaderValue::try_from(format!("/api/v1/orders/{id}")).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Which of two keys the client meant is not for the server to guess:
    // a retry sent with the other would place the order again.
    if values.next().is_some() {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "send one Idempotency-Key header",
        ));
    }
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| {
            (1..=255).contains(&key.len()) && key.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "the key must be 1 to 255 visible ASCII characters",
            )
        })
}

/// Marks a key as in use until the request that claimed it ends.
struct KeyGuard {
    state: AppState,
    key: (i64, String),
}

impl KeyGuard {
    fn claim(state: &AppState, user_id: i64, key: &str) -> Result<Self, ApiError> {
        let key = (user_id, key.to_owned());
        let fresh = state
            .keys_in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone());
        if !fresh {
            return Err(ApiError::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed",
            ));
        }
        Ok(Self {
            state: state.clone(),
            key,
        })
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.state
            .keys_in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    product_id: Option<i64>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    operation_id = "list_orders",
    params(("status" = Option<String>, Query), ("product_id" = Option<i64>, Query), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Items on a page, 50 by default."), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "The caller's orders, newest first.", body = Page<OrderView>)))]
async fn list(
    State(state): State<AppState>,
    user: User,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<OrderView>>, ApiError> {
    if let Some(status) = &query.status
        && !["open", "partially_filled", "filled", "cancelled", "expired"]
            .contains(&status.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            "status must be open, partially_filled, filled, cancelled or expired",
        ));
    }
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref())?;
    let records = state
        .store
        .user_orders(
            user.id,
            query.status.as_deref(),
            query.product_id,
            StorePage { before, limit },
        )
        .await?;
    let last = records.last().map(|record| record.id);
    // Products are never deleted: one missing is a broken catalog, as in
    // `own_order`, not a record to leave out (which would also end the
    // pages early).
    let items = records
        .iter()
        .map(|record| {
            state
                .catalog
                .get(record.product_id)
                .map(|product| OrderView::new(record, &product))
                .ok_or_else(|| {
                    ApiError::Internal(format!("order {} of unknown product", record.id))
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(Page::new(items, limit, last)))
}

/// The caller's order `id`: anyone else's is 404, like one that does not exist.
async fn own_order(
    state: &AppState,
    user: User,
    id: &str,
) -> Result<(OrderRecord, Arc<Product>), ApiError> {
    let not_found = ApiError::NotFound("no such order");
    let Ok(id) = id.parse::<i64>() else {
        return Err(not_found);
    };
    let order = state
        .store
        .order(id)
        .await?
        .ok_or(ApiError::NotFound("no such order"))?;
    if order.user_id != user.id {
        return Err(not_found);
    }
    let product = state
        .catalog
        .get(order.product_id)
        .ok_or_else(|| ApiError::Internal(format!("order {id} of unknown product")))?;
    Ok((order, product))
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", operation_id = "show_order", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "One of the caller's orders.", body = OrderView),
        (status = 404, description = NOT_YOURS, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    user: User,
    PathId(id): PathId,
) -> Result<Json<OrderView>, ApiError> {
    let (order, product) = own_order(&state, user, &id).await?;
    Ok(Json(OrderView::new(&order, &product)))
}

fn ensure_open(order: &OrderRecord) -> Result<(), ApiError> {
    if matches!(order.status.as_str(), "open" | "partially_filled") {
        Ok(())
    } else {
        Err(not_open(&order.status))
    }
}

fn not_open(status: &str) -> ApiError {
    ApiError::conflict("order_not_open", format!("the order is already {status}"))
}

/// A new price, a new total quantity, or both.
#[derive(Deserialize, ToSchema)]
pub struct AmendBody {
    /// A new limit price; the order loses its time priority.
    price: Option<StringOrNumber>,
    /// A new total quantity, not below what already traded; a lower one keeps
    /// the order's time priority.
    quantity: Option<i64>,
}

#[utoipa::path(patch, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    operation_id = "amend_order", request_body = AmendBody,
    responses((status = 200, description = "The order as amended, and the trades the new price made.", body = AmendedOrder),
        (status = 404, description = NOT_YOURS, body = ErrorBody),
        (status = 409, description = "The order no longer rests (`order_not_open`).", body = ErrorBody)))]
async fn amend(
    State(state): State<AppState>,
    user: User,
    PathId(id): PathId,
    json::Json(body): json::Json<AmendBody>,
) -> Result<Response, ApiError> {
    if body.price.is_none() && body.quantity.is_none() {
        return Err(ApiError::invalid("body", "send price, quantity or both"));
    }
    let new_quantity = body.quantity.map(quantity).transpose()?;
    let committed = on_open_order(&state, user, &id, |order_id, product| {
        let new_price = body
            .price
            .as_deref()
            .map(|raw| price(product, raw))
            .transpose()?;
        Ok(move |reply| Request::Amend {
            order_id,
            user_id: user.id,
            price: new_price,
            quantity: new_quantity,
            reply,
        })
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        committed.body.unwrap_or_default(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = i64, Path)),
    operation_id = "cancel_order",
    responses((status = 200, description = "The order, cancelled.", body = CancelledOrder),
        (status = 404, description = NOT_YOURS, body = ErrorBody),
        (status = 409, description = "The order no longer rests (`order_not_open`).", body = ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    user: User,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let committed = on_open_order(&state, user, &id, |order_id, _| {
        Ok(move |reply| Request::Cancel {
            order_id,
            user_id: user.id,
            reply,
        })
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        committed.body.unwrap_or_default(),
    ))
}

/// Sends the request `make` builds to the actor of the caller's open order
/// `id`. The resting index finds the order's product without a database
/// read (the actor checks the owner); when the index does not know the
/// order, or the actor no longer has it, the orders that finished recently
/// and then the database decide between 404 (none of the caller's) and 409
/// (already done).
async fn on_open_order<R>(
    state: &AppState,
    user: User,
    id: &str,
    make: impl Fn(i64, &Product) -> Result<R, ApiError>,
) -> Result<Committed, ApiError>
where
    R: FnOnce(oneshot::Sender<Result<Committed, MarketError>>) -> Request,
{
    let Ok(order_id) = id.parse::<i64>() else {
        return Err(ApiError::NotFound("no such order"));
    };
    // A request that does not parse goes the database way too, which
    // checks the owner first: its 422 must not tell others that an order
    // rests.
    if let Some((product, request)) = state
        .markets
        .resting_product(order_id)
        .and_then(|product_id| state.catalog.get(product_id))
        .and_then(|product| Some((product.id, make(order_id, &product).ok()?)))
    {
        match state.markets.request(product, request).await {
            Err(MarketError::NotOpen) => {}
            outcome => return outcome.map_err(ApiError::from),
        }
    }
    match state.markets.finished(order_id) {
        Some(finished) if finished.user_id == user.id => {
            return Err(not_open(finished.status));
        }
        Some(_) => return Err(ApiError::NotFound("no such order")),
        None => {}
    }
    let (order, product) = own_order(state, user, id).await?;
    ensure_open(&order)?;
    Ok(state
        .markets
        .request(product.id, make(order.id, &product)?)
        .await?)
}
