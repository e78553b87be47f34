//! A product's `subscribed` snapshot, read from the committed replica (never
//! from the engine, which may hold results not yet committed).
//!
//! The snapshot holds the whole book, so making one can cost far more than
//! the event stream does. The latest one of each product is kept, and any
//! subscriber it is recent enough for shares its bytes; snapshots are made
//! one at a time, so a herd of subscribers (the visitors of a page that
//! just went viral, every client reconnecting after a restart) waits for
//! one and shares it, instead of each making its own.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::http::AppState;
use crate::market::replica::Level;

/// The latest serialized snapshot per product: one entry per product
/// subscribed to since the start, so bounded by the catalog.
#[derive(Debug, Default)]
pub struct Snapshots {
    latest: Mutex<HashMap<i64, (i64, Utf8Bytes)>>,
    /// Held while a snapshot is made.
    making: tokio::sync::Mutex<()>,
}

impl Snapshots {
    /// `{product_id, markets: [{size, bids, asks, last_sale}]}` as JSON,
    /// and the `seq` it is current to, which is at least `at_least`;
    /// `None` for an unknown product.
    ///
    /// A subscriber that joined the hub at `seq` n receives every event
    /// after n, so any snapshot current to n or later joins its stream
    /// without a gap: it need not be the newest.
    pub async fn product(
        &self,
        state: &AppState,
        product_id: i64,
        at_least: i64,
    ) -> Option<(i64, Utf8Bytes)> {
        if let Some(kept) = self.kept(product_id, at_least) {
            return Some(kept);
        }
        let _making = self.making.lock().await;
        // The one made while this waited will usually do.
        if let Some(kept) = self.kept(product_id, at_least) {
            return Some(kept);
        }
        let (seq, json) = serialize(state, product_id)?;
        let json = Utf8Bytes::from(json);
        let mut latest = self.lock();
        let entry = latest
            .entry(product_id)
            .or_insert_with(|| (seq, json.clone()));
        if entry.0 < seq {
            *entry = (seq, json.clone());
        }
        Some((seq, json))
    }

    fn kept(&self, product_id: i64, at_least: i64) -> Option<(i64, Utf8Bytes)> {
        self.lock()
            .get(&product_id)
            .filter(|(seq, _)| *seq >= at_least)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, Utf8Bytes)>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Serialize)]
struct ProductJson<'a> {
    product_id: i64,
    markets: Vec<MarketJson<'a>>,
}

#[derive(Serialize)]
struct MarketJson<'a> {
    size: &'a str,
    bids: Vec<LevelJson>,
    asks: Vec<LevelJson>,
    last_sale: Option<String>,
}

#[derive(Serialize)]
struct LevelJson {
    price: String,
    quantity: u64,
    orders: u32,
}

fn serialize(state: &AppState, product_id: i64) -> Option<(i64, String)> {
    let product = state.catalog.get(product_id)?;
    let (seq, markets) = state.markets.replicas().snapshot(product_id)?;
    let price = |ticks: u64| product.format_ticks(i64::try_from(ticks).unwrap_or(i64::MAX));
    let levels = |levels: &[Level]| -> Vec<LevelJson> {
        levels
            .iter()
            .map(|level| LevelJson {
                price: price(level.ticks),
                quantity: level.quantity,
                orders: level.orders,
            })
            .collect()
    };
    let snapshot = ProductJson {
        product_id,
        markets: product
            .sizes
            .iter()
            .zip(&markets)
            .map(|(size, market)| MarketJson {
                size: size.as_str(),
                bids: levels(&market.bids),
                asks: levels(&market.asks),
                last_sale: market.last_sale.map(price),
            })
            .collect(),
    };
    match serde_json::to_string(&snapshot) {
        Ok(json) => Some((seq, json)),
        Err(error) => {
            // Plain structs of strings and numbers always serialize.
            tracing::error!(%error, product_id, "a snapshot did not serialize");
            None
        }
    }
}
