//! The markets to trade on, read from the server's catalog before the
//! measured phase.
//!
//! The catalog is read defensively: a product's sizes may come as the
//! `sizes` list or only inside its `markets`, as strings or numbers, and
//! products the generator cannot price (an unreadable tick size) or size
//! are left out rather than failing the run.

use serde::Deserialize;
use serde_json::Value;

use crate::api::ApiClient;
use crate::error::LoadgenError;
use crate::price::TickSize;

/// Bounds the catalog walk: 10 pages of 100 products are more markets than
/// any load run needs.
const MAX_CATALOG_PAGES: usize = 10;

/// One product in one size, with the tick its prices must sit on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    /// The catalog id the order endpoints take.
    pub product_id: i64,
    /// Exactly as the catalog spelled it, so the server recognises it.
    pub size: String,
    /// The product's price step.
    pub tick: TickSize,
}

/// What the catalog walk found.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Products that had at least one usable size.
    pub products: usize,
    /// Every (product, size) pair of those products.
    pub markets: Vec<Market>,
}

/// A page of `GET /products`, as loosely as the generator can read it.
#[derive(Debug, Deserialize)]
struct ProductPage {
    #[serde(default)]
    items: Option<Vec<ProductEntry>>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProductEntry {
    id: i64,
    #[serde(default)]
    sizes: Option<Vec<Value>>,
    #[serde(default)]
    markets: Option<Vec<MarketEntry>>,
    #[serde(default)]
    tick_size: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct MarketEntry {
    #[serde(default)]
    size: Option<Value>,
}

/// Walks the catalog, page by page, and lists its markets; an empty
/// result is an error, since there would be nothing to trade.
pub async fn fetch(api: &ApiClient) -> Result<Catalog, LoadgenError> {
    let mut catalog = Catalog::default();
    let mut cursor: Option<String> = None;
    for page_number in 1..=MAX_CATALOG_PAGES {
        let step = format!("read the catalog (page {page_number})");
        let answer =
            api.products(cursor.as_deref())
                .await
                .map_err(|failure| LoadgenError::Unreachable {
                    step: step.clone(),
                    url: api.base_url().to_owned(),
                    source: failure,
                })?;
        if !answer.is_success() {
            return Err(LoadgenError::Rejected {
                step,
                status: answer.status,
                message: answer.error_message(),
            });
        }
        let page: ProductPage = answer
            .json()
            .map_err(|source| LoadgenError::Decode { step, source })?;
        for product in page.items.unwrap_or_default() {
            let markets = markets_of(product);
            if !markets.is_empty() {
                catalog.products += 1;
                catalog.markets.extend(markets);
            }
        }
        match page.next_cursor {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next.as_str()) => {
                cursor = Some(next);
            }
            _ => break,
        }
    }
    if catalog.markets.is_empty() {
        return Err(LoadgenError::EmptyCatalog {
            url: api.base_url().to_owned(),
        });
    }
    Ok(catalog)
}

/// The markets of one product: its `sizes`, then any size only its
/// `markets` name, without repeats, in the catalog's order.
fn markets_of(product: ProductEntry) -> Vec<Market> {
    let tick = match &product.tick_size {
        None | Some(Value::Null) => TickSize::CENT,
        Some(value) => match scalar_text(value).map(|text| TickSize::parse(&text)) {
            Some(Ok(tick)) => tick,
            Some(Err(_)) | None => return Vec::new(),
        },
    };
    let mut candidates = product.sizes.unwrap_or_default();
    candidates.extend(
        product
            .markets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|market| market.size),
    );
    let mut sizes: Vec<String> = Vec::new();
    for size in &candidates {
        if let Some(text) = scalar_text(size).filter(|text| !text.trim().is_empty())
            && !sizes.contains(&text)
        {
            sizes.push(text);
        }
    }
    sizes
        .into_iter()
        .map(|size| Market {
            product_id: product.id,
            size,
            tick,
        })
        .collect()
}

/// A string as is, a number as it was written; anything else is unusable.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markets(json: &str) -> Vec<(i64, String, String)> {
        let page: ProductPage = match serde_json::from_str(json) {
            Ok(page) => page,
            Err(error) => panic!("test page does not parse: {error}"),
        };
        page.items
            .unwrap_or_default()
            .into_iter()
            .flat_map(markets_of)
            .map(|market| (market.product_id, market.size, market.tick.to_string()))
            .collect()
    }

    #[test]
    fn sizes_come_from_the_sizes_list() {
        let found = markets(
            r#"{"items":[{"id":1,"sizes":["9","10.5"],"tick_size":"0.01"}],"next_cursor":null}"#,
        );
        assert_eq!(
            found,
            [
                (1, "9".to_owned(), "0.01".to_owned()),
                (1, "10.5".to_owned(), "0.01".to_owned())
            ]
        );
    }

    #[test]
    fn sizes_also_come_from_markets_and_numbers_without_repeats() {
        let found = markets(
            r#"{"items":[{"id":2,"sizes":[9, "10"],"markets":[{"size":"10"},{"size":"11","highest_bid":null}],"tick_size":0.5}]}"#,
        );
        assert_eq!(
            found,
            [
                (2, "9".to_owned(), "0.5".to_owned()),
                (2, "10".to_owned(), "0.5".to_owned()),
                (2, "11".to_owned(), "0.5".to_owned())
            ]
        );
    }

    #[test]
    fn unusable_products_are_left_out() {
        let found = markets(
            r#"{"items":[{"id":3,"sizes":[]},{"id":4,"sizes":["9"],"tick_size":"zero"},{"id":5,"sizes":null,"markets":null},{"id":6,"sizes":["8",""," ",null,{}]}]}"#,
        );
        assert_eq!(found, [(6, "8".to_owned(), "0.01".to_owned())]);
    }
}
