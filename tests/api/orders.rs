//! A trader's own orders: listing, looking up, cancelling and amending them.

use bidask_tests::{
    Backend, Reply, TestApp, TestDatabase, Trader, is_utc_micros, on_both_backends, spawn_app,
    spawn_app_on,
};
use serde_json::{Value, json};

on_both_backends!(
    orders_list_only_the_callers_own_with_filters,
    resting_orders_are_listed_by_status_as_they_fill,
    another_users_order_is_not_found_like_a_missing_one,
    cancelling_an_open_order_takes_it_off_the_book,
    a_new_price_loses_time_priority,
    a_lower_quantity_keeps_time_priority,
    an_amendment_that_crosses_trades_at_once,
    amendments_that_cannot_apply_are_refused,
    amending_to_the_same_terms_changes_nothing,
    open_orders_per_user_are_bounded,
);

/// The id of the order a `POST /bids` or `/asks` reply placed.
fn order_id(reply: &Reply) -> i64 {
    assert_eq!(reply.status, 201, "placing an order: {:?}", reply.body);
    reply.body["order"]["id"].as_i64().expect("an order id")
}

/// The ids of a page of orders, in the order listed.
fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

/// The two resting statuses, which are read from their own index, list
/// an order as it goes from open to partly filled to filled, with and
/// without a product.
async fn resting_orders_are_listed_by_status_as_they_fill(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let jordan = app.create_product("AJ1-CHI", &["10"]).await;
    let dunk = app.create_product("DUNK-PANDA", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let two = json!({"product_id": jordan, "size": "10", "price": "200.00", "quantity": 2});
    let bid = order_id(&app.place(&ann, "bid", &two).await);
    let other = order_id(&app.order(&ann, "bid", dunk, "10", "100.00").await);
    for (sold, open, partly) in [
        (0, vec![bid], vec![]),
        (1, vec![], vec![bid]),
        (2, vec![], vec![]),
    ] {
        if sold > 0 {
            let ask = app.order(&bob, "ask", jordan, "10", "200.00").await;
            assert_eq!(ask.body["matches"].as_array().map(Vec::len), Some(1));
        }
        let of_jordan = format!("product_id={jordan}");
        assert_eq!(
            listed(&app, &ann, &format!("status=open&{of_jordan}")).await,
            open,
            "{sold} sold"
        );
        assert_eq!(
            listed(&app, &ann, &format!("status=partially_filled&{of_jordan}")).await,
            partly,
            "{sold} sold"
        );
        let mut all_open = open.clone();
        all_open.insert(0, other);
        assert_eq!(
            listed(&app, &ann, "status=open").await,
            all_open,
            "{sold} sold"
        );
        assert_eq!(
            listed(&app, &ann, "status=partially_filled").await,
            partly,
            "{sold} sold"
        );
    }
    assert_eq!(
        listed(&app, &ann, "status=filled").await,
        vec![bid],
        "filled, it is listed with the finished ones"
    );
    app.stop().await;
}

/// The ids `GET /orders?{query}` lists for `trader`, which must answer 200.
async fn listed(app: &TestApp, trader: &Trader, query: &str) -> Vec<i64> {
    let reply = app
        .get(&format!("/api/v1/orders?{query}"), Some(&trader.token))
        .await;
    assert_eq!(reply.status, 200, "{query}: {:?}", reply.body);
    ids(&reply.body)
}

/// `GET /orders/{id}` as `trader`.
async fn fetch(app: &TestApp, trader: &Trader, id: i64) -> Reply {
    app.get(&format!("/api/v1/orders/{id}"), Some(&trader.token))
        .await
}

async fn orders_list_only_the_callers_own_with_filters(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let jordan = app.create_product("AJ1-CHI", &["10"]).await;
    let dunk = app.create_product("DUNK-PANDA", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;

    let ann_bid = order_id(&app.order(&ann, "bid", jordan, "10", "200.00").await);
    let ann_ask = order_id(&app.order(&ann, "ask", jordan, "10", "300.00").await);
    let ann_dunk = order_id(&app.order(&ann, "bid", dunk, "10", "150.00").await);
    let bob_bid = order_id(&app.order(&bob, "bid", jordan, "10", "190.00").await);
    let bob_buys = app.order(&bob, "bid", jordan, "10", "300.00").await;
    let bob_buys = {
        assert_eq!(bob_buys.body["order"]["status"], "filled");
        order_id(&bob_buys)
    };

    let all = app.get("/api/v1/orders", Some(&ann.token)).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(
        ids(&all.body),
        vec![ann_dunk, ann_ask, ann_bid],
        "own orders only, newest first"
    );
    assert_eq!(all.body["next_cursor"], json!(null));
    let listed_ask = all.body["items"][1].clone();
    assert_eq!(listed_ask["status"], "filled");
    assert_eq!(listed_ask["side"], "ask");
    assert_eq!(listed_ask["price"], "300.00");
    assert_eq!(listed_ask["remaining_quantity"], 0);
    assert_eq!(listed_ask, fetch(&app, &ann, ann_ask).await.body);

    let bobs = app.get("/api/v1/orders", Some(&bob.token)).await;
    assert_eq!(ids(&bobs.body), vec![bob_buys, bob_bid]);

    let filters: [(String, Vec<i64>); 10] = [
        ("status=open".to_owned(), vec![ann_dunk, ann_bid]),
        ("status=filled".to_owned(), vec![ann_ask]),
        ("status=cancelled".to_owned(), vec![]),
        ("status=partially_filled".to_owned(), vec![]),
        ("status=expired".to_owned(), vec![]),
        (format!("product_id={dunk}"), vec![ann_dunk]),
        (format!("product_id={jordan}"), vec![ann_ask, ann_bid]),
        (format!("status=open&product_id={jordan}"), vec![ann_bid]),
        (format!("status=filled&product_id={dunk}"), vec![]),
        ("limit=1".to_owned(), vec![ann_dunk]),
    ];
    for (query, expected) in filters {
        assert_eq!(listed(&app, &ann, &query).await, expected, "{query}");
    }

    let first = app.get("/api/v1/orders?limit=2", Some(&ann.token)).await;
    assert_eq!(ids(&first.body), vec![ann_dunk, ann_ask]);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a full page has a next_cursor")
        .to_owned();
    let second = app
        .get(
            &format!("/api/v1/orders?limit=2&cursor={cursor}"),
            Some(&ann.token),
        )
        .await;
    assert_eq!(ids(&second.body), vec![ann_bid]);
    assert_eq!(second.body["next_cursor"], json!(null));

    for query in [
        "status=bogus",
        "status=OPEN",
        "product_id=abc",
        "product_id=99999999999999999999",
        "limit=0",
    ] {
        let reply = app
            .get(&format!("/api/v1/orders?{query}"), Some(&ann.token))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{query}: {:?}",
            reply.body
        );
        let field = query.split('=').next().unwrap_or_default();
        assert_eq!(reply.body["error"]["field"], field, "{query}");
        reply.assert_plain_message();
    }

    let anonymous = app.get("/api/v1/orders", None).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "missing_token"));
    app.stop().await;
}

async fn another_users_order_is_not_found_like_a_missing_one(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_bid = order_id(&app.order(&ann, "bid", product, "10", "200.00").await);

    let own = fetch(&app, &ann, ann_bid).await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    let order = &own.body;
    assert_eq!(order["id"], ann_bid);
    assert_eq!(order["product_id"], product);
    assert_eq!(order["size"], "10");
    assert_eq!(order["side"], "bid");
    assert_eq!(order["price"], "200.00");
    assert_eq!(order["quantity"], 1);
    assert_eq!(order["remaining_quantity"], 1);
    assert_eq!(order["status"], "open");
    assert_eq!(order["time_in_force"], "gtc");
    assert_eq!(order["cancel_reason"], json!(null));
    for time in ["expires_at", "created_at"] {
        assert!(is_utc_micros(&order[time]), "{time}: {order}");
    }

    let someone_elses = fetch(&app, &bob, ann_bid).await;
    assert_eq!(
        (someone_elses.status, someone_elses.code()),
        (404, "not_found")
    );
    let nonexistent = fetch(&app, &bob, ann_bid + 1_000_000).await;
    assert_eq!((nonexistent.status, nonexistent.code()), (404, "not_found"));
    assert_eq!(
        someone_elses.body, nonexistent.body,
        "another user's order must look exactly like a missing one"
    );
    for id in ["abc", "-1", "0", "1.5", "99999999999999999999"] {
        let reply = app
            .get(&format!("/api/v1/orders/{id}"), Some(&ann.token))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{id}: {:?}",
            reply.body
        );
    }
    let anonymous = app.get(&format!("/api/v1/orders/{ann_bid}"), None).await;
    assert_eq!(anonymous.status, 401);
    app.stop().await;
}

async fn cancelling_an_open_order_takes_it_off_the_book(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_bid = order_id(
        &app.place(
            &ann,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "200.00", "quantity": 2}),
        )
        .await,
    );
    let bob_bid = order_id(&app.order(&bob, "bid", product, "10", "195.00").await);
    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([
            {"price": "200.00", "quantity": 2, "orders": 1},
            {"price": "195.00", "quantity": 1, "orders": 1},
        ])
    );

    let cancelled = app
        .delete(&format!("/api/v1/orders/{ann_bid}"), Some(&ann.token))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["id"], ann_bid);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["cancel_reason"], "requested");
    assert_eq!(cancelled.body["quantity"], 2);
    assert_eq!(
        cancelled.body["remaining_quantity"], 2,
        "a cancelled order keeps what was left unfilled"
    );
    let seq = cancelled.body["seq"].as_i64().expect("a seq");

    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([{"price": "195.00", "quantity": 1, "orders": 1}]),
        "the cancelled order's level is gone"
    );
    assert_eq!(book["seq"], seq);
    let stored = fetch(&app, &ann, ann_bid).await;
    assert_eq!(stored.body["status"], "cancelled");
    assert_eq!(stored.body["cancel_reason"], "requested");
    assert_eq!(stored.body["remaining_quantity"], 2);
    let cancelled_list = app
        .get("/api/v1/orders?status=cancelled", Some(&ann.token))
        .await;
    assert_eq!(ids(&cancelled_list.body), vec![ann_bid]);

    let again = app
        .delete(&format!("/api/v1/orders/{ann_bid}"), Some(&ann.token))
        .await;
    assert_eq!((again.status, again.code()), (409, "order_not_open"));
    // A finished order is as invisible to others as an open one.
    let others_finished = app
        .delete(&format!("/api/v1/orders/{ann_bid}"), Some(&bob.token))
        .await;
    assert_eq!(
        (others_finished.status, others_finished.code()),
        (404, "not_found")
    );

    let not_hers = app
        .delete(&format!("/api/v1/orders/{bob_bid}"), Some(&ann.token))
        .await;
    assert_eq!((not_hers.status, not_hers.code()), (404, "not_found"));
    let missing = app
        .delete(
            &format!("/api/v1/orders/{}", bob_bid + 1_000_000),
            Some(&ann.token),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    let anonymous = app.delete(&format!("/api/v1/orders/{bob_bid}"), None).await;
    assert_eq!(anonymous.status, 401);

    let bobs = fetch(&app, &bob, bob_bid).await;
    assert_eq!(bobs.body["status"], "open", "{:?}", bobs.body);
    assert_eq!(
        app.book(product, "10").await["bids"],
        json!([{"price": "195.00", "quantity": 1, "orders": 1}])
    );
    app.stop().await;
}

async fn a_new_price_loses_time_priority(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let carl = app.register("carl").await;
    let ann_ask = order_id(&app.order(&ann, "ask", product, "10", "220.00").await);
    let bob_ask = order_id(&app.order(&bob, "ask", product, "10", "220.00").await);

    let away = app
        .patch(
            &format!("/api/v1/orders/{ann_ask}"),
            Some(&ann.token),
            &json!({"price": "225.00"}),
        )
        .await;
    assert_eq!(away.status, 200, "{:?}", away.body);
    assert_eq!(away.body["id"], ann_ask, "the same order, amended");
    assert_eq!(away.body["price"], "225.00");
    assert_eq!(away.body["status"], "open");
    assert_eq!(away.body["matches"], json!([]));
    assert!(away.body["seq"].as_i64().is_some(), "{:?}", away.body);
    assert_eq!(
        app.book(product, "10").await["asks"],
        json!([
            {"price": "220.00", "quantity": 1, "orders": 1},
            {"price": "225.00", "quantity": 1, "orders": 1},
        ])
    );

    let back = app
        .patch(
            &format!("/api/v1/orders/{ann_ask}"),
            Some(&ann.token),
            &json!({"price": 220}),
        )
        .await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    assert_eq!(back.body["price"], "220.00");
    let book = app.book(product, "10").await;
    assert_eq!(
        book["asks"],
        json!([{"price": "220.00", "quantity": 2, "orders": 2}])
    );
    assert_eq!(book["seq"], back.body["seq"]);

    let first = app.order(&carl, "bid", product, "10", "220.00").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(
        first.body["matches"][0]["ask_order_id"], bob_ask,
        "Bob's ask is now older at 220.00 and trades first"
    );
    let second = app.order(&carl, "bid", product, "10", "220.00").await;
    assert_eq!(second.body["matches"][0]["ask_order_id"], ann_ask);
    app.stop().await;
}

async fn a_lower_quantity_keeps_time_priority(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let carl = app.register("carl").await;
    let ann_ask = order_id(
        &app.place(
            &ann,
            "ask",
            &json!({"product_id": product, "size": "10", "price": "220.00", "quantity": 3}),
        )
        .await,
    );
    let bob_ask = order_id(&app.order(&bob, "ask", product, "10", "220.00").await);

    let smaller = app
        .patch(
            &format!("/api/v1/orders/{ann_ask}"),
            Some(&ann.token),
            &json!({"quantity": 2}),
        )
        .await;
    assert_eq!(smaller.status, 200, "{:?}", smaller.body);
    assert_eq!(smaller.body["quantity"], 2);
    assert_eq!(smaller.body["remaining_quantity"], 2);
    assert_eq!(smaller.body["price"], "220.00");
    assert_eq!(smaller.body["status"], "open");
    assert_eq!(smaller.body["matches"], json!([]));
    let book = app.book(product, "10").await;
    assert_eq!(
        book["asks"],
        json!([{"price": "220.00", "quantity": 3, "orders": 2}])
    );
    assert_eq!(book["seq"], smaller.body["seq"]);

    let bought = app.order(&carl, "bid", product, "10", "220.00").await;
    assert_eq!(bought.status, 201, "{:?}", bought.body);
    assert_eq!(
        bought.body["matches"][0]["ask_order_id"], ann_ask,
        "Ann's ask kept its place ahead of Bob's"
    );
    let ann_now = fetch(&app, &ann, ann_ask).await;
    assert_eq!(ann_now.body["status"], "partially_filled");
    assert_eq!(ann_now.body["remaining_quantity"], 1);
    let bob_now = fetch(&app, &bob, bob_ask).await;
    assert_eq!(bob_now.body["status"], "open");
    app.stop().await;
}

async fn an_amendment_that_crosses_trades_at_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_bid = order_id(
        &app.place(
            &ann,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "200.00", "quantity": 2}),
        )
        .await,
    );
    let bob_ask = order_id(&app.order(&bob, "ask", product, "10", "220.00").await);

    let crossed = app
        .patch(
            &format!("/api/v1/orders/{ann_bid}"),
            Some(&ann.token),
            &json!({"price": "225.00"}),
        )
        .await;
    assert_eq!(crossed.status, 200, "{:?}", crossed.body);
    assert_eq!(crossed.body["id"], ann_bid);
    assert_eq!(crossed.body["price"], "225.00");
    assert_eq!(crossed.body["status"], "partially_filled");
    assert_eq!(crossed.body["remaining_quantity"], 1);
    let matches = crossed.body["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 1, "{:?}", crossed.body);
    assert_eq!(matches[0]["price"], "220.00", "trades at the resting price");
    assert_eq!(matches[0]["quantity"], 1);
    assert_eq!(matches[0]["bid_order_id"], ann_bid);
    assert_eq!(matches[0]["ask_order_id"], bob_ask);
    assert_eq!(matches[0]["taker_side"], "bid");

    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([{"price": "225.00", "quantity": 1, "orders": 1}])
    );
    assert_eq!(book["asks"], json!([]));
    assert_eq!(book["seq"], crossed.body["seq"]);
    assert_eq!(fetch(&app, &bob, bob_ask).await.body["status"], "filled");
    let stored = fetch(&app, &ann, ann_bid).await;
    assert_eq!(stored.body["status"], "partially_filled");
    assert_eq!(stored.body["price"], "225.00");
    app.stop().await;
}

async fn amendments_that_cannot_apply_are_refused(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_ask = order_id(
        &app.place(
            &ann,
            "ask",
            &json!({"product_id": product, "size": "10", "price": "220.00", "quantity": 3}),
        )
        .await,
    );
    let path = format!("/api/v1/orders/{ann_ask}");
    let before = fetch(&app, &ann, ann_ask).await.body;

    for (body, field) in [
        (json!({}), "body"),
        (json!({"price": null, "quantity": null}), "body"),
        (json!({"price": "abc"}), "price"),
        (json!({"price": "0"}), "price"),
        (json!({"price": "220.001"}), "price"),
        (json!({"quantity": 0}), "quantity"),
        (json!({"quantity": 10_001}), "quantity"),
        (json!({"price": "221.00", "quantity": -1}), "quantity"),
    ] {
        let reply = app.patch(&path, Some(&ann.token), &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    let malformed = app
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&ann.token),
            Some("{\"price\": ".to_owned()),
            &[],
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "malformed_json")
    );
    assert_eq!(fetch(&app, &ann, ann_ask).await.body, before);

    let not_hers = app
        .patch(&path, Some(&bob.token), &json!({"price": "221.00"}))
        .await;
    assert_eq!((not_hers.status, not_hers.code()), (404, "not_found"));
    let missing = app
        .patch(
            &format!("/api/v1/orders/{}", ann_ask + 1_000_000),
            Some(&ann.token),
            &json!({"price": "221.00"}),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    assert_eq!(fetch(&app, &ann, ann_ask).await.body, before);

    // Two of three units sell: the total cannot go below what has filled.
    let bought = app
        .place(
            &bob,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "220.00", "quantity": 2}),
        )
        .await;
    assert_eq!(
        bought.body["order"]["status"], "filled",
        "{:?}",
        bought.body
    );
    for quantity in [1, 2] {
        let reply = app
            .patch(&path, Some(&ann.token), &json!({"quantity": quantity}))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "quantity {quantity}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], "quantity");
    }
    let more = app
        .patch(&path, Some(&ann.token), &json!({"quantity": 4}))
        .await;
    assert_eq!(more.status, 200, "{:?}", more.body);
    assert_eq!(more.body["quantity"], 4);
    assert_eq!(more.body["remaining_quantity"], 2);
    assert_eq!(more.body["status"], "partially_filled");

    // Bob's order is filled, Ann's after the next sale: neither amends.
    let bob_bid = bought.body["order"]["id"].as_i64().expect("an id");
    let filled = app
        .patch(
            &format!("/api/v1/orders/{bob_bid}"),
            Some(&bob.token),
            &json!({"price": "230.00"}),
        )
        .await;
    assert_eq!((filled.status, filled.code()), (409, "order_not_open"));
    let rest = app
        .place(
            &bob,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "220.00", "quantity": 2}),
        )
        .await;
    assert_eq!(rest.body["order"]["status"], "filled", "{:?}", rest.body);
    let done = app
        .patch(&path, Some(&ann.token), &json!({"quantity": 5}))
        .await;
    assert_eq!((done.status, done.code()), (409, "order_not_open"));
    let cancel_done = app.delete(&path, Some(&ann.token)).await;
    assert_eq!(
        (cancel_done.status, cancel_done.code()),
        (409, "order_not_open")
    );
    assert_eq!(fetch(&app, &ann, ann_ask).await.body["status"], "filled");
    app.stop().await;
}

async fn amending_to_the_same_terms_changes_nothing(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_ask = order_id(&app.order(&ann, "ask", product, "10", "220.00").await);
    let bob_ask = order_id(&app.order(&bob, "ask", product, "10", "220.00").await);
    let book_before = app.book(product, "10").await;

    let same = app
        .patch(
            &format!("/api/v1/orders/{ann_ask}"),
            Some(&ann.token),
            &json!({"price": "220.00", "quantity": 1}),
        )
        .await;
    assert_eq!(same.status, 200, "{:?}", same.body);
    assert_eq!(same.body["id"], ann_ask);
    assert_eq!(same.body["price"], "220.00");
    assert_eq!(same.body["quantity"], 1);
    assert_eq!(same.body["status"], "open");
    assert_eq!(same.body["matches"], json!([]));
    assert_eq!(app.book(product, "10").await["asks"], book_before["asks"]);

    let carl = app.register("carl").await;
    let bought = app.order(&carl, "bid", product, "10", "220.00").await;
    assert_eq!(
        bought.body["matches"][0]["ask_order_id"], ann_ask,
        "an amendment that changes nothing keeps the order's place (Bob's is {bob_ask})"
    );
    app.stop().await;
}

/// One user may have only so many orders resting in one product: past
/// the bound a resting order is 409 and nothing is stored; an ioc order
/// still trades; other users and other products are not held back; a
/// cancel frees a place; and a restart counts the books it rebuilds.
async fn open_orders_per_user_are_bounded(backend: Backend) {
    let bounded = |config: &mut bidask_server::config::ServeConfig| config.max_open_orders = 2;
    let mut app = spawn_app_on(TestDatabase::new(backend).await, bounded).await;
    let product = app.create_product("CAP-1", &["10"]).await;
    let other = app.create_product("CAP-2", &["10"]).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let first = order_id(&app.order(&ann, "bid", product, "10", "100.00").await);
    order_id(&app.order(&ann, "bid", product, "10", "101.00").await);
    let refused = app.order(&ann, "bid", product, "10", "102.00").await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "too_many_open_orders"),
        "{:?}",
        refused.body
    );
    let open = app
        .get(
            &format!("/api/v1/orders?product_id={product}&status=open"),
            Some(&ann.token),
        )
        .await;
    assert_eq!(
        open.body["items"].as_array().map(Vec::len),
        Some(2),
        "the refused order is not stored: {:?}",
        open.body
    );

    order_id(&app.order(&bob, "ask", product, "10", "150.00").await);
    let bought = app
        .place(
            &ann,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "150.00", "time_in_force": "ioc"}),
        )
        .await;
    assert_eq!(bought.status, 201, "{:?}", bought.body);
    assert_eq!(bought.body["order"]["status"], "filled");
    order_id(&app.order(&bob, "bid", product, "10", "99.00").await);
    order_id(&app.order(&ann, "bid", other, "10", "99.00").await);

    let cancelled = app
        .delete(&format!("/api/v1/orders/{first}"), Some(&ann.token))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    order_id(&app.order(&ann, "bid", product, "10", "102.00").await);

    let app = spawn_app_on(app.stop().await, bounded).await;
    let refused = app.order(&ann, "bid", product, "10", "103.00").await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "too_many_open_orders")
    );
    app.stop().await;
}
