//! The catalog: products, their markets, books and public matches.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use bidask_store::ProductRecord;
use bidask_store::reads::Page as StorePage;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decimal::{StringOrNumber, Unreadable, decimal, string_or_number};
use super::error::{ApiError, ErrorBody};
use super::extract::Admin;
use super::json::{self, PathId, Query};
use super::{AppState, Page, in_range, page_cursor, page_limit};
use crate::catalog::{InvalidTickSize, MIN_SCALE, Product, Size, is_hidden};
use crate::clock::{format_micros, now_micros};
use crate::views::MatchView;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(list).post(create))
        .route("/products/{id}", get(show))
        .route("/products/{id}/book", get(book))
        .route("/products/{id}/matches", get(matches))
}

/// One market of a product at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarketView {
    /// The market: one size of the product.
    size: Size,
    /// The best price a buyer offers now, or null with no bids.
    #[schema(required = true)]
    highest_bid: Option<String>,
    /// The best price a seller asks now, or null with no asks (Buy Now pays it).
    #[schema(required = true)]
    lowest_ask: Option<String>,
    /// The price of the last match, or null before the first.
    #[schema(required = true)]
    last_sale: Option<String>,
    /// Bids resting in this size.
    bid_count: u64,
    /// Asks resting in this size.
    ask_count: u64,
}

/// A product as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    /// The id of its `product:{id}` feed channel and of its orders.
    id: i64,
    /// The maker's style code, unique in the catalog.
    sku: String,
    /// Shown to people; `?q=` searches it, the brand and the sku.
    name: String,
    /// The maker, as shown to people.
    brand: String,
    /// Every price of this product is a multiple of it (`"0.01"` by default).
    tick_size: String,
    /// Its markets, in the order the admin listed them.
    sizes: Vec<Size>,
    /// RFC 3339, UTC, microseconds.
    created_at: String,
    /// Each size at a glance, in the order of `sizes`.
    markets: Vec<MarketView>,
    /// The product feed `seq` the market summaries are current to.
    seq: i64,
}

fn view(state: &AppState, product: &Product) -> ProductView {
    let (seq, summaries) = state
        .markets
        .replicas()
        .summaries(product.id)
        .unwrap_or_default();
    let price = |ticks: Option<u64>| {
        ticks.map(|ticks| product.format_ticks(ticks.try_into().unwrap_or(i64::MAX)))
    };
    ProductView {
        id: product.id,
        sku: product.sku.clone(),
        name: product.name.clone(),
        brand: product.brand.clone(),
        tick_size: product.tick_size(),
        sizes: product.sizes.clone(),
        created_at: format_micros(product.created_at),
        markets: product
            .sizes
            .iter()
            .enumerate()
            .map(|(market, size)| {
                let summary = summaries.get(market);
                MarketView {
                    size: size.clone(),
                    highest_bid: price(summary.and_then(|summary| summary.highest_bid)),
                    lowest_ask: price(summary.and_then(|summary| summary.lowest_ask)),
                    last_sale: price(summary.and_then(|summary| summary.last_sale)),
                    bid_count: summary.map_or(0, |summary| summary.bid_count),
                    ask_count: summary.map_or(0, |summary| summary.ask_count),
                }
            })
            .collect(),
        seq,
    }
}

fn product(state: &AppState, id: &str) -> Result<Arc<Product>, ApiError> {
    id.parse()
        .ok()
        .and_then(|id| state.catalog.get(id))
        .ok_or(ApiError::NotFound("no such product"))
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/products", tag = "products",
    operation_id = "list_products",
    params(("q" = Option<String>, Query), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Items on a page, 50 by default."), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "Products, newest first, each with its markets' summaries.", body = Page<ProductView>)))]
async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<ProductView>>, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref())?;
    let products = state.catalog.search(
        query.q.as_deref().filter(|q| !q.is_empty()),
        before,
        usize::try_from(limit).unwrap_or(50),
    );
    let last = products.last().map(|product| product.id);
    let items = products
        .iter()
        .map(|product| view(&state, product))
        .collect();
    Ok(Json(Page::new(items, limit, last)))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products", operation_id = "show_product", params(("id" = i64, Path)),
    responses((status = 200, description = "The product and its markets' summaries.", body = ProductView),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<ProductView>, ApiError> {
    let product = product(&state, &id)?;
    Ok(Json(view(&state, &product)))
}

/// A new product.
#[derive(Deserialize, ToSchema)]
pub struct NewProductBody {
    /// The maker's style code, unique: 1 to 64 characters, no control or
    /// invisible ones (as for `name` and `brand`).
    sku: String,
    /// 1 to 200 characters.
    name: String,
    /// 1 to 100 characters.
    brand: String,
    /// Strings or numbers, e.g. `["9", "9.5", 10]`.
    sizes: Vec<StringOrNumber>,
    /// Default `"0.01"`.
    tick_size: Option<StringOrNumber>,
}

#[utoipa::path(post, path = "/api/v1/products", tag = "products", security(("bearer" = [])),
    operation_id = "create_product", request_body = NewProductBody,
    responses((status = 201, description = "The product, created.", body = ProductView,
            headers(("Location" = String, description = "The product's address, `/api/v1/products/{id}`."))),
        (status = 403, description = "The caller is not an admin (`forbidden`).", body = ErrorBody),
        (status = 409, description = "A product with this SKU exists (`sku_taken`).", body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    _: Admin,
    json::Json(body): json::Json<NewProductBody>,
) -> Result<Created, ApiError> {
    let text = |field: &'static str, value: &str, max: usize| {
        let value = value.trim();
        if value.is_empty() || value.chars().count() > max {
            Err(ApiError::invalid(
                field,
                format!("{field} must be 1 to {max} characters"),
            ))
        } else if value.chars().any(is_hidden) {
            Err(ApiError::invalid(
                field,
                format!("{field} must not contain control, line-breaking or invisible characters"),
            ))
        } else {
            Ok(value.to_owned())
        }
    };
    let sku = text("sku", &body.sku, 64)?;
    let name = text("name", &body.name, 200)?;
    let brand = text("brand", &body.brand, 100)?;
    if body.sizes.is_empty() || body.sizes.len() > 100 {
        return Err(ApiError::invalid("sizes", "a product has 1 to 100 sizes"));
    }
    let mut sizes = Vec::with_capacity(body.sizes.len());
    for (index, raw) in body.sizes.iter().enumerate() {
        let field = format!("sizes[{index}]");
        let size = string_or_number(raw)
            .ok_or_else(|| ApiError::invalid(field.clone(), "a size is a string or a number"))?;
        let size = Size::parse(&size).map_err(|error| ApiError::invalid(field.clone(), error))?;
        if sizes.contains(&size) {
            return Err(ApiError::invalid(
                field,
                format!("size {} is listed twice", size.as_str()),
            ));
        }
        sizes.push(size);
    }
    let tick = match &body.tick_size {
        None => Decimal::new(1, MIN_SCALE),
        Some(raw) => decimal(raw).map_err(|unreadable| match unreadable {
            Unreadable::NotANumber => {
                ApiError::invalid("tick_size", "tick_size must be a decimal such as \"0.01\"")
            }
            Unreadable::TooManyDigits => ApiError::invalid("tick_size", InvalidTickSize),
        })?,
    };
    let (tick_units, scale) =
        Product::tick_parts(tick).map_err(|error| ApiError::invalid("tick_size", error))?;

    let _one_at_a_time = state.catalog_lock.lock().await;
    let taken = || ApiError::conflict("sku_taken", format!("a product with SKU {sku} exists"));
    // A creation answered 503 may have landed all the same. If this
    // request asks for exactly what is stored, it is that creation's
    // retry, and it gets the answer the first one should have.
    let is_retry = |stored: &ProductRecord| {
        stored.name == name
            && stored.brand == brand
            && stored
                .sizes
                .iter()
                .map(String::as_str)
                .eq(sizes.iter().map(Size::as_str))
            && (stored.tick_units, stored.scale) == (tick_units, scale)
    };
    if state.catalog.has_sku(&sku) {
        // The writer may have opened it, on reading back what landed,
        // before the retry came.
        let retried = state
            .markets
            .take_unanswered(&sku, is_retry)
            .and_then(|stored| state.catalog.get(stored.id));
        return match retried {
            Some(product) => Ok(created(&state, &product)),
            None => Err(taken()),
        };
    }
    // Or it is stored but was never opened, and inserting it again would
    // be refused by the database for as long as the server runs: it is
    // opened now.
    if let Some(stored) = state.store.product_by_sku(&sku).await? {
        let retried = is_retry(&stored);
        let product = state.markets.adopt(stored, false).await?;
        return if retried {
            Ok(created(&state, &product))
        } else {
            Err(taken())
        };
    }
    let record = ProductRecord {
        id: state.markets.next_product_id(),
        sku,
        name,
        brand,
        tick_units,
        scale,
        sizes: sizes.iter().map(|size| size.as_str().to_owned()).collect(),
        created_at: now_micros(),
    };
    let product = state.markets.create_product(record).await?;
    Ok(created(&state, &product))
}

/// A 201 with the product and its address (RFC 9110, 15.3.2).
type Created = (StatusCode, [(HeaderName, String); 1], Json<ProductView>);

fn created(state: &AppState, product: &Product) -> Created {
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/products/{}", product.id))],
        Json(view(state, product)),
    )
}

#[derive(Deserialize)]
struct BookQuery {
    size: Option<String>,
    depth: Option<String>,
}

/// One price level.
#[derive(Serialize, ToSchema)]
pub struct LevelView {
    /// The level's price, a decimal string at the product's scale.
    price: String,
    /// Units resting at this price.
    quantity: u64,
    /// Orders resting at this price.
    orders: u32,
}

/// A market's book as of `seq`.
#[derive(Serialize, ToSchema)]
pub struct BookView {
    /// The product.
    product_id: i64,
    /// The market.
    size: String,
    /// The product feed `seq` this book is current to: apply feed events after it.
    seq: i64,
    /// Best (highest) first.
    bids: Vec<LevelView>,
    /// Best (lowest) first.
    asks: Vec<LevelView>,
}

#[utoipa::path(get, path = "/api/v1/products/{id}/book", tag = "products",
    operation_id = "product_book",
    params(("id" = i64, Path), ("size" = String, Query), ("depth" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Price levels a side, 50 by default.")),
    responses((status = 200, description = "One size's book, best levels first, with the product feed's `seq` it is current to.", body = BookView),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 422, description = "No such size, or a depth out of range (`validation_failed`).", body = ErrorBody)))]
async fn book(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(query): Query<BookQuery>,
) -> Result<Json<BookView>, ApiError> {
    let product = product(&state, &id)?;
    let size = query
        .size
        .ok_or_else(|| ApiError::invalid("size", "size is required"))?;
    let market = product
        .market(&size)
        .ok_or_else(|| ApiError::invalid("size", "the product has no such size"))?;
    let depth = in_range("depth", query.depth.as_deref(), 1..=1_000_usize, 50)?;
    let (seq, bids, asks) = state
        .markets
        .replicas()
        .depth(product.id, usize::from(market.0), depth)
        .ok_or(ApiError::Unavailable)?;
    let levels = |levels: Vec<crate::market::replica::Level>| {
        levels
            .into_iter()
            .map(|level| LevelView {
                price: product.format_ticks(level.ticks.try_into().unwrap_or(i64::MAX)),
                quantity: level.quantity,
                orders: level.orders,
            })
            .collect()
    };
    Ok(Json(BookView {
        product_id: product.id,
        size,
        seq,
        bids: levels(bids),
        asks: levels(asks),
    }))
}

#[derive(Deserialize)]
struct MatchesQuery {
    size: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/products/{id}/matches", tag = "products",
    operation_id = "product_matches",
    params(("id" = i64, Path), ("size" = Option<String>, Query), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Items on a page, 50 by default."), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "The product's trades, or one size's, newest first.", body = Page<MatchView>),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody)))]
async fn matches(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(query): Query<MatchesQuery>,
) -> Result<Json<Page<MatchView>>, ApiError> {
    let product = product(&state, &id)?;
    let market = query
        .size
        .as_deref()
        .map(|size| {
            product
                .market(size)
                .map(|market| i64::from(market.0))
                .ok_or_else(|| ApiError::invalid("size", "the product has no such size"))
        })
        .transpose()?;
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref())?;
    let records = state
        .store
        .market_matches(product.id, market, StorePage { before, limit })
        .await?;
    let last = records.last().map(|record| record.id);
    let items = records
        .iter()
        .map(|record| MatchView::new(record, &product))
        .collect();
    Ok(Json(Page::new(items, limit, last)))
}
