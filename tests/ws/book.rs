//! A client's copy of a product's book: a snapshot with the level events
//! after it applied, as a page that watches the feed would keep it.

use std::collections::BTreeMap;

use serde_json::Value;

/// Per size and side, price → (quantity, orders).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookModel {
    levels: BTreeMap<(String, &'static str, String), (u64, u64)>,
}

impl BookModel {
    /// The book of a `subscribed` snapshot.
    pub fn from_snapshot(snapshot: &Value) -> Self {
        let mut model = Self::default();
        for market in snapshot["markets"].as_array().expect("markets") {
            let size = market["size"].as_str().expect("a size").to_owned();
            for side in ["bids", "asks"] {
                model.load(&size, side, &market[side]);
            }
        }
        model
    }

    /// The book of `GET /products/{id}/book` replies, one per size.
    pub fn from_rest(books: &[Value]) -> Self {
        let mut model = Self::default();
        for book in books {
            let size = book["size"].as_str().expect("a size").to_owned();
            for side in ["bids", "asks"] {
                model.load(&size, side, &book[side]);
            }
        }
        model
    }

    fn load(&mut self, size: &str, side: &'static str, levels: &Value) {
        for level in levels.as_array().expect("levels") {
            self.levels.insert(
                (
                    size.to_owned(),
                    side,
                    level["price"].as_str().expect("a price").to_owned(),
                ),
                (
                    level["quantity"].as_u64().expect("a quantity"),
                    level["orders"].as_u64().expect("a count"),
                ),
            );
        }
    }

    /// Applies one event of the product channel (non-level events are
    /// ignored).
    pub fn apply(&mut self, event: &Value) {
        let side = match event["type"].as_str() {
            Some("BID_UPDATED") => "bids",
            Some("ASK_UPDATED") => "asks",
            _ => return,
        };
        let key = (
            event["size"].as_str().expect("a size").to_owned(),
            side,
            event["price"].as_str().expect("a price").to_owned(),
        );
        let quantity = event["quantity"].as_u64().expect("a quantity");
        if quantity == 0 {
            self.levels.remove(&key);
        } else {
            self.levels
                .insert(key, (quantity, event["orders"].as_u64().expect("a count")));
        }
    }
}
