//! A product's `subscribed` snapshot, read from the committed replica (never
//! from the engine, which may hold results not yet committed).

use serde_json::{Value, json};

use crate::http::AppState;
use crate::market::replica::Level;

/// `{product_id, markets: [{size, bids, asks, last_sale}]}` and the `seq`
/// it is current to; `None` for an unknown product.
pub fn product(state: &AppState, product_id: i64) -> Option<(i64, Value)> {
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
