//! Consistency checks through the API: what a restart rebuilt must be
//! exactly what was committed.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::{TestApp, Trader};

/// Every item of a paged list endpoint (`path` has no query string yet
/// beyond what `query` adds).
pub async fn all_items(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..1_000 {
        let url = match &cursor {
            Some(cursor) => format!("{path}?limit=100&cursor={cursor}"),
            None => format!("{path}?limit=100"),
        };
        let reply = app.get(&url, Some(token)).await;
        assert_eq!(reply.status, 200, "{url}: {:?}", reply.body);
        let page = reply.body["items"].as_array();
        items.extend(
            page.unwrap_or_else(|| panic!("{url}: no items in {:?}", reply.body))
                .iter()
                .cloned(),
        );
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
    panic!("{path} has more than 1,000 pages");
}

/// What the audit found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Orders by id.
    pub orders: HashMap<i64, Value>,
    /// Matches by id.
    pub matches: HashMap<i64, Value>,
    /// The highest book `seq` over the sizes.
    pub seq: i64,
}

/// Checks, for one product: every order's filled quantity equals its
/// matches; every book equals its resting orders; no book is crossed.
pub async fn audit(app: &TestApp, traders: &[Trader], product_id: i64, sizes: &[&str]) -> Findings {
    let mut findings = Findings::default();
    for trader in traders {
        for order in all_items(app, "/api/v1/orders", &trader.token).await {
            findings
                .orders
                .insert(order["id"].as_i64().expect("an order id"), order);
        }
        for trade in all_items(app, "/api/v1/matches", &trader.token).await {
            findings
                .matches
                .insert(trade["id"].as_i64().expect("a match id"), trade);
        }
    }
    let mut filled: HashMap<i64, i64> = HashMap::new();
    for trade in findings.matches.values() {
        let quantity = trade["quantity"].as_i64().expect("a quantity");
        for side in ["bid_order_id", "ask_order_id"] {
            let order = trade[side].as_i64().expect("an order id");
            assert!(
                findings.orders.contains_key(&order),
                "match {} names order {order}, which no trader has",
                trade["id"]
            );
            *filled.entry(order).or_default() += quantity;
        }
    }
    for (id, order) in &findings.orders {
        let quantity = order["quantity"].as_i64().expect("a quantity");
        let remaining = order["remaining_quantity"]
            .as_i64()
            .expect("a remaining quantity");
        assert_eq!(
            quantity - remaining,
            filled.get(id).copied().unwrap_or(0),
            "order {id} says it filled {} but its matches add up to {}: {order}",
            quantity - remaining,
            filled.get(id).copied().unwrap_or(0)
        );
    }
    for size in sizes {
        let book = app.book_depth(product_id, size, 1_000).await;
        findings.seq = findings.seq.max(book["seq"].as_i64().expect("a seq"));
        for (side, key) in [("bid", "bids"), ("ask", "asks")] {
            let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for order in findings.orders.values().filter(|order| {
                order["product_id"] == product_id
                    && order["size"] == *size
                    && order["side"] == side
                    && matches!(order["status"].as_str(), Some("open" | "partially_filled"))
            }) {
                let level = expected
                    .entry(order["price"].as_str().expect("a price").to_owned())
                    .or_default();
                level.0 += order["remaining_quantity"].as_i64().expect("remaining");
                level.1 += 1;
            }
            let actual: BTreeMap<String, (i64, i64)> = book[key]
                .as_array()
                .expect("levels")
                .iter()
                .map(|level| {
                    (
                        level["price"].as_str().expect("a price").to_owned(),
                        (
                            level["quantity"].as_i64().expect("a quantity"),
                            level["orders"].as_i64().expect("an order count"),
                        ),
                    )
                })
                .collect();
            assert_eq!(
                actual, expected,
                "size {size} {key}: the book is not its resting orders"
            );
        }
        if let (Some(bid), Some(ask)) = (
            book["bids"][0]["price"].as_str(),
            book["asks"][0]["price"].as_str(),
        ) {
            assert!(
                units(bid) < units(ask),
                "size {size} is crossed: {bid} >= {ask}"
            );
        }
    }
    findings
}

/// A price string of a product's fixed scale as an integer of its last
/// decimal, so prices compare without floats.
pub fn units(price: &str) -> i64 {
    price.replace('.', "").parse().expect("a decimal price")
}
