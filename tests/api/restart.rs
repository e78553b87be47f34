//! A graceful restart: books rebuilt with their queues' priority, overdue
//! orders expired at start, feed `seq` continuing.

use bidask_tests::{Backend, TestDatabase, on_both_backends, spawn_app, spawn_app_on};
use serde_json::{Value, json};

on_both_backends!(a_restart_rebuilds_priority_expires_overdue_orders_and_continues_seq);

/// The embedded database holds password hashes: the server creates its
/// file, and SQLite its `-wal` and `-shm` files, for their owner only,
/// as the backup and the kept secret are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let file = bidask_store::sqlite_file(&database.url).expect("a SQLite file");
    assert!(!file.exists(), "made by the server");
    let app = spawn_app_on(database, |_| {}).await;
    app.register("ann").await;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", file.display());
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|error| panic!("{path}: {error}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path}: {:o}", mode & 0o777);
    }
    app.stop().await;
}

/// Without `BIDASK_JWT_SECRET`, the embedded database's server makes a
/// secret once, keeps it beside the file where only its owner reads it,
/// and signs with it again after a restart: sessions survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_secret_is_kept_beside_the_sqlite_file() {
    use std::os::unix::fs::PermissionsExt;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let file = bidask_store::sqlite_file(&database.url).expect("a SQLite file");
    let kept = bidask_store::beside(&file, "jwt-secret");
    let app = spawn_app_on(database, |config| config.jwt_secret = None).await;
    let ann = app.register("ann").await;
    let secret = std::fs::read(&kept).expect("the secret beside the database");
    assert!(secret.len() >= 32, "{} bytes", secret.len());
    let mode = std::fs::metadata(&kept)
        .expect("its metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");

    let database = app.stop().await;
    let app = spawn_app_on(database, |config| config.jwt_secret = None).await;
    let me = app.get("/api/v1/me", Some(&ann.token)).await;
    assert_eq!(
        (me.status, &me.body["username"]),
        (200, &json!("ann")),
        "{:?}",
        me.body
    );
    assert_eq!(
        std::fs::read(&kept).expect("still there"),
        secret,
        "not made anew"
    );
    app.stop().await;
}

/// A kept secret is only ever read, whatever it holds: 48 bytes that are
/// not text sign tokens as they are; one too short stops the server,
/// naming the file, rather than being replaced (which would sign everyone
/// out for good, a restored secret too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_secret_is_used_as_it_is_or_refused_never_replaced() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let file = bidask_store::sqlite_file(&database.url).expect("a SQLite file");
    let kept = bidask_store::beside(&file, "jwt-secret");
    let secret: Vec<u8> = (0..48u8).map(|byte| byte.wrapping_mul(37) | 0x80).collect();
    std::fs::write(&kept, &secret).expect("a secret that is not text");
    let app = spawn_app_on(database, |config| config.jwt_secret = None).await;
    let ann = app.register("ann").await;
    let database = app.stop().await;
    assert_eq!(
        std::fs::read(&kept).expect("the secret"),
        secret,
        "replaced"
    );
    let app = spawn_app_on(database, |config| config.jwt_secret = None).await;
    let me = app.get("/api/v1/me", Some(&ann.token)).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let database = app.stop().await;

    std::fs::write(&kept, b"too short\n").expect("a short secret");
    let mut config = bidask_tests::test_config(&database);
    config.jwt_secret = None;
    let refused = bidask_server::startup::Application::build(config)
        .await
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains(&kept.display().to_string()) && refused.contains("9 bytes"),
        "{refused}"
    );
    assert_eq!(std::fs::read(&kept).expect("the secret"), b"too short\n");
}

async fn a_restart_rebuilds_priority_expires_overdue_orders_and_continues_seq(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("RESTART-1", &["9", "10"]).await;
    let (ann, bob, cy) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cyd").await,
    );
    // Two asks at 200.00: Ann's first. Ann moves hers away and back, so
    // Bob's is now first in the queue.
    let ann_ask = app.order(&ann, "ask", product, "10", "200.00").await;
    let bob_ask = app.order(&bob, "ask", product, "10", "200.00").await;
    let ann_id = ann_ask.body["order"]["id"].as_i64().expect("an id");
    for price in ["201.00", "200.00"] {
        let moved = app
            .patch(
                &format!("/api/v1/orders/{ann_id}"),
                Some(&ann.token),
                &json!({"price": price}),
            )
            .await;
        assert_eq!(moved.status, 200, "{:?}", moved.body);
    }
    // A bid that expires while the server is down.
    let doomed = app.order(&cy, "bid", product, "9", "150.00").await;
    assert_eq!(doomed.status, 201, "{:?}", doomed.body);
    let doomed_id = doomed.body["order"]["id"].as_i64().expect("an id");
    let book_before = app.book(product, "10").await;

    let database = app.stop().await;
    // Its time passes while nothing runs: a microsecond after it was made.
    let mut connection = database.connect().await;
    sqlx::query("UPDATE orders SET expires_at = created_at + 1 WHERE id = $1")
        .bind(doomed_id)
        .execute(&mut connection)
        .await
        .expect("the bid's expiry moved into the past");
    drop(connection);
    let app = spawn_app_on(database, |_| {}).await;

    // The expired bid left the book at start, and says so.
    let expired = app
        .get(&format!("/api/v1/orders/{doomed_id}"), Some(&cy.token))
        .await;
    assert_eq!(expired.body["status"], "expired", "{:?}", expired.body);
    assert_eq!(app.book(product, "9").await["bids"], json!([]));

    // The size-10 book is as it was; the product's seq counts one more
    // event, the expiry's emptied size-9 level.
    let seq = |book: &Value| book["seq"].as_i64().expect("a seq");
    let book_after = app.book(product, "10").await;
    assert_eq!(book_after["asks"], book_before["asks"]);
    assert_eq!(
        seq(&book_after),
        seq(&book_before) + 1,
        "the expiry's one event"
    );

    // Priority survived: a buyer takes Bob's ask, not Ann's.
    let buy = app.order(&cy, "bid", product, "10", "200.00").await;
    assert_eq!(buy.status, 201, "{:?}", buy.body);
    assert_eq!(
        buy.body["matches"][0]["ask_order_id"],
        bob_ask.body["order"]["id"]
    );
    // And seq continued without reuse: the match, and the 200.00 level
    // down to Ann's ask.
    assert_eq!(seq(&buy.body), seq(&book_after) + 2, "{:?}", buy.body);

    // An ask placed after the restart queues behind Ann's, which rested
    // through it, and still does after one more: queue places continue
    // after the resting orders'.
    let late_ask = app.order(&bob, "ask", product, "10", "200.00").await;
    assert_eq!(late_ask.status, 201, "{:?}", late_ask.body);
    let app = spawn_app_on(app.stop().await, |_| {}).await;
    let buy = app.order(&cy, "bid", product, "10", "200.00").await;
    assert_eq!(
        buy.body["matches"][0]["ask_order_id"], ann_id,
        "{:?}",
        buy.body
    );
    app.stop().await;
}
