//! `Idempotency-Key` on `POST /bids` and `POST /asks`: a retried request
//! gets the first answer and places nothing new.

use bidask_tests::{
    Backend, Reply, TestApp, TestDatabase, Trader, on_both_backends, spawn_app, spawn_app_on,
};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    the_same_key_and_body_return_the_first_response_and_place_once,
    the_same_key_with_another_body_is_a_conflict,
    a_retry_serialized_anew_is_the_same_order,
    a_key_stored_as_its_request_bytes_still_replays,
    an_array_body_is_not_a_retry_of_an_order,
    the_same_key_of_another_user_is_independent,
    a_key_must_be_one_to_255_characters,
    a_retry_is_answered_from_the_key_even_after_its_expiry_passed,
    a_key_older_than_a_day_may_be_used_again,
    the_same_key_sent_at_once_places_once,
    a_refusal_for_the_open_orders_bound_is_the_keys_answer,
);

/// `POST /{side}s` as `trader` with `body` and `Idempotency-Key: key`.
async fn place_with_key(
    app: &TestApp,
    trader: &Trader,
    side: &str,
    body: &Value,
    key: &str,
) -> Reply {
    app.send(
        Method::POST,
        &format!("/api/v1/{side}s"),
        Some(&trader.token),
        Some(body.to_string()),
        &[("Idempotency-Key", key)],
    )
    .await
}

/// A server with one product and Ann's first bid on it, placed with `key`.
struct First {
    app: TestApp,
    ann: Trader,
    product: i64,
    body: Value,
    first: Reply,
}

async fn first_bid(backend: Backend, key: &str) -> First {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let body = json!({"product_id": product, "size": "10", "price": "200.00"});
    let first = place_with_key(&app, &ann, "bid", &body, key).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    First {
        app,
        ann,
        product,
        body,
        first,
    }
}

/// The ids of `trader`'s orders, newest first.
async fn order_ids(app: &TestApp, trader: &Trader) -> Vec<i64> {
    let reply = app.get("/api/v1/orders", Some(&trader.token)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

async fn the_same_key_and_body_return_the_first_response_and_place_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let body = json!({"product_id": product, "size": "10", "price": "200.00", "quantity": 2});

    let first = place_with_key(&app, &ann, "bid", &body, "ann-bid-1").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let second = place_with_key(&app, &ann, "bid", &body, "ann-bid-1").await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    assert_eq!(second.body, first.body, "the replay is the first response");
    assert_eq!(second.body["order"]["id"], first.body["order"]["id"]);
    assert_eq!(second.body["seq"], first.body["seq"]);
    let order = first.body["order"]["id"].as_i64().expect("an id");
    let location = Some(format!("/api/v1/orders/{order}"));
    assert_eq!(first.location, location, "the 201 names the order");
    assert_eq!(second.location, location, "so does its replay");
    assert_eq!(order_ids(&app, &ann).await, vec![order]);
    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([{"price": "200.00", "quantity": 2, "orders": 1}])
    );
    assert_eq!(book["seq"], first.body["seq"]);

    // A retried crossing ask: one sale, and the replay shows the same match.
    let ask = json!({"product_id": product, "size": "10", "price": "195.00"});
    let sold = place_with_key(&app, &bob, "ask", &ask, "bob-ask-1").await;
    assert_eq!(sold.status, 201, "{:?}", sold.body);
    assert_eq!(sold.body["matches"].as_array().map(Vec::len), Some(1));
    let replay = place_with_key(&app, &bob, "ask", &ask, "bob-ask-1").await;
    assert_eq!(replay.status, 201, "{:?}", replay.body);
    assert_eq!(replay.body, sold.body);
    let bob_matches = app.get("/api/v1/matches", Some(&bob.token)).await;
    assert_eq!(
        bob_matches.body["items"].as_array().map(Vec::len),
        Some(1),
        "the replay traded nothing: {:?}",
        bob_matches.body
    );
    assert_eq!(order_ids(&app, &bob).await.len(), 1);
    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([{"price": "200.00", "quantity": 1, "orders": 1}])
    );
    assert_eq!(book["seq"], sold.body["seq"]);

    // The replay is of the first response, not of the order as it is now.
    let later = place_with_key(&app, &ann, "bid", &body, "ann-bid-1").await;
    assert_eq!(later.body, first.body);
    let now = app
        .get(&format!("/api/v1/orders/{order}"), Some(&ann.token))
        .await;
    assert_eq!(now.body["status"], "partially_filled");

    // Without a key the same body is a new order.
    let again = app.place(&ann, "bid", &body).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_ne!(again.body["order"]["id"], first.body["order"]["id"]);
    assert_eq!(order_ids(&app, &ann).await.len(), 2);
    app.stop().await;
}

async fn the_same_key_with_another_body_is_a_conflict(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10", "11"]).await;
    let ann = app.register("ann").await;
    let body = json!({"product_id": product, "size": "10", "price": "200.00"});
    let first = place_with_key(&app, &ann, "bid", &body, "key-1").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let book_before = app.book(product, "10").await;

    for (what, side, other) in [
        (
            "another price",
            "bid",
            json!({"product_id": product, "size": "10", "price": "201.00"}),
        ),
        (
            "another size",
            "bid",
            json!({"product_id": product, "size": "11", "price": "200.00"}),
        ),
        (
            "another quantity",
            "bid",
            json!({"product_id": product, "size": "10", "price": "200.00", "quantity": 2}),
        ),
        (
            "another time in force",
            "bid",
            json!({"product_id": product, "size": "10", "price": "200.00", "time_in_force": "ioc"}),
        ),
        ("the other side", "ask", body.clone()),
        (
            "an expires_at where none was sent",
            "bid",
            json!({"product_id": product, "size": "10", "price": "200.00", "expires_at": "2099-01-01T00:00:00Z"}),
        ),
    ] {
        let reply = place_with_key(&app, &ann, side, &other, "key-1").await;
        assert_eq!(
            (reply.status, reply.code()),
            (409, "idempotency_key_reused"),
            "{what}: {:?}",
            reply.body
        );
    }
    assert_eq!(
        order_ids(&app, &ann).await,
        vec![first.body["order"]["id"].as_i64().expect("an id")]
    );
    assert_eq!(app.book(product, "10").await, book_before);
    assert_eq!(app.book(product, "11").await["bids"], json!([]));

    let replay = place_with_key(&app, &ann, "bid", &body, "key-1").await;
    assert_eq!(replay.body, first.body, "the key still replays its request");
    app.stop().await;
}

/// A key stored when keys were compared as the bytes of their request
/// still replays for a retry sent as before, so that an upgrade does not
/// turn a retry that straddles it into a 409.
async fn a_key_stored_as_its_request_bytes_still_replays(backend: Backend) {
    use sha2::{Digest, Sha256};

    let First {
        app,
        ann,
        product,
        body,
        first,
    } = first_bid(backend, "before-1").await;
    let bytes_hash = format!(
        "sha256:{:x}",
        Sha256::digest(format!("bid\n{body}").as_bytes())
    );
    let mut database = app.database.as_ref().expect("a database").connect().await;
    sqlx::query("UPDATE idempotency_keys SET request_hash = $1 WHERE key = 'before-1'")
        .bind(bytes_hash)
        .execute(&mut database)
        .await
        .expect("the key as an older server stored it");
    let again = place_with_key(&app, &ann, "bid", &body, "before-1").await;
    assert_eq!((again.status, &again.body), (201, &first.body));
    let other = json!({"product_id": product, "size": "10", "price": "201.00"});
    let refused = place_with_key(&app, &ann, "bid", &other, "before-1").await;
    assert_eq!(refused.code(), "idempotency_key_reused");
    assert_eq!(order_ids(&app, &ann).await.len(), 1);
    app.stop().await;
}

/// An array is no order, though it could fill one field by field: it is
/// refused, not taken for the stored order's retry.
async fn an_array_body_is_not_a_retry_of_an_order(backend: Backend) {
    let First {
        app, ann, product, ..
    } = first_bid(backend, "array-1").await;
    let array = json!([product, "10", "200.00", null, null, null]);
    let reply = place_with_key(&app, &ann, "bid", &array, "array-1").await;
    assert_eq!(reply.code(), "idempotency_key_reused", "{:?}", reply.body);
    app.stop().await;
}

/// A retry is the same order however the client serializes it again: key
/// order and spacing, a price as a number or with fewer decimals, a size as
/// a number, the defaults spelled out, a field the API ignores, the same
/// instant at another offset.
async fn a_retry_serialized_anew_is_the_same_order(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let send = |body: String| {
        app.send(
            Method::POST,
            "/api/v1/bids",
            Some(&ann.token),
            Some(body),
            &[("Idempotency-Key", "anew-1")],
        )
    };
    // Ten days ahead, to the second: `…Z` and `…+00:00` name one instant.
    let micros = bidask_server::clock::now_micros() + 10 * bidask_server::clock::DAY;
    let at = bidask_server::clock::format_micros(micros - micros % 1_000_000);
    let second = at.trim_end_matches('Z').trim_end_matches(".000000");
    let first = send(format!(
        r#"{{"product_id":{product},"size":"10","price":"200.00","expires_at":"{second}Z"}}"#
    ))
    .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    for body in [
        format!(
            r#"{{ "expires_at": "{second}+00:00", "price": 200, "size": 10, "product_id": {product} }}"#
        ),
        format!(
            r#"{{"product_id":{product},"size":"10","price":"200.0","quantity":1,"time_in_force":"gtc","expires_at":"{at}","note":"retry"}}"#
        ),
    ] {
        let again = send(body.clone()).await;
        assert_eq!((again.status, &again.body), (201, &first.body), "{body}");
    }
    assert_eq!(order_ids(&app, &ann).await.len(), 1);
    app.stop().await;
}

async fn the_same_key_of_another_user_is_independent(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let body = json!({"product_id": product, "size": "10", "price": "200.00"});

    let anns = place_with_key(&app, &ann, "bid", &body, "shared-key").await;
    assert_eq!(anns.status, 201, "{:?}", anns.body);
    let bobs = place_with_key(&app, &bob, "bid", &body, "shared-key").await;
    assert_eq!(bobs.status, 201, "{:?}", bobs.body);
    assert_ne!(bobs.body["order"]["id"], anns.body["order"]["id"]);
    let ann_ids = order_ids(&app, &ann).await;
    let bob_ids = order_ids(&app, &bob).await;
    assert_eq!(ann_ids.len(), 1);
    assert_eq!(bob_ids.len(), 1);
    assert_ne!(ann_ids, bob_ids);
    assert_eq!(
        app.book(product, "10").await["bids"],
        json!([{"price": "200.00", "quantity": 2, "orders": 2}])
    );

    // And Bob's key with a body of his own is his own business.
    let bob_other = place_with_key(
        &app,
        &bob,
        "ask",
        &json!({"product_id": product, "size": "10", "price": "250.00"}),
        "bob-first",
    )
    .await;
    assert_eq!(bob_other.status, 201, "{:?}", bob_other.body);
    let ann_same_key = place_with_key(&app, &ann, "bid", &body, "bob-first").await;
    assert_eq!(ann_same_key.status, 201, "{:?}", ann_same_key.body);
    assert_eq!(order_ids(&app, &ann).await.len(), 2);
    app.stop().await;
}

async fn a_key_must_be_one_to_255_characters(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let body = json!({"product_id": product, "size": "10", "price": "200.00"});

    for (what, key) in [
        ("256 characters", "k".repeat(256)),
        ("empty", String::new()),
        ("a space inside", "two words".to_owned()),
        ("a tab inside", "two\twords".to_owned()),
    ] {
        let reply = place_with_key(&app, &ann, "bid", &body, &key).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{what}: {:?}",
            reply.body
        );
        assert!(
            reply.body["error"]["field"]
                .as_str()
                .is_some_and(|field| field.eq_ignore_ascii_case("idempotency-key")),
            "{what}: {:?}",
            reply.body
        );
    }
    // Two keys: a retry with either would not be recognised by the other.
    let two = app
        .send(
            reqwest::Method::POST,
            "/api/v1/bids",
            Some(&ann.token),
            Some(body.to_string()),
            &[("Idempotency-Key", "first"), ("Idempotency-Key", "second")],
        )
        .await;
    assert_eq!(
        (two.status, two.code()),
        (422, "validation_failed"),
        "two keys: {:?}",
        two.body
    );
    assert_eq!(order_ids(&app, &ann).await, Vec::<i64>::new());
    assert_eq!(app.book(product, "10").await["bids"], json!([]));

    let longest = "k".repeat(255);
    let first = place_with_key(&app, &ann, "bid", &body, &longest).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let replay = place_with_key(&app, &ann, "bid", &body, &longest).await;
    assert_eq!(replay.body, first.body);
    assert_eq!(order_ids(&app, &ann).await.len(), 1);
    app.stop().await;
}

/// The stored response answers a retry without validating the body again:
/// its `expires_at` may have passed since the first request.
async fn a_retry_is_answered_from_the_key_even_after_its_expiry_passed(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let soon = bidask_server::clock::format_micros(
        bidask_server::clock::now_micros() + bidask_server::clock::SECOND,
    );
    let body = json!({"product_id": product, "size": "10", "price": "200.00", "expires_at": soon});
    let first = place_with_key(&app, &ann, "bid", &body, "retry-late").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let retry = place_with_key(&app, &ann, "bid", &body, "retry-late").await;
    assert_eq!((retry.status, &retry.body), (201, &first.body));
    app.stop().await;
}

/// Keys are remembered for 24 hours; an older one, not yet pruned, is
/// forgotten at its next use instead of failing the commit.
async fn a_key_older_than_a_day_may_be_used_again(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let mut connection = app.database.as_ref().expect("a database").connect().await;
    let two_days_ago =
        bidask_server::clock::now_micros() - 2 * 86_400 * bidask_server::clock::SECOND;
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at) \
         VALUES ($1, 'old-key', 'sha256:other', 201, '{}', $2)",
    )
    .bind(ann.id)
    .bind(two_days_ago)
    .execute(&mut connection)
    .await
    .expect("an old key");
    let body = json!({"product_id": product, "size": "10", "price": "200.00"});
    let placed = place_with_key(&app, &ann, "bid", &body, "old-key").await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let replay = place_with_key(&app, &ann, "bid", &body, "old-key").await;
    assert_eq!(replay.body, placed.body);
    assert_eq!(order_ids(&app, &ann).await.len(), 1);
    app.stop().await;
}

/// A client that retries before its first request was answered: the
/// requests race for the key, and still only one order is placed. Each
/// is answered with that order or with 409 `idempotency_key_in_use`.
async fn the_same_key_sent_at_once_places_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-RACE", &["10"]).await;
    let ann = app.register("ann").await;
    let body = json!({"product_id": product, "size": "10", "price": "200.00"});
    let replies = futures_util::future::join_all(
        (0..8).map(|_| place_with_key(&app, &ann, "bid", &body, "ann-race")),
    )
    .await;
    let mut placed = Vec::new();
    for reply in &replies {
        match reply.status {
            201 => placed.push(reply.body["order"]["id"].as_i64().expect("an id")),
            409 => assert_eq!(reply.code(), "idempotency_key_in_use", "{:?}", reply.body),
            status => panic!("{status}: {:?}", reply.body),
        }
    }
    assert!(!placed.is_empty(), "one of them places the order");
    assert!(
        placed.iter().all(|id| *id == placed[0]),
        "every 201 is the same order: {placed:?}"
    );
    assert_eq!(order_ids(&app, &ann).await, vec![placed[0]]);
    // Once answered, the key replays the order.
    let retried = place_with_key(&app, &ann, "bid", &body, "ann-race").await;
    assert_eq!(
        (retried.status, retried.body["order"]["id"].as_i64()),
        (201, Some(placed[0]))
    );
}

/// A request refused for what the market holds (the open-orders bound)
/// ran, as one answered 201 did: its key keeps the 409, so a retry once
/// there is room gets the 409 again and places nothing. A new key places.
async fn a_refusal_for_the_open_orders_bound_is_the_keys_answer(backend: Backend) {
    let mut app = spawn_app_on(TestDatabase::new(backend).await, |config| {
        config.max_open_orders = 1;
    })
    .await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let resting = app.order(&ann, "bid", product, "10", "100.00").await;
    assert_eq!(resting.status, 201, "{:?}", resting.body);
    let body = json!({"product_id": product, "size": "10", "price": "101.00"});
    let refused = place_with_key(&app, &ann, "bid", &body, "second").await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "too_many_open_orders"),
        "{:?}",
        refused.body
    );

    let id = resting.body["order"]["id"].as_i64().expect("an id");
    let cancelled = app
        .delete(&format!("/api/v1/orders/{id}"), Some(&ann.token))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    let retried = place_with_key(&app, &ann, "bid", &body, "second").await;
    assert_eq!(
        (retried.status, &retried.body),
        (409, &refused.body),
        "the retry was not answered from the key"
    );
    assert_eq!(
        order_ids(&app, &ann).await,
        [id],
        "the retry placed an order"
    );

    let placed = place_with_key(&app, &ann, "bid", &body, "third").await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    app.stop().await;
}

/// The key of a refused request may turn out to hold a response already:
/// an earlier attempt answered 503 whose order landed meanwhile. That
/// response is the key's, and the refused retry gets it (or, if it was for
/// another order, `idempotency_key_reused`), not a 409 that later retries
/// would not see. A trigger stands in for the landing, as the refusal is
/// stored. SQLite only: the trigger is SQLite's dialect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_retry_whose_key_was_answered_meanwhile_gets_that_answer() {
    let landed = r#"{"order":{"id":999},"matches":[],"seq":7}"#;
    for (planted_hash, expected) in [("NEW.request_hash", 201), ("'another order'", 409)] {
        let database = TestDatabase::new(Backend::Sqlite).await;
        let mut app = spawn_app_on(database, |config| config.max_open_orders = 1).await;
        let product = app.create_product("AJ1-CHI", &["10"]).await;
        let ann = app.register("ann").await;
        let resting = app.order(&ann, "bid", product, "10", "100.00").await;
        assert_eq!(resting.status, 201, "{:?}", resting.body);
        let trigger = format!(
            "CREATE TRIGGER landed BEFORE INSERT ON idempotency_keys WHEN NEW.status = 409 \
             BEGIN INSERT INTO idempotency_keys \
             (user_id, key, request_hash, status, response, created_at) \
             VALUES (NEW.user_id, NEW.key, {planted_hash}, 201, '{landed}', NEW.created_at); END"
        );
        let database = app.database.as_ref().expect("a database");
        sqlx::query(sqlx::AssertSqlSafe(trigger))
            .execute(&mut database.connect().await)
            .await
            .expect("a trigger");

        let body = json!({"product_id": product, "size": "10", "price": "101.00"});
        let refused = place_with_key(&app, &ann, "bid", &body, "late").await;
        match expected {
            201 => assert_eq!(
                (refused.status, refused.body.clone()),
                (201, serde_json::from_str::<Value>(landed).expect("JSON")),
            ),
            _ => assert_eq!(
                (refused.status, refused.code()),
                (409, "idempotency_key_reused"),
                "{:?}",
                refused.body
            ),
        }
        app.stop().await;
    }
}
