//! The group-commit write: many requests' results in one transaction.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};

use crate::error::StoreError;
use crate::pool::Store;
use crate::records::{
    FeedEventRecord, IdempotencyRecord, MatchRecord, NotificationRecord, OrderRecord, ProductRecord,
};

/// Everything one commit writes. Rows go in the order of the fields, so
/// each row's foreign keys are already there when it is inserted.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// New products with their sizes.
    pub products: Vec<ProductRecord>,
    /// Orders as they stand now: inserted, or replacing the stored row.
    /// Each order at most once (PostgreSQL refuses to upsert one row twice
    /// in a statement); the caller keeps the latest state.
    pub orders: Vec<OrderRecord>,
    /// New trades.
    pub matches: Vec<MatchRecord>,
    /// New notifications.
    pub notifications: Vec<NotificationRecord>,
    /// New feed events.
    pub events: Vec<FeedEventRecord>,
    /// First responses to idempotent requests.
    pub idempotency: Vec<IdempotencyRecord>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
            && self.orders.is_empty()
            && self.matches.is_empty()
            && self.notifications.is_empty()
            && self.events.is_empty()
            && self.idempotency.is_empty()
    }

    /// Empties the batch, keeping its allocations for the next one.
    pub fn clear(&mut self) {
        self.products.clear();
        self.orders.clear();
        self.matches.clear();
        self.notifications.clear();
        self.events.clear();
        self.idempotency.clear();
    }
}

type AnyQuery<'q> = Query<'q, Any, AnyArguments>;

/// Statements are built for these row counts only, largest first, so that
/// batches of any size reuse a handful of prepared statements per table
/// instead of preparing one per distinct size. 256 rows of the widest
/// table stay far below both backends' parameter limits (PostgreSQL
/// 65,535, SQLite 32,766).
const CHUNK_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

impl Store {
    /// Writes `batch` in one transaction: all of it or, on error, none.
    pub async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        let connection: &mut AnyConnection = &mut transaction;
        for product in &batch.products {
            insert_product(connection, product).await?;
        }
        insert_rows(
            connection,
            "INSERT INTO orders (id, user_id, product_id, market, side, price_ticks, quantity, \
             remaining_quantity, status, time_in_force, cancel_reason, expires_at, created_at, \
             updated_at, priority) VALUES ",
            " ON CONFLICT (id) DO UPDATE SET price_ticks = excluded.price_ticks, \
             quantity = excluded.quantity, remaining_quantity = excluded.remaining_quantity, \
             status = excluded.status, cancel_reason = excluded.cancel_reason, \
             updated_at = excluded.updated_at, priority = excluded.priority",
            15,
            &batch.orders,
            |query, order| {
                query
                    .bind(order.id)
                    .bind(order.user_id)
                    .bind(order.product_id)
                    .bind(order.market)
                    .bind(order.side.clone())
                    .bind(order.price_ticks)
                    .bind(order.quantity)
                    .bind(order.remaining_quantity)
                    .bind(order.status.clone())
                    .bind(order.time_in_force.clone())
                    .bind(order.cancel_reason.clone())
                    .bind(order.expires_at)
                    .bind(order.created_at)
                    .bind(order.updated_at)
                    .bind(order.priority)
            },
        )
        .await?;
        insert_rows(
            connection,
            "INSERT INTO matches (id, product_id, market, price_ticks, quantity, bid_order_id, \
             ask_order_id, buyer_id, seller_id, taker_side, created_at) VALUES ",
            "",
            11,
            &batch.matches,
            |query, trade| {
                query
                    .bind(trade.id)
                    .bind(trade.product_id)
                    .bind(trade.market)
                    .bind(trade.price_ticks)
                    .bind(trade.quantity)
                    .bind(trade.bid_order_id)
                    .bind(trade.ask_order_id)
                    .bind(trade.buyer_id)
                    .bind(trade.seller_id)
                    .bind(trade.taker_side.clone())
                    .bind(trade.created_at)
            },
        )
        .await?;
        insert_rows(
            connection,
            "INSERT INTO notifications (id, user_id, match_id, order_id, payload, created_at) \
             VALUES ",
            "",
            6,
            &batch.notifications,
            |query, notification| {
                query
                    .bind(notification.id)
                    .bind(notification.user_id)
                    .bind(notification.match_id)
                    .bind(notification.order_id)
                    .bind(notification.payload.clone())
                    .bind(notification.created_at)
            },
        )
        .await?;
        insert_rows(
            connection,
            "INSERT INTO feed_events (channel, seq, event_type, payload, created_at) VALUES ",
            "",
            5,
            &batch.events,
            |query, event| {
                query
                    .bind(event.channel.clone())
                    .bind(event.seq)
                    .bind(event.event_type.clone())
                    .bind(event.payload.clone())
                    .bind(event.created_at)
            },
        )
        .await?;
        insert_rows(
            connection,
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, \
             created_at) VALUES ",
            "",
            6,
            &batch.idempotency,
            |query, record| {
                query
                    .bind(record.user_id)
                    .bind(record.key.clone())
                    .bind(record.request_hash.clone())
                    .bind(record.status)
                    .bind(record.response.clone())
                    .bind(record.created_at)
            },
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }
}

async fn insert_product(
    connection: &mut AnyConnection,
    product: &ProductRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO products (id, sku, name, brand, tick_units, scale, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(product.id)
    .bind(product.sku.clone())
    .bind(product.name.clone())
    .bind(product.brand.clone())
    .bind(product.tick_units)
    .bind(i64::from(product.scale))
    .bind(product.created_at)
    .execute(&mut *connection)
    .await?;
    for (market, size) in product.sizes.iter().enumerate() {
        sqlx::query("INSERT INTO product_sizes (product_id, market, size) VALUES ($1, $2, $3)")
            .bind(product.id)
            .bind(i64::try_from(market).unwrap_or(i64::MAX))
            .bind(size.clone())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Inserts `rows` with multi-row `INSERT`s of the sizes in [`CHUNK_SIZES`].
async fn insert_rows<T>(
    connection: &mut AnyConnection,
    head: &str,
    tail: &str,
    columns: usize,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &T) -> AnyQuery<'q>,
) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let size = CHUNK_SIZES
            .into_iter()
            .find(|&size| size <= rest.len())
            .unwrap_or(1);
        let (chunk, after) = rest.split_at(size);
        let mut query = sqlx::query(AssertSqlSafe(values_sql(head, tail, columns, size)));
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *connection).await?;
        rest = after;
    }
    Ok(())
}

/// `head ($1, $2), ($3, $4) tail` for `rows` rows of `columns` parameters.
/// Only numbers are formatted into the text; every value is bound.
fn values_sql(head: &str, tail: &str, columns: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
    sql.push_str(head);
    let mut parameter = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            parameter += 1;
            sql.push('$');
            sql.push_str(&parameter.to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::values_sql;

    #[test]
    fn values_sql_numbers_parameters_across_rows() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES ", " RETURNING a", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
    }
}
