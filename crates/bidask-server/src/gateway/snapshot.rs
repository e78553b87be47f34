//! A product's `subscribed` snapshot, read from the committed replica (never
//! from the engine, which may hold results not yet committed).
//!
//! The snapshot holds the whole book, so serializing it can cost far more
//! than the event stream does; the latest one of each product is kept, and
//! every subscriber that joins before the product's next event shares its
//! serialization and its bytes (the visitors of a page that just went
//! viral, or every client reconnecting after a restart).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::http::AppState;
use crate::market::replica::Level;

/// The latest serialized snapshot per product.
#[derive(Debug, Default)]
pub struct Snapshots {
    latest: Mutex<HashMap<i64, (i64, Utf8Bytes)>>,
}

impl Snapshots {
    /// `{product_id, markets: [{size, bids, asks, last_sale}]}` as JSON,
    /// and the `seq` it is current to; `None` for an unknown product.
    pub fn product(&self, state: &AppState, product_id: i64) -> Option<(i64, Utf8Bytes)> {
        // A snapshot made at the replica's current `seq` is that state
        // exactly, however long ago it was made.
        let seq = state.markets.replicas().seq(product_id)?;
        if let Some((cached, json)) = self.lock().get(&product_id)
            && *cached == seq
        {
            return Some((seq, json.clone()));
        }
        let (seq, snapshot) = serialize(state, product_id)?;
        let json = Utf8Bytes::from(snapshot.to_string());
        let mut latest = self.lock();
        let entry = latest
            .entry(product_id)
            .or_insert_with(|| (seq, json.clone()));
        if entry.0 < seq {
            *entry = (seq, json.clone());
        }
        Some((seq, json))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, Utf8Bytes)>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn serialize(state: &AppState, product_id: i64) -> Option<(i64, Value)> {
    let product = state.catalog.get(product_id)?;
    let (seq, markets) = state.markets.replicas().snapshot(product_id)?;
    let price = |ticks: u64| product.format_ticks(i64::try_from(ticks).unwrap_or(i64::MAX));
    let levels = |levels: &[Level]| -> Vec<Value> {
        levels
            .iter()
            .map(|level| {
                json!({"price": price(level.ticks), "quantity": level.quantity, "orders": level.orders})
            })
            .collect()
    };
    let markets: Vec<Value> = product
        .sizes
        .iter()
        .zip(&markets)
        .map(|(size, market)| {
            json!({
                "size": size,
                "bids": levels(&market.bids),
                "asks": levels(&market.asks),
                "last_sale": market.last_sale.map(price),
            })
        })
        .collect();
    Some((seq, json!({"product_id": product_id, "markets": markets})))
}
