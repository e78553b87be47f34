//! Upgrades: a database that an earlier bidask wrote, at an earlier schema
//! version, is migrated by this one with every row intact, and this
//! server starts on it with the same books, accounts, feed and keys.
//!
//! The old database is made here as the old server made it: the
//! migrations up to the old version only (read from `migrations/` at run
//! time, so the very files this build embeds), then rows written with the
//! statements of that era's store, which knew nothing of the later
//! columns (a user without a `token_key`, an order written as an upsert
//! over its earlier state). Then [`Store::migrate`], the store's reads,
//! and a whole server on the result.
//!
//! Data that an old version took and a later migration refuses (two
//! usernames differing only in case, before 0003) must stop the upgrade
//! with an error naming what is wrong, and leave the database as it was,
//! so that it can be mended and migrated again.

use std::path::PathBuf;
use std::time::Duration;

use bidask_server::clock::{DAY, SECOND, now_micros};
use bidask_server::startup::Application;
use bidask_store::reads::LastIds;
use bidask_store::{
    FeedEventRecord, IdempotencyRecord, MatchRecord, NotificationRecord, OrderRecord,
    ProductRecord, Store, StoreError, StoreOptions, with_sqlite_mode,
};
use bidask_tests::{
    Backend, JWT_SECRET, TestApp, TestDatabase, on_both_backends, spawn_app_on, test_config,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::migrate::Migrator;

on_both_backends!(
    every_older_schema_upgrades_with_its_rows,
    names_differing_only_in_case_stop_the_upgrade_and_leave_the_database_as_it_was,
);

/// The password of the old accounts: `HASH` is its Argon2 hash, as a
/// server of commit 124e52e stored it.
const PASSWORD: &str = "secret-pass-1";
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$knX4hVYQiV4zEXmzWrfD+w$mh3K820lwLrQmDsRKw0UjFKC4YdquWBSAj7wW1gqjnI";

/// The migrations of `backend` as this build has them.
async fn migrator(backend: Backend) -> Migrator {
    let directory = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(directory);
    Migrator::new(path).await.expect("the migrations")
}

/// The newest migration's version.
async fn latest(backend: Backend) -> i64 {
    migrator(backend)
        .await
        .iter()
        .map(|migration| migration.version)
        .max()
        .expect("migrations")
}

/// The versions recorded as applied, in order; none recorded as failed.
async fn applied(database: &TestDatabase) -> Vec<i64> {
    let mut connection = database.connect().await;
    let (failed,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM _sqlx_migrations WHERE NOT success")
            .fetch_one(&mut connection)
            .await
            .expect("the migrations table");
    assert_eq!(failed, 0, "a migration is recorded as failed");
    sqlx::query_as::<_, (i64,)>(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(&mut connection)
    .await
    .expect("the migrations table")
    .into_iter()
    .map(|(version,)| version)
    .collect()
}

/// A fresh database of `backend` at schema `version`, as a server of that
/// version left it, and a connection to it (foreign keys on, as the
/// server's SQLite connections have them).
async fn database_at(backend: Backend, version: i64) -> (TestDatabase, sqlx::AnyConnection) {
    database_at_on(TestDatabase::new(backend).await, backend, version).await
}

/// [`database_at`] on `database`, a fresh one of `backend`.
async fn database_at_on(
    database: TestDatabase,
    backend: Backend,
    version: i64,
) -> (TestDatabase, sqlx::AnyConnection) {
    // A SQLite file is created by the first connection that asks to.
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&with_sqlite_mode(&database.url, "rwc"))
        .await
        .expect("the test database");
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut connection)
            .await
            .expect("foreign keys on");
    }
    migrator(backend)
        .await
        .run_to(version, &mut connection)
        .await
        .unwrap_or_else(|error| panic!("the schema at version {version}: {error}"));
    assert_eq!(applied(&database).await, (1..=version).collect::<Vec<_>>());
    (database, connection)
}

async fn execute(connection: &mut sqlx::AnyConnection, statement: String) {
    sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
        .execute(connection)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The old store's account insert: no `token_key` (0005 on PostgreSQL,
/// 0004 on SQLite), the id given by the database.
async fn old_user(connection: &mut sqlx::AnyConnection, username: &str) -> i64 {
    let (id,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (username, password_hash, role, created_at) \
         VALUES ({}, {}, 'trader', {}) RETURNING id",
        quoted(username),
        quoted(HASH),
        now_micros() - DAY,
    )))
    .fetch_one(connection)
    .await
    .unwrap_or_else(|error| panic!("user {username}: {error}"));
    id
}

/// The old store's order write, an upsert (each state of an order was
/// written over the one before).
fn old_order(order: &OrderRecord) -> String {
    let reason = order
        .cancel_reason
        .as_deref()
        .map_or("NULL".to_owned(), quoted);
    format!(
        "INSERT INTO orders (id, user_id, product_id, market, side, price_ticks, quantity, \
         remaining_quantity, status, time_in_force, cancel_reason, expires_at, created_at, \
         updated_at, priority) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {reason}, {}, {}, \
         {}, {}) ON CONFLICT (id) DO UPDATE SET price_ticks = excluded.price_ticks, \
         quantity = excluded.quantity, remaining_quantity = excluded.remaining_quantity, \
         status = excluded.status, cancel_reason = excluded.cancel_reason, \
         updated_at = excluded.updated_at, priority = excluded.priority",
        order.id,
        order.user_id,
        order.product_id,
        order.market,
        quoted(&order.side),
        order.price_ticks,
        order.quantity,
        order.remaining_quantity,
        quoted(&order.status),
        quoted(&order.time_in_force),
        order.expires_at,
        order.created_at,
        order.updated_at,
        order.priority,
    )
}

/// What a server of commit 124e52e stored under an `Idempotency-Key`: the
/// SHA-256 of the side and the body's bytes.
fn old_request_hash(side: &str, body: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(side.as_bytes());
    digest.update(b"\n");
    digest.update(body.as_bytes());
    format!("sha256:{:x}", digest.finalize())
}

/// Everything the old server wrote, as the current store must read it back.
struct OldRows {
    sam: i64,
    bea: i64,
    cal: i64,
    product: ProductRecord,
    orders: Vec<OrderRecord>,
    matches: Vec<MatchRecord>,
    notifications: Vec<NotificationRecord>,
    events: Vec<FeedEventRecord>,
    key: IdempotencyRecord,
    /// The body whose response `key` holds, byte for byte as it was sent.
    keyed_body: String,
    /// `user:{bea}` delivered up to here (from schema 2 on).
    delivered: Option<i64>,
}

/// Writes a small market's history at schema `version` with the
/// statements of the store of that time: a product with two sizes, three
/// traders (one spelt `Sam`), orders in every state (resting, part filled,
/// filled, cancelled three ways, expired, one whose price was amended so
/// that it queues behind a later order, one that expires while the server
/// is down), two trades with their notifications, feed events on three
/// kinds of channel, an idempotency key and a delivery mark.
async fn write_old_rows(connection: &mut sqlx::AnyConnection, version: i64) -> OldRows {
    let sam = old_user(connection, "Sam").await;
    let bea = old_user(connection, "bea").await;
    let cal = old_user(connection, "cal").await;
    assert_eq!((sam, bea, cal), (1, 2, 3), "ids as the database gave them");

    let now = now_micros();
    let created = now - 3_600 * SECOND;
    let product = ProductRecord {
        id: 1,
        sku: "555088-101".to_owned(),
        name: "Air Jordan 1 Retro High OG \"Chicago\"".to_owned(),
        brand: "Jordan".to_owned(),
        tick_units: 1,
        scale: 2,
        sizes: vec!["10".to_owned(), "11".to_owned()],
        created_at: created - SECOND,
    };
    execute(
        connection,
        format!(
            "INSERT INTO products (id, sku, name, brand, tick_units, scale, created_at) \
             VALUES (1, {}, {}, {}, 1, 2, {})",
            quoted(&product.sku),
            quoted(&product.name),
            quoted(&product.brand),
            product.created_at
        ),
    )
    .await;
    execute(
        connection,
        "INSERT INTO product_sizes (product_id, market, size) VALUES (1, 0, '10'), (1, 1, '11')"
            .to_owned(),
    )
    .await;

    let far = now + 30 * DAY;
    let order = |id: i64, user_id: i64, market: i64, side: &str, price_ticks: i64| OrderRecord {
        id,
        user_id,
        product_id: 1,
        market,
        side: side.to_owned(),
        price_ticks,
        quantity: 1,
        remaining_quantity: 1,
        status: "open".to_owned(),
        time_in_force: "gtc".to_owned(),
        cancel_reason: None,
        expires_at: far,
        created_at: created + id,
        updated_at: created + id,
        priority: id,
    };
    let filled = |record: OrderRecord| OrderRecord {
        remaining_quantity: 0,
        status: "filled".to_owned(),
        ..record
    };
    let cancelled = |record: OrderRecord, reason: &str| OrderRecord {
        status: "cancelled".to_owned(),
        cancel_reason: Some(reason.to_owned()),
        ..record
    };
    // Size 10: Sam's ask at 220.00 taken by bea's bid; cal's ask of 3 at
    // 230.00 part taken by bea's keyed bid, resting with 2.
    let cal_ask = OrderRecord {
        quantity: 3,
        remaining_quantity: 3,
        ..order(3, cal, 0, "ask", 23_000)
    };
    let cal_ask_part_filled = OrderRecord {
        remaining_quantity: 2,
        status: "partially_filled".to_owned(),
        updated_at: created + 4,
        ..cal_ask.clone()
    };
    // Bids at 200.00: bea's order 5 was placed at 198.00 and amended to
    // 200.00, which sent it behind cal's order 6 (place 9 of the counter).
    let bea_bid_first = order(5, bea, 0, "bid", 19_800);
    let bea_bid_amended = OrderRecord {
        price_ticks: 20_000,
        updated_at: created + 9,
        priority: 9,
        ..bea_bid_first.clone()
    };
    let sam_bid_expiring = OrderRecord {
        expires_at: now - 60 * SECOND,
        priority: 11,
        ..order(10, sam, 0, "bid", 19_500)
    };
    let bea_second_bid = OrderRecord {
        quantity: 2,
        remaining_quantity: 2,
        priority: 12,
        ..order(11, bea, 0, "bid", 20_000)
    };
    let keyed_body = r#"{"product_id":1,"size":"10","price":"230.00"}"#.to_owned();
    let final_orders = vec![
        filled(order(1, sam, 0, "ask", 22_000)),
        filled(order(2, bea, 0, "bid", 22_500)),
        cal_ask_part_filled.clone(),
        filled(order(4, bea, 0, "bid", 23_000)),
        bea_bid_amended.clone(),
        order(6, cal, 0, "bid", 20_000),
        cancelled(order(7, sam, 0, "bid", 19_000), "requested"),
        cancelled(
            OrderRecord {
                time_in_force: "ioc".to_owned(),
                ..order(8, sam, 1, "ask", 30_000)
            },
            "immediate_or_cancel",
        ),
        cancelled(
            OrderRecord {
                time_in_force: "fok".to_owned(),
                quantity: 10,
                remaining_quantity: 10,
                priority: 10,
                ..order(9, cal, 1, "bid", 40_000)
            },
            "fill_or_kill",
        ),
        sam_bid_expiring.clone(),
        bea_second_bid,
        OrderRecord {
            status: "expired".to_owned(),
            expires_at: created + 60 * SECOND,
            updated_at: created + 61 * SECOND,
            priority: 13,
            ..order(12, sam, 1, "ask", 16_000)
        },
    ];
    // Written as the server wrote them: some orders first in an earlier
    // state, then over it.
    for earlier in [cal_ask, bea_bid_first] {
        execute(connection, old_order(&earlier)).await;
    }
    for record in &final_orders {
        execute(connection, old_order(record)).await;
    }

    let trade = |id: i64, bid: i64, ask: i64, buyer: i64, seller: i64, price: i64| MatchRecord {
        id,
        product_id: 1,
        market: 0,
        price_ticks: price,
        quantity: 1,
        bid_order_id: bid,
        ask_order_id: ask,
        buyer_id: buyer,
        seller_id: seller,
        taker_side: "bid".to_owned(),
        created_at: created + bid,
    };
    let matches = vec![
        trade(1, 2, 1, bea, sam, 22_000),
        trade(2, 4, 3, bea, cal, 23_000),
    ];
    for record in &matches {
        execute(
            connection,
            format!(
                "INSERT INTO matches (id, product_id, market, price_ticks, quantity, \
                 bid_order_id, ask_order_id, buyer_id, seller_id, taker_side, created_at) \
                 VALUES ({}, 1, 0, {}, 1, {}, {}, {}, {}, 'bid', {})",
                record.id,
                record.price_ticks,
                record.bid_order_id,
                record.ask_order_id,
                record.buyer_id,
                record.seller_id,
                record.created_at
            ),
        )
        .await;
    }

    let event = |channel: String, seq: i64, event_type: &str| FeedEventRecord {
        payload: format!(
            "{{\"type\":\"{event_type}\",\"channel\":\"{channel}\",\"seq\":{seq},\
             \"ts\":\"2026-12-01T10:00:00.000000Z\",\"product_id\":1}}"
        ),
        channel,
        seq,
        event_type: event_type.to_owned(),
        created_at: created + seq,
    };
    let mut events = vec![event("products".to_owned(), 1, "NEW_PRODUCT")];
    for (seq, event_type) in [
        "ASK_UPDATED",
        "BID_UPDATED",
        "MATCH_CREATED",
        "ASK_UPDATED",
        "MATCH_CREATED",
        "BID_UPDATED",
    ]
    .into_iter()
    .enumerate()
    {
        events.push(event("product:1".to_owned(), seq as i64 + 1, event_type));
    }
    for (user, count) in [(sam, 3), (bea, 4), (cal, 2)] {
        for seq in 1..=count {
            let event_type = if seq % 2 == 1 {
                "MATCH_CREATED"
            } else {
                "ORDER_UPDATED"
            };
            events.push(event(format!("user:{user}"), seq, event_type));
        }
    }
    for record in &events {
        execute(
            connection,
            format!(
                "INSERT INTO feed_events (channel, seq, event_type, payload, created_at) \
                 VALUES ({}, {}, {}, {}, {})",
                quoted(&record.channel),
                record.seq,
                quoted(&record.event_type),
                quoted(&record.payload),
                record.created_at
            ),
        )
        .await;
    }

    let notification = |id: i64, user_id: i64, match_id: i64, order_id: i64| NotificationRecord {
        id,
        user_id,
        match_id,
        order_id,
        payload: format!("{{\"type\":\"MATCH_CREATED\",\"notification_id\":{id}}}"),
        created_at: created + match_id,
    };
    let notifications = vec![
        notification(1, sam, 1, 1),
        notification(2, bea, 1, 2),
        notification(3, cal, 2, 3),
        notification(4, bea, 2, 4),
    ];
    for record in &notifications {
        execute(
            connection,
            format!(
                "INSERT INTO notifications (id, user_id, match_id, order_id, payload, \
                 created_at) VALUES ({}, {}, {}, {}, {}, {})",
                record.id,
                record.user_id,
                record.match_id,
                record.order_id,
                quoted(&record.payload),
                record.created_at
            ),
        )
        .await;
    }

    // Bea's bid 4 was placed with a key, which an old server stored under
    // the hash of the bytes sent.
    let key = IdempotencyRecord {
        user_id: bea,
        key: "k-one".to_owned(),
        request_hash: old_request_hash("bid", &keyed_body),
        status: 201,
        response: json!({
            "order": {"id": 4, "product_id": 1, "size": "10", "side": "bid", "price": "230.00",
                      "quantity": 1, "remaining_quantity": 0, "filled_quantity": 1,
                      "status": "filled", "time_in_force": "gtc", "cancel_reason": null},
            "matches": [{"id": 2, "product_id": 1, "size": "10", "price": "230.00",
                         "quantity": 1, "bid_order_id": 4, "ask_order_id": 3,
                         "taker_side": "bid"}],
            "seq": 5
        })
        .to_string(),
        created_at: now - 3_600 * SECOND,
    };
    execute(
        connection,
        format!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, \
             created_at) VALUES ({}, {}, {}, 201, {}, {})",
            key.user_id,
            quoted(&key.key),
            quoted(&key.request_hash),
            quoted(&key.response),
            key.created_at
        ),
    )
    .await;

    // The deliveries table came with the feed (schema 2).
    let delivered = (version >= 2).then_some(2);
    if let Some(seq) = delivered {
        execute(
            connection,
            format!("INSERT INTO deliveries (user_id, seq) VALUES ({bea}, {seq})"),
        )
        .await;
    }

    OldRows {
        sam,
        bea,
        cal,
        product,
        orders: final_orders,
        matches,
        notifications,
        events,
        key,
        keyed_body,
        delivered,
    }
}

/// What the current store reads of the upgraded database: each row as it
/// was written, the books' queues in their old order, and the counters
/// the server continues from.
async fn check_store(store: &Store, old: &OldRows, from: i64) {
    let context = format!("upgraded from schema {from}");
    for order in &old.orders {
        assert_eq!(
            store.order(order.id).await.expect("an order"),
            Some(order.clone()),
            "{context}: order {}",
            order.id
        );
    }
    // Recovery's read: the resting orders in queue order; the amended
    // order 5 after order 6, placed later but not moved.
    let resting: Vec<i64> = store
        .open_orders(1)
        .await
        .expect("the open orders")
        .iter()
        .map(|order| order.id)
        .collect();
    assert_eq!(resting, vec![3, 6, 5, 10, 11], "{context}: the queues");
    assert_eq!(
        store.last_ids().await.expect("the last ids"),
        LastIds {
            product: 1,
            order: 12,
            matches: 2,
            notification: 4,
            priority: 12,
        },
        "{context}: the counters"
    );

    let mut last_seqs = store.last_seqs().await.expect("the feed's seqs");
    last_seqs.sort();
    let mut want = std::collections::BTreeMap::new();
    for event in &old.events {
        let last = want.entry(event.channel.clone()).or_insert(0);
        *last = event.seq.max(*last);
    }
    assert_eq!(
        last_seqs,
        want.clone().into_iter().collect::<Vec<_>>(),
        "{context}: the feed continues from each channel's last seq"
    );
    for channel in want.keys() {
        let stored = store
            .feed_events(channel, 0, 100)
            .await
            .expect("a channel's events");
        let written: Vec<(i64, String)> = old
            .events
            .iter()
            .filter(|event| &event.channel == channel)
            .map(|event| (event.seq, event.payload.clone()))
            .collect();
        assert_eq!(stored, written, "{context}: the events of {channel}");
    }

    // Accounts: found whatever the case, with the token key that tokens
    // issued before it existed still name.
    for (asked, id, username) in [
        ("sam", old.sam, "Sam"),
        ("SAM", old.sam, "Sam"),
        ("Bea", old.bea, "bea"),
        ("cal", old.cal, "cal"),
    ] {
        let user = store
            .user_by_name(asked)
            .await
            .expect("a user")
            .unwrap_or_else(|| panic!("{context}: no user {asked}"));
        assert_eq!(
            (user.id, user.username.as_str(), user.password_hash.as_str()),
            (id, username, HASH),
            "{context}: {asked}"
        );
        assert_eq!(user.token_key, 0, "{context}: {asked}'s token key");
    }

    assert_eq!(
        store.products().await.expect("the catalog"),
        vec![old.product.clone()],
        "{context}: the catalog"
    );
    let page = bidask_store::reads::Page {
        before: None,
        limit: 100,
    };
    let newest_first: Vec<MatchRecord> = old.matches.iter().rev().cloned().collect();
    assert_eq!(
        store.market_matches(1, None, page).await.expect("trades"),
        newest_first,
        "{context}: the product's trades"
    );
    assert_eq!(
        store.user_matches(old.bea, page).await.expect("trades"),
        newest_first,
        "{context}: bea's trades"
    );
    assert_eq!(
        store.last_sales(1).await.expect("last sales"),
        vec![(0, 23_000)],
        "{context}: the last sale"
    );
    for user in [old.sam, old.bea, old.cal] {
        let written: Vec<NotificationRecord> = old
            .notifications
            .iter()
            .filter(|notification| notification.user_id == user)
            .cloned()
            .collect();
        assert_eq!(
            store
                .notifications(user, 0, 100)
                .await
                .expect("notifications"),
            written,
            "{context}: the notifications of user {user}"
        );
    }
    assert_eq!(
        store.idempotency(old.bea, "k-one").await.expect("a key"),
        Some(old.key.clone()),
        "{context}: the idempotency key"
    );
    assert_eq!(
        store.delivered_seq(old.bea).await.expect("a delivery mark"),
        old.delivered.unwrap_or(0),
        "{context}: bea's delivery mark"
    );
}

/// A token as a server before token keys issued it: no `key` claim.
fn old_token(user_id: i64) -> String {
    let now = now_micros() / SECOND;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user_id.to_string(), "role": "trader", "iat": now, "exp": now + 3_600}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("a token")
}

/// A server on the upgraded database: it starts, expires the order whose
/// time passed while it was down, rebuilds the books in their queue
/// order, numbers the feed on, signs in the old accounts in any case,
/// honours their old tokens and replays their old idempotency key.
async fn check_server(app: &TestApp, old: &OldRows, from: i64) {
    let context = format!("a server upgraded from schema {from}");
    let sam = old_token(old.sam);
    let mut expired = Value::Null;
    for _ in 0..100 {
        let reply = app.get("/api/v1/orders/10", Some(&sam)).await;
        assert_eq!(
            reply.status, 200,
            "{context}: Sam's old token: {:?}",
            reply.body
        );
        expired = reply.body;
        if expired["status"] == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        expired["status"], "expired",
        "{context}: the order that expired while the server was down"
    );

    let book = app.book(1, "10").await;
    assert_eq!(
        (
            book["bids"].clone(),
            book["asks"].clone(),
            book["seq"].clone()
        ),
        (
            json!([{"price": "200.00", "quantity": 4, "orders": 3}]),
            json!([{"price": "230.00", "quantity": 2, "orders": 1}]),
            json!(7),
        ),
        "{context}: the book of size 10, current to the expiry's event (seq 6 + 1)"
    );
    let book = app.book(1, "11").await;
    assert_eq!(
        (book["bids"].clone(), book["asks"].clone()),
        (json!([]), json!([])),
        "{context}: nothing rests in size 11"
    );

    for username in ["Sam", "sam", "BEA"] {
        let reply = app.login(username, PASSWORD).await;
        assert_eq!(
            reply.status, 200,
            "{context}: login {username}: {:?}",
            reply.body
        );
    }
    let reply = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "SAM", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        reply.status, 409,
        "{context}: SAM beside Sam: {:?}",
        reply.body
    );

    let bea = old_token(old.bea);
    let replay = app
        .send(
            reqwest::Method::POST,
            "/api/v1/bids",
            Some(&bea),
            Some(old.keyed_body.clone()),
            &[("idempotency-key", "k-one")],
        )
        .await;
    assert_eq!(
        (replay.status, replay.body.clone()),
        (
            201,
            serde_json::from_str::<Value>(&old.key.response).expect("JSON")
        ),
        "{context}: the old key's first response, replayed"
    );

    // A sale of 3 at 200.00 takes the bids in their old queue order:
    // cal's 6, bea's amended 5, then one of bea's 11.
    let dee = app.register("dee").await;
    let reply = app
        .place(
            &dee,
            "ask",
            &json!({"product_id": 1, "size": "10", "price": "200.00", "quantity": 3}),
        )
        .await;
    assert_eq!(reply.status, 201, "{context}: {:?}", reply.body);
    let taken: Vec<Value> = reply.body["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|trade| trade["bid_order_id"].clone())
        .collect();
    assert_eq!(
        taken,
        vec![json!(6), json!(5), json!(11)],
        "{context}: queue order"
    );
    assert_eq!(
        reply.body["order"]["id"],
        json!(13),
        "{context}: order ids go on after the old ones"
    );
    let trades = reply.body["matches"].as_array().expect("matches");
    assert_eq!(
        trades.first().map(|trade| trade["id"].clone()),
        Some(json!(3)),
        "{context}: match ids go on after the old ones"
    );
}

/// A database at each older schema version, written as a server of that
/// version wrote it, migrates to the latest with every row intact, and a
/// server starts on it.
async fn every_older_schema_upgrades_with_its_rows(backend: Backend) {
    let latest = latest(backend).await;
    for from in 1..latest {
        let (database, mut connection) = database_at(backend, from).await;
        let old = write_old_rows(&mut connection, from).await;
        drop(connection);

        let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
        store
            .migrate()
            .await
            .unwrap_or_else(|error| panic!("the upgrade from schema {from}: {error}"));
        assert_eq!(
            applied(&database).await,
            (1..=latest).collect::<Vec<_>>(),
            "every migration applied once"
        );
        check_store(&store, &old, from).await;
        // The writer claims the upgraded database (on PostgreSQL its
        // generation row came with 0004).
        let mut committer = store.committer();
        committer.fence().await.expect("the writer's lock");
        committer.claim().await.expect("a claim");
        committer.close().await;
        store.close().await;

        let app = spawn_app_on(database, |_| {}).await;
        check_server(&app, &old, from).await;
        app.stop().await;
    }
}

/// Before 0003 a name could be registered beside one differing only in
/// case. Such a database cannot be upgraded as it is: the migration stops
/// with an error naming the migration, the two accounts and the remedy,
/// the server refuses to start with it, and nothing is half done (the
/// schema stays at 2, both accounts stay). Renamed, it upgrades.
async fn names_differing_only_in_case_stop_the_upgrade_and_leave_the_database_as_it_was(
    backend: Backend,
) {
    let (database, mut connection) = database_at(backend, 2).await;
    let ann = old_user(&mut connection, "Ann").await;
    let other = old_user(&mut connection, "ann").await;

    let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
    let refused = store
        .migrate()
        .await
        .expect_err("two names for one account");
    let message = refused.to_string();
    assert!(
        matches!(
            refused,
            StoreError::UsernamesDifferOnlyInCase { migration: 3, .. }
        ),
        "{refused:?}"
    );
    let named = format!("\"Ann\" (id {ann}) and \"ann\" (id {other})");
    assert!(
        message.contains("migration 3") && message.contains(&named) && message.contains("rename"),
        "the error names the migration, the two accounts and what to do: {message}"
    );
    assert_eq!(applied(&database).await, vec![1, 2], "nothing half applied");
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&mut connection)
        .await
        .expect("the users");
    assert_eq!(users, 2);
    // sqlx leaves its migration lock (PostgreSQL's advisory lock) held by
    // the pooled connection a failed migration ran on; a process that
    // stops on the error lets it go, and so does closing the pool.
    store.close().await;

    // The server refuses to start, saying the same.
    match Application::build(test_config(&database)).await {
        Ok(_) => panic!("a server started on a database it could not migrate"),
        Err(error) => {
            let error = error.to_string();
            assert!(error.contains(&named), "{error}");
        }
    }
    assert_eq!(applied(&database).await, vec![1, 2]);

    // Renamed, as the migration's comment says, it upgrades.
    execute(
        &mut connection,
        format!("UPDATE users SET username = 'ann_2' WHERE id = {other}"),
    )
    .await;
    let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
    store.migrate().await.expect("the upgrade, once renamed");
    let latest = latest(backend).await;
    assert_eq!(applied(&database).await, (1..=latest).collect::<Vec<_>>());
    let found = store
        .user_by_name("ANN")
        .await
        .expect("a read")
        .map(|user| (user.id, user.username));
    assert_eq!(found, Some((ann, "Ann".to_owned())));
    let found = store
        .user_by_name("ANN_2")
        .await
        .expect("a read")
        .map(|user| user.id);
    assert_eq!(found, Some(other));
}

/// A PostgreSQL database whose locale folds as Turkish does: `lower('I')`
/// is `'ı'` (ICU, which Debian's PostgreSQL is built with).
const TURKISH: &str = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR' LOCALE 'C.UTF-8'";

/// Until migration 11, PostgreSQL folded usernames by the database's
/// locale, and under a Turkish one "IVAN" folded to "ıvan": it could
/// register beside "ivan". The upgrade that folds names as ASCII stops on
/// such a pair as migration 3 stops on its own, naming them, with the
/// database left as it was.
#[tokio::test]
async fn turkish_names_differing_only_in_case_stop_the_ascii_fold_postgres() {
    let database = TestDatabase::postgres_with(TURKISH).await;
    let (database, mut connection) = database_at_on(database, Backend::Postgres, 10).await;
    let upper = old_user(&mut connection, "IVAN").await;
    let lower = old_user(&mut connection, "ivan").await;

    let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
    let refused = store
        .migrate()
        .await
        .expect_err("two names for one account");
    assert!(
        matches!(
            refused,
            StoreError::UsernamesDifferOnlyInCase { migration: 11, .. }
        ),
        "{refused:?}"
    );
    let named = format!("\"IVAN\" (id {upper}) and \"ivan\" (id {lower})");
    assert!(refused.to_string().contains(&named), "{refused}");
    assert_eq!(applied(&database).await, (1..=10).collect::<Vec<_>>());
    store.close().await;
}

/// On a fresh database with a Turkish locale, a name is one account
/// whatever its case, as anywhere: "ivan" cannot register beside "IVAN",
/// and signs in as it.
#[tokio::test]
async fn a_turkish_database_folds_names_as_ascii_postgres() {
    let app = spawn_app_on(TestDatabase::postgres_with(TURKISH).await, |_| {}).await;
    let ivan = app.register("IVAN").await;
    let again = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "ivan", "password": "another-password"}),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "username_taken"));
    let login = app.login("ivan", "password-of-IVAN").await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(login.body["user"]["id"], ivan.id);
    app.stop().await;
}

/// A migration that a released server applied is never edited: sqlx
/// records each one's checksum, and refuses to start a database whose
/// recorded checksum differs from the embedded file's. The checksums
/// (SHA-384 of the file) of every migration, version 1 first: a new one
/// is added here as it is written, and is then released with it.
#[tokio::test]
async fn released_migrations_are_never_edited() {
    const POSTGRES: &[&str] = &[
        "5d436053c1de87ced6766d32af3fbd5c36bc12885de913e4f93c0fe522c3528a188c7926f2dd540e2e29378cc0632467",
        "149f6c3e3e4ab459a08d0cd2d129b56dd560cd8ff75afc0bcc410cdf2b4431f7d7f7ba01343ffa1fd88c1c32b380ae37",
        "c9218cc9f843e94f83b6fee60b2efebdc5cd805af1fb3664cbaf9c532c87ac38ceb09e066dd4dbbfef6c23bc5a3ed64e",
        "7bf6ca93996527763714febe64e43f92825d2f0f23037de36133fea8ea3af12fe9f74451055c97b0219e267fd87c7e0f",
        "8b39223aa7df5d5decd65754ac8c5fb9d7f3f84dff9f5e9d66863381e88002a06e25f1c6aba217e45147b5a24189bc92",
        "083f8038d308a0f5ccb3a75b910b0ef79e6d6c2c6b051b98c104ba4f9feb9b3597afa760a52d58f4f15e5457a8243494",
        "c3768ef2f7910f8d79255eac3c5bf13798335885311cd5a839586d20cca5815f8ff3774d2156032ef953ae446b1b6c07",
        "5dce9a623ab62b73627957433661c2c4677f83b5d54fd9e9710dd47181554b5515679ded70c84c5670b61c09edc3f516",
        "9157b21074a05dc868092c92b3eff10644a9ead1866355c88d6a97032a519be633f5592ba6814927337c7d1b17b79b1e",
        "32ef2305834b82ddd25fe6488bad0969249b534b5a29ffbd7c199b4611a93c6a9b8ca1f62f0a9173eeb69d6bc4eef4a9",
        "e4d51655ac30fc97ab51c8284d002180e7fbb9e69e799a7483bbd6f8732127a7223d403f2117f4b66b96946002033041",
    ];
    const SQLITE: &[&str] = &[
        "5489ee778911cc37e3a01f6e1fe4b797f3f0dbd92c5d3e0271dc05d81d75a49636f7a6dcd248fffeb86eaa937f3f76d4",
        "149f6c3e3e4ab459a08d0cd2d129b56dd560cd8ff75afc0bcc410cdf2b4431f7d7f7ba01343ffa1fd88c1c32b380ae37",
        "c9218cc9f843e94f83b6fee60b2efebdc5cd805af1fb3664cbaf9c532c87ac38ceb09e066dd4dbbfef6c23bc5a3ed64e",
        "8b39223aa7df5d5decd65754ac8c5fb9d7f3f84dff9f5e9d66863381e88002a06e25f1c6aba217e45147b5a24189bc92",
        "083f8038d308a0f5ccb3a75b910b0ef79e6d6c2c6b051b98c104ba4f9feb9b3597afa760a52d58f4f15e5457a8243494",
        "c3768ef2f7910f8d79255eac3c5bf13798335885311cd5a839586d20cca5815f8ff3774d2156032ef953ae446b1b6c07",
        "c79cc7347cd027973252c2999aeac1835c40c8cb6292f50beccafdff4dafc9d4a4bbdb35de7c0c5fcf018cfb582f7f70",
        "9157b21074a05dc868092c92b3eff10644a9ead1866355c88d6a97032a519be633f5592ba6814927337c7d1b17b79b1e",
        "32ef2305834b82ddd25fe6488bad0969249b534b5a29ffbd7c199b4611a93c6a9b8ca1f62f0a9173eeb69d6bc4eef4a9",
    ];
    let mut edited = Vec::new();
    for (backend, released) in [(Backend::Postgres, POSTGRES), (Backend::Sqlite, SQLITE)] {
        let migrator = migrator(backend).await;
        assert_eq!(
            migrator.iter().count(),
            released.len(),
            "{backend:?}: a migration is missing here, or one was removed; add a new one's \
             checksum (sha384sum of the file)"
        );
        for (version, checksum) in (1..).zip(released) {
            let now: String = migrator
                .iter()
                .find(|migration| migration.version == version)
                .map(|migration| {
                    migration
                        .checksum
                        .iter()
                        .map(|byte| format!("{byte:02x}"))
                        .collect()
                })
                .unwrap_or_else(|| "(gone)".to_owned());
            if now != *checksum {
                edited.push(format!("{backend:?} {version}: {now}"));
            }
        }
    }
    assert!(
        edited.is_empty(),
        "released migrations changed, and databases that applied them will refuse to start: \
         {edited:?}"
    );
}
