//! The catalog in memory: products, their sizes and tick sizes.
//!
//! Products are few and change rarely, while every order needs its
//! product's sizes and tick size; so the catalog is loaded at start, kept
//! here, and grows when a new product's commit succeeds.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bidask_engine::{MarketId, Price, PriceError, TickSize};
use bidask_store::ProductRecord;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

/// Prices are shown with at least this many decimals.
pub const MIN_SCALE: u32 = 2;

/// A product as the server uses it.
#[derive(Debug, Clone)]
pub struct Product {
    /// Its id.
    pub id: i64,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Parses prices into engine ticks.
    pub tick: TickSize,
    /// Decimals shown in prices.
    pub scale: u32,
    /// Sizes; size `i` is engine market `i`.
    pub sizes: Vec<Size>,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// One size of a product ("10.5", "M", "EU 44"), as people read it: 1 to
/// 16 characters, none of them control, line-breaking or invisible, so
/// that two sizes that look alike cannot be two markets.
// (The doc comment is the OpenAPI description.) A new one comes through
// `Size::parse`, trimmed; a stored one through `Size::stored` as it was
// committed, since orders name it and an older version's rules may have
// let through what today's refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Size(String);

/// Why a text is not a size; the message is the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Empty, or longer than a size column on a page.
    #[error("a size is 1 to 16 characters")]
    Length,
    /// See [`is_hidden`].
    #[error("a size must not contain control, line-breaking or invisible characters")]
    Hidden,
}

impl Size {
    /// The size `text` names, without the spaces around it.
    pub fn parse(text: &str) -> Result<Self, SizeError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 16 {
            Err(SizeError::Length)
        } else if text.chars().any(is_hidden) {
            Err(SizeError::Hidden)
        } else {
            Ok(Self(text.to_owned()))
        }
    }

    /// A size the database holds, exactly as committed: refusing it now
    /// would stop the server over a row it once accepted, and changing it
    /// would unlink the orders that name it.
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    /// The size as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A character a name or a size must not hold: a control character, a
/// line or paragraph separator (which break a line as a newline does), or
/// one of Unicode's invisible format characters (soft hyphen, zero-width
/// spaces and joiners, direction marks, overrides and isolates, the BOM,
/// tags). Shown on the page, those would make two sizes that look alike,
/// or a name that reads differently from what it is.
pub fn is_hidden(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{AD}'
                | '\u{61C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Why a stored or requested tick size is unusable.
#[derive(Debug, thiserror::Error)]
#[error(
    "tick size must be a positive decimal of at most 1000000 (the highest price), with at most 8 decimals"
)]
pub struct InvalidTickSize;

impl Product {
    /// The product a stored record describes.
    pub fn from_record(record: ProductRecord) -> Result<Self, InvalidTickSize> {
        let step =
            Decimal::try_new(record.tick_units, record.scale).map_err(|_| InvalidTickSize)?;
        let sizes = record.sizes.into_iter().map(Size::stored).collect();
        Ok(Self {
            id: record.id,
            sku: record.sku,
            name: record.name,
            brand: record.brand,
            tick: TickSize::new(step).map_err(|_| InvalidTickSize)?,
            scale: record.scale,
            sizes,
            created_at: record.created_at,
        })
    }

    /// The stored form of a tick size: `(tick_units, scale)`.
    pub fn tick_parts(step: Decimal) -> Result<(i64, u32), InvalidTickSize> {
        let step = step.normalize();
        if step <= Decimal::ZERO || step.scale() > 8 {
            return Err(InvalidTickSize);
        }
        TickSize::new(step).map_err(|_| InvalidTickSize)?;
        let scale = step.scale().max(MIN_SCALE);
        let mut scaled = step;
        scaled.rescale(scale);
        let units = i64::try_from(scaled.mantissa()).map_err(|_| InvalidTickSize)?;
        Ok((units, scale))
    }

    /// The engine market of a size.
    pub fn market(&self, size: &str) -> Option<MarketId> {
        let index = self
            .sizes
            .iter()
            .position(|candidate| candidate.as_str() == size)?;
        u16::try_from(index).ok().map(MarketId)
    }

    /// The size of an engine market.
    pub fn size(&self, market: i64) -> &str {
        usize::try_from(market)
            .ok()
            .and_then(|index| self.sizes.get(index))
            .map_or("", Size::as_str)
    }

    /// Parses a price: positive, on the tick, at most 1,000,000.
    pub fn price(&self, value: Decimal) -> Result<Price, PriceError> {
        self.tick.price(value)
    }

    /// A price as the API shows it: a decimal string with the product's scale.
    pub fn format_price(&self, price: Price) -> String {
        let value = self.tick.decimal(price);
        format!("{value:.prec$}", prec = self.scale as usize)
    }

    /// [`Product::format_price`] for stored ticks.
    pub fn format_ticks(&self, ticks: i64) -> String {
        u64::try_from(ticks)
            .ok()
            .and_then(Price::from_ticks)
            .map_or_else(String::new, |price| self.format_price(price))
    }

    /// The tick size as the API shows it.
    pub fn tick_size(&self) -> String {
        let value = self.tick.step();
        format!("{value:.prec$}", prec = self.scale as usize)
    }
}

/// Every product, by id.
#[derive(Debug, Default)]
pub struct Catalog {
    products: RwLock<BTreeMap<i64, Arc<Product>>>,
}

impl Catalog {
    /// A catalog of these products.
    pub fn new(products: impl IntoIterator<Item = Product>) -> Self {
        Self {
            products: RwLock::new(
                products
                    .into_iter()
                    .map(|product| (product.id, Arc::new(product)))
                    .collect(),
            ),
        }
    }

    /// One product.
    pub fn get(&self, id: i64) -> Option<Arc<Product>> {
        self.read().get(&id).cloned()
    }

    /// Adds a product whose creation has been committed.
    pub fn insert(&self, product: Arc<Product>) {
        self.write().insert(product.id, product);
    }

    /// Whether a SKU is taken.
    pub fn has_sku(&self, sku: &str) -> bool {
        self.read().values().any(|product| product.sku == sku)
    }

    /// Whether there are no products.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Every product, oldest first.
    pub fn all(&self) -> Vec<Arc<Product>> {
        self.read().values().cloned().collect()
    }

    /// Newest first, ids below `before`, matching `query` (case-insensitive,
    /// in name, brand or SKU), at most `limit`.
    pub fn search(
        &self,
        query: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Vec<Arc<Product>> {
        let query = query.map(str::to_lowercase);
        let products = self.read();
        products
            .range(..before.unwrap_or(i64::MAX))
            .rev()
            .map(|(_, product)| product)
            .filter(|product| {
                query.as_deref().is_none_or(|query| {
                    product.name.to_lowercase().contains(query)
                        || product.brand.to_lowercase().contains(query)
                        || product.sku.to_lowercase().contains(query)
                })
            })
            .take(limit)
            .cloned()
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<i64, Arc<Product>>> {
        // A panic while holding the lock cannot leave the map half-changed
        // (every change is one insert), so a poisoned lock is still sound.
        self.products
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<i64, Arc<Product>>> {
        self.products
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use bidask_store::ProductRecord;

    use super::{Product, Size, SizeError};

    #[test]
    fn a_size_is_short_visible_text_without_the_spaces_around_it() {
        assert_eq!(
            Size::parse(" 10.5 ").map(|size| size.0),
            Ok("10.5".to_owned())
        );
        assert_eq!(
            Size::parse("EU 44").map(|size| size.0),
            Ok("EU 44".to_owned())
        );
        assert_eq!(Size::parse("   "), Err(SizeError::Length));
        assert_eq!(Size::parse(&"9".repeat(17)), Err(SizeError::Length));
        assert!(
            Size::parse(&"é".repeat(16)).is_ok(),
            "characters, not bytes"
        );
        for hidden in [
            "10\u{200B}",
            "1\u{0}0",
            "10\u{202E}",
            "\u{FEFF}10",
            "1\u{2028}0",
        ] {
            assert_eq!(Size::parse(hidden), Err(SizeError::Hidden), "{hidden:?}");
        }
    }

    /// A stored size is served as committed, even one today's rules
    /// refuse (an older version let invisible characters through): its
    /// orders still find it, and the server still starts.
    #[test]
    fn a_stored_size_is_kept_as_committed() {
        let record = ProductRecord {
            id: 1,
            sku: "AJ1".to_owned(),
            name: "Air Jordan 1".to_owned(),
            brand: "Jordan".to_owned(),
            tick_units: 1,
            scale: 2,
            sizes: vec!["9".to_owned(), "9\u{200B}".to_owned()],
            created_at: 0,
        };
        let product = Product::from_record(record).expect("a servable product");
        assert_eq!(product.market("9\u{200B}").map(|market| market.0), Some(1));
        assert_eq!(product.size(1), "9\u{200B}");
    }
}
