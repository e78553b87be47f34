//! The group-commit write: many requests' results in one transaction.
//!
//! On PostgreSQL a batch is one statement: each table's rows go in as
//! arrays, one per column, unnested by data-modifying `WITH` clauses, so
//! the statement text and its plan are the same for every batch and the
//! whole commit is one round trip. (Multi-row `VALUES` lists cost the
//! server a fresh plan of thousands of parameters per statement, which
//! profiling showed to be most of its time.) Foreign keys are still
//! checked: PostgreSQL checks them at the end of the statement, when every
//! clause's rows are there. On SQLite, which runs in-process and has no
//! arrays, a batch is a transaction of multi-row `INSERT`s.

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
    /// First responses to idempotent requests, inserted without replacing
    /// any: a key already stored (a first attempt whose commit counted as
    /// failed but landed, while its retry was placed again) fails the
    /// batch rather than let one key stand for two orders. An expired key
    /// is forgotten before its next use.
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
/// table stay far below SQLite's parameter limit (32,766).
const CHUNK_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

impl Store {
    /// Writes `batch` to the SQLite database in one transaction, with
    /// multi-row `INSERT`s ([`commit_postgres`] is PostgreSQL's, one
    /// statement over arrays).
    pub(crate) async fn commit_sqlite(&self, batch: &Batch) -> Result<(), StoreError> {
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
            bind_idempotency,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// Binds an `idempotency_keys` row, its columns in the table's order: the
/// batch's inserts and a refusal's own one (see
/// [`Store::remember_idempotency`]) write the same row.
pub(crate) fn bind_idempotency<'q>(
    query: AnyQuery<'q>,
    record: &IdempotencyRecord,
) -> AnyQuery<'q> {
    query
        .bind(record.user_id)
        .bind(record.key.clone())
        .bind(record.request_hash.clone())
        .bind(record.status)
        .bind(record.response.clone())
        .bind(record.created_at)
}

/// The PostgreSQL batch statement; see the module docs.
const POSTGRES_BATCH: &str = "\
WITH new_orders AS (
    INSERT INTO orders (id, user_id, product_id, market, side, price_ticks, quantity,
        remaining_quantity, status, time_in_force, cancel_reason, expires_at, created_at,
        updated_at, priority)
    SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[],
        $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[])
    ON CONFLICT (id) DO UPDATE SET price_ticks = excluded.price_ticks,
        quantity = excluded.quantity, remaining_quantity = excluded.remaining_quantity,
        status = excluded.status, cancel_reason = excluded.cancel_reason,
        updated_at = excluded.updated_at, priority = excluded.priority
), new_matches AS (
    INSERT INTO matches (id, product_id, market, price_ticks, quantity, bid_order_id,
        ask_order_id, buyer_id, seller_id, taker_side, created_at)
    SELECT * FROM UNNEST($16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[],
        $20::bigint[], $21::bigint[], $22::bigint[], $23::bigint[], $24::bigint[], $25::text[],
        $26::bigint[])
), new_notifications AS (
    INSERT INTO notifications (id, user_id, match_id, order_id, payload, created_at)
    SELECT * FROM UNNEST($27::bigint[], $28::bigint[], $29::bigint[], $30::bigint[],
        $31::text[], $32::bigint[])
), new_events AS (
    INSERT INTO feed_events (channel, seq, event_type, payload, created_at)
    SELECT * FROM UNNEST($33::text[], $34::bigint[], $35::text[], $36::text[], $37::bigint[])
), new_keys AS (
    INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at)
    SELECT * FROM UNNEST($38::bigint[], $39::text[], $40::text[], $41::bigint[], $42::text[],
        $43::bigint[])
)
SELECT 1";

pub(crate) async fn commit_postgres(
    connection: &mut sqlx::PgConnection,
    batch: &Batch,
) -> Result<(), StoreError> {
    fn column<T, U>(rows: &[T], field: impl Fn(&T) -> U) -> Vec<U> {
        rows.iter().map(field).collect()
    }
    let (orders, matches) = (&batch.orders, &batch.matches);
    let (notifications, events, keys) = (&batch.notifications, &batch.events, &batch.idempotency);
    let statement = sqlx::query::<sqlx::Postgres>(POSTGRES_BATCH)
        .bind(column(orders, |order| order.id))
        .bind(column(orders, |order| order.user_id))
        .bind(column(orders, |order| order.product_id))
        .bind(column(orders, |order| order.market))
        .bind(column(orders, |order| order.side.clone()))
        .bind(column(orders, |order| order.price_ticks))
        .bind(column(orders, |order| order.quantity))
        .bind(column(orders, |order| order.remaining_quantity))
        .bind(column(orders, |order| order.status.clone()))
        .bind(column(orders, |order| order.time_in_force.clone()))
        .bind(column(orders, |order| order.cancel_reason.clone()))
        .bind(column(orders, |order| order.expires_at))
        .bind(column(orders, |order| order.created_at))
        .bind(column(orders, |order| order.updated_at))
        .bind(column(orders, |order| order.priority))
        .bind(column(matches, |trade| trade.id))
        .bind(column(matches, |trade| trade.product_id))
        .bind(column(matches, |trade| trade.market))
        .bind(column(matches, |trade| trade.price_ticks))
        .bind(column(matches, |trade| trade.quantity))
        .bind(column(matches, |trade| trade.bid_order_id))
        .bind(column(matches, |trade| trade.ask_order_id))
        .bind(column(matches, |trade| trade.buyer_id))
        .bind(column(matches, |trade| trade.seller_id))
        .bind(column(matches, |trade| trade.taker_side.clone()))
        .bind(column(matches, |trade| trade.created_at))
        .bind(column(notifications, |notification| notification.id))
        .bind(column(notifications, |notification| notification.user_id))
        .bind(column(notifications, |notification| notification.match_id))
        .bind(column(notifications, |notification| notification.order_id))
        .bind(column(notifications, |notification| {
            notification.payload.clone()
        }))
        .bind(column(notifications, |notification| {
            notification.created_at
        }))
        .bind(column(events, |event| event.channel.clone()))
        .bind(column(events, |event| event.seq))
        .bind(column(events, |event| event.event_type.clone()))
        .bind(column(events, |event| event.payload.clone()))
        .bind(column(events, |event| event.created_at))
        .bind(column(keys, |key| key.user_id))
        .bind(column(keys, |key| key.key.clone()))
        .bind(column(keys, |key| key.request_hash.clone()))
        .bind(column(keys, |key| key.status))
        .bind(column(keys, |key| key.response.clone()))
        .bind(column(keys, |key| key.created_at));
    if batch.products.is_empty() {
        // One statement is one transaction: no BEGIN and COMMIT trips.
        statement.execute(connection).await?;
        return Ok(());
    }
    let mut transaction = sqlx::Connection::begin(connection).await?;
    for product in &batch.products {
        sqlx::query::<sqlx::Postgres>(
            "INSERT INTO products (id, sku, name, brand, tick_units, scale, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(product.id)
        .bind(&product.sku)
        .bind(&product.name)
        .bind(&product.brand)
        .bind(product.tick_units)
        .bind(i64::from(product.scale))
        .bind(product.created_at)
        .execute(&mut *transaction)
        .await?;
        let markets: Vec<i64> = (0..product.sizes.len())
            .map(|market| i64::try_from(market).unwrap_or(i64::MAX))
            .collect();
        sqlx::query::<sqlx::Postgres>(
            "INSERT INTO product_sizes (product_id, market, size) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[])",
        )
        .bind(product.id)
        .bind(markets)
        .bind(&product.sizes)
        .execute(&mut *transaction)
        .await?;
    }
    statement.execute(&mut *transaction).await?;
    transaction.commit().await?;
    Ok(())
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
