//! The sample catalog of `--demo`: a few well-known sneakers with real
//! US men's size runs.

use bidask_store::ProductRecord;

/// `(sku, name, brand)` of the demo products.
const SNEAKERS: [(&str, &str, &str); 5] = [
    (
        "555088-101",
        "Air Jordan 1 Retro High OG \"Chicago Lost & Found\"",
        "Jordan",
    ),
    ("DD1391-100", "Nike Dunk Low \"Panda\"", "Nike"),
    ("CP9654", "adidas Yeezy Boost 350 V2 \"Zebra\"", "adidas"),
    ("BB550WT1", "New Balance 550 \"White Green\"", "New Balance"),
    (
        "DQ3989-100",
        "Nike Air Max 1 '86 OG \"Big Bubble Red\"",
        "Nike",
    ),
];

/// US men's sizes 7 to 13 in half sizes.
fn size_run() -> Vec<String> {
    (14..=26)
        .map(|half_sizes| {
            if half_sizes % 2 == 0 {
                (half_sizes / 2).to_string()
            } else {
                format!("{}.5", half_sizes / 2)
            }
        })
        .collect()
}

/// The demo products, with ids from `next_id` and a one-cent tick.
pub fn catalog(mut next_id: impl FnMut() -> i64, now: i64) -> Vec<ProductRecord> {
    SNEAKERS
        .iter()
        .map(|(sku, name, brand)| ProductRecord {
            id: next_id(),
            sku: (*sku).to_owned(),
            name: (*name).to_owned(),
            brand: (*brand).to_owned(),
            tick_units: 1,
            scale: 2,
            sizes: size_run(),
            created_at: now,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_run_goes_from_7_to_13_in_halves() {
        let sizes = size_run();
        assert_eq!(sizes.first().map(String::as_str), Some("7"));
        assert_eq!(sizes.get(1).map(String::as_str), Some("7.5"));
        assert_eq!(sizes.last().map(String::as_str), Some("13"));
        assert_eq!(sizes.len(), 13);
    }
}
