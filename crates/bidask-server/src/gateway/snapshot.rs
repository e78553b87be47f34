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
use std::time::Instant;

use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::http::AppState;
use crate::market::replica::Level;

/// The latest serialized snapshot per product subscribed to lately: a
/// whole book each, let go once older than the hub's window age (see
/// [`Snapshots::forget_before`]).
#[derive(Debug, Default)]
pub struct Snapshots {
    latest: Mutex<HashMap<i64, Kept>>,
    /// Held while a snapshot is made.
    making: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Kept {
    made: Instant,
    seq: i64,
    json: Utf8Bytes,
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
        let kept = Kept {
            made: Instant::now(),
            seq,
            json: json.clone(),
        };
        let mut latest = self.lock();
        match latest.get_mut(&product_id) {
            Some(entry) if entry.seq >= seq => {}
            Some(entry) => *entry = kept,
            None => {
                latest.insert(product_id, kept);
            }
        }
        Some((seq, json))
    }

    /// Lets go of the snapshots made before `cutoff`. One is kept for the
    /// herd that subscribes at once; a product nobody has subscribed to
    /// for a while should not hold its whole book twice.
    pub fn forget_before(&self, cutoff: Instant) {
        let mut latest = self.lock();
        latest.retain(|_, kept| kept.made >= cutoff);
        let len = latest.len();
        if len * 4 <= latest.capacity() {
            latest.shrink_to(len * 2);
        }
    }

    fn kept(&self, product_id: i64, at_least: i64) -> Option<(i64, Utf8Bytes)> {
        self.lock()
            .get(&product_id)
            .filter(|kept| kept.seq >= at_least)
            .map(|kept| (kept.seq, kept.json.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Kept>> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn snapshots_older_than_the_age_are_let_go() {
        let snapshots = Snapshots::default();
        let now = Instant::now();
        let made_ago = |seconds| now.checked_sub(Duration::from_secs(seconds)).unwrap_or(now);
        for (product_id, made) in [(1, made_ago(30)), (2, made_ago(0))] {
            snapshots.lock().insert(
                product_id,
                Kept {
                    made,
                    seq: 7,
                    json: Utf8Bytes::from_static("{}"),
                },
            );
        }
        snapshots.forget_before(made_ago(10));
        assert!(snapshots.kept(1, 0).is_none(), "made 30 s ago");
        assert_eq!(snapshots.kept(2, 0).map(|(seq, _)| seq), Some(7));
    }
}
