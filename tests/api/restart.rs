//! A graceful restart: books rebuilt with their queues' priority, overdue
//! orders expired at start, feed `seq` continuing.

use std::time::Duration;

use bidask_tests::{Backend, on_both_backends, spawn_app, spawn_app_on};
use serde_json::json;

on_both_backends!(a_restart_rebuilds_priority_expires_overdue_orders_and_continues_seq);

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
    let soon = bidask_server::clock::format_micros(
        bidask_server::clock::now_micros() + 2 * bidask_server::clock::SECOND,
    );
    let doomed = app
        .place(
            &cy,
            "bid",
            &json!({"product_id": product, "size": "9", "price": "150.00", "expires_at": soon}),
        )
        .await;
    assert_eq!(doomed.status, 201, "{:?}", doomed.body);
    let doomed_id = doomed.body["order"]["id"].as_i64().expect("an id");
    let book_before = app.book(product, "10").await;

    let database = app.stop().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let app = spawn_app_on(database, |_| {}).await;

    // The expired bid left the book at start, and says so.
    let expired = app
        .get(&format!("/api/v1/orders/{doomed_id}"), Some(&cy.token))
        .await;
    assert_eq!(expired.body["status"], "expired", "{:?}", expired.body);
    assert_eq!(app.book(product, "9").await["bids"], json!([]));

    // The size-10 book is as it was; its seq includes the expiry's events
    // only on size 9, so it is at least what it was.
    let book_after = app.book(product, "10").await;
    assert_eq!(book_after["asks"], book_before["asks"]);
    assert!(
        book_after["seq"].as_i64() > book_before["seq"].as_i64(),
        "the expiry published no event"
    );

    // Priority survived: a buyer takes Bob's ask, not Ann's.
    let buy = app.order(&cy, "bid", product, "10", "200.00").await;
    assert_eq!(buy.status, 201, "{:?}", buy.body);
    assert_eq!(
        buy.body["matches"][0]["ask_order_id"],
        bob_ask.body["order"]["id"]
    );
    // And seq continued without reuse.
    assert!(buy.body["seq"].as_i64() > book_after["seq"].as_i64());
    app.stop().await;
}
