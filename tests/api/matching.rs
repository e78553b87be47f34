//! The matching rules of the contract, seen through REST: price-time
//! priority, trades at the resting price across levels, time in force,
//! self-trade prevention and expiry on time.

use std::time::Duration;

use bidask_server::clock::{SECOND, format_micros, now_micros, parse_rfc3339};
use bidask_tests::ws::WsClient;
use bidask_tests::{
    Backend, Reply, TestApp, TestDatabase, Trader, on_both_backends, spawn_app, spawn_app_on,
};
use serde_json::{Value, json};

on_both_backends!(
    the_best_price_then_the_earliest_order_trades_first,
    a_bid_sweeps_ask_levels_at_each_resting_price_and_rests_the_rest,
    a_quantity_fills_across_levels_of_different_sizes,
    an_order_without_quantity_or_time_in_force_is_one_unit_good_till_cancelled,
    immediate_or_cancel_cancels_what_does_not_trade_now,
    fill_or_kill_trades_everything_or_nothing,
    an_order_never_trades_with_its_owners_own_order,
    an_order_expires_on_time_without_being_touched,
    orders_expiring_within_microseconds_are_accepted_or_refused_never_unavailable,
    thousands_of_orders_due_at_once_expire_in_several_commits,
);

/// Places `quantity` units at `price` with extra fields from `extra`.
async fn place(
    app: &TestApp,
    trader: &Trader,
    side: &str,
    product: i64,
    price: &str,
    quantity: u32,
    extra: Value,
) -> Reply {
    let mut body =
        json!({"product_id": product, "size": "10", "price": price, "quantity": quantity});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let reply = app.place(trader, side, &body).await;
    assert_eq!(reply.status, 201, "{side} {body}: {:?}", reply.body);
    reply
}

/// The id of the order a reply placed.
fn id(reply: &Reply) -> i64 {
    reply.body["order"]["id"].as_i64().expect("an order id")
}

/// `(price, quantity, ask_order_id)` of each match of a bid's reply.
fn fills(reply: &Reply) -> Vec<(String, i64, i64)> {
    reply.body["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|trade| {
            (
                trade["price"].as_str().unwrap_or_default().to_owned(),
                trade["quantity"].as_i64().unwrap_or_default(),
                trade["ask_order_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

async fn the_best_price_then_the_earliest_order_trades_first(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let carl = app.register("carl").await;
    let dave = app.register("dave").await;

    let ann_ask = id(&place(&app, &ann, "ask", product, "220.00", 1, json!({})).await);
    let bob_ask = id(&place(&app, &bob, "ask", product, "220.00", 1, json!({})).await);
    let carl_ask = id(&place(&app, &carl, "ask", product, "219.00", 1, json!({})).await);

    let mut sold = Vec::new();
    for _ in 0..3 {
        let bid = place(&app, &dave, "bid", product, "225.00", 1, json!({})).await;
        assert_eq!(bid.body["order"]["status"], "filled", "{:?}", bid.body);
        sold.extend(fills(&bid));
    }
    assert_eq!(
        sold,
        vec![
            ("219.00".to_owned(), 1, carl_ask),
            ("220.00".to_owned(), 1, ann_ask),
            ("220.00".to_owned(), 1, bob_ask),
        ],
        "the lowest ask first, then the earlier of two at one price"
    );

    // The same on the bid side: the highest bid, then the earliest.
    let ann_bid = id(&place(&app, &ann, "bid", product, "200.00", 1, json!({})).await);
    let bob_bid = id(&place(&app, &bob, "bid", product, "200.00", 1, json!({})).await);
    let carl_bid = id(&place(&app, &carl, "bid", product, "201.00", 1, json!({})).await);
    let sale = place(&app, &dave, "ask", product, "195.00", 3, json!({})).await;
    let buyers: Vec<(String, i64)> = sale.body["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|trade| {
            (
                trade["price"].as_str().unwrap_or_default().to_owned(),
                trade["bid_order_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        buyers,
        vec![
            ("201.00".to_owned(), carl_bid),
            ("200.00".to_owned(), ann_bid),
            ("200.00".to_owned(), bob_bid),
        ]
    );
    assert_eq!(sale.body["order"]["status"], "filled");
    assert!(
        sale.body["matches"]
            .as_array()
            .is_some_and(|matches| matches.iter().all(|trade| trade["taker_side"] == "ask"))
    );
    app.stop().await;
}

async fn a_bid_sweeps_ask_levels_at_each_resting_price_and_rests_the_rest(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let seller = app.register("seller").await;
    let other_seller = app.register("other-seller").await;
    let buyer = app.register("buyer").await;

    let at_220 = id(&place(&app, &seller, "ask", product, "220.00", 1, json!({})).await);
    let at_221 = id(&place(&app, &other_seller, "ask", product, "221.00", 2, json!({})).await);
    let at_223 = id(&place(&app, &seller, "ask", product, "223.00", 1, json!({})).await);
    let at_230 = id(&place(&app, &seller, "ask", product, "230.00", 1, json!({})).await);

    let bid = place(&app, &buyer, "bid", product, "225.00", 5, json!({})).await;
    assert_eq!(
        fills(&bid),
        vec![
            ("220.00".to_owned(), 1, at_220),
            ("221.00".to_owned(), 2, at_221),
            ("223.00".to_owned(), 1, at_223),
        ],
        "each level trades at its own price, never past the bid's limit"
    );
    let order = &bid.body["order"];
    assert_eq!(order["status"], "partially_filled");
    assert_eq!(order["quantity"], 5);
    assert_eq!(order["remaining_quantity"], 1);
    assert_eq!(order["price"], "225.00");

    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([{"price": "225.00", "quantity": 1, "orders": 1}])
    );
    assert_eq!(
        book["asks"],
        json!([{"price": "230.00", "quantity": 1, "orders": 1}])
    );
    assert_eq!(book["seq"], bid.body["seq"]);
    for (trader, ask) in [
        (&seller, at_220),
        (&other_seller, at_221),
        (&seller, at_223),
    ] {
        let stored = app
            .get(&format!("/api/v1/orders/{ask}"), Some(&trader.token))
            .await;
        assert_eq!(stored.body["status"], "filled", "{ask}: {:?}", stored.body);
    }
    let untouched = app
        .get(&format!("/api/v1/orders/{at_230}"), Some(&seller.token))
        .await;
    assert_eq!(untouched.body["status"], "open");
    let summary = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(summary.body["markets"][0]["last_sale"], "223.00");
    let buyer_matches = app.get("/api/v1/matches", Some(&buyer.token)).await;
    assert_eq!(
        buyer_matches.body["items"].as_array().map(Vec::len),
        Some(3)
    );
    app.stop().await;
}

async fn a_quantity_fills_across_levels_of_different_sizes(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let one = id(&place(&app, &seller, "ask", product, "220.00", 1, json!({})).await);
    let two = id(&place(&app, &seller, "ask", product, "221.00", 2, json!({})).await);

    let bid = place(&app, &buyer, "bid", product, "221.00", 3, json!({})).await;
    assert_eq!(
        fills(&bid),
        vec![("220.00".to_owned(), 1, one), ("221.00".to_owned(), 2, two)]
    );
    assert_eq!(bid.body["order"]["status"], "filled");
    assert_eq!(bid.body["order"]["remaining_quantity"], 0);
    let book = app.book(product, "10").await;
    assert_eq!(book["bids"], json!([]));
    assert_eq!(book["asks"], json!([]));
    app.stop().await;
}

async fn an_order_without_quantity_or_time_in_force_is_one_unit_good_till_cancelled(
    backend: Backend,
) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let before = now_micros();
    let reply = app.order(&ann, "bid", product, "10", "200.00").await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let order = &reply.body["order"];
    assert_eq!(order["quantity"], 1);
    assert_eq!(order["remaining_quantity"], 1);
    assert_eq!(order["time_in_force"], "gtc");
    assert_eq!(order["status"], "open");
    let time = |name: &str| {
        order[name]
            .as_str()
            .and_then(parse_rfc3339)
            .unwrap_or_else(|| panic!("an RFC 3339 {name}: {order}"))
    };
    let thirty_days = 30 * 86_400 * SECOND;
    assert!(
        (before..=now_micros()).contains(&time("created_at")),
        "created_at is when it was placed: {order}"
    );
    assert_eq!(
        time("expires_at"),
        time("created_at") + thirty_days,
        "expires_at defaults to 30 days after placement, to the microsecond: {order}"
    );
    assert_eq!(
        app.book(product, "10").await["bids"],
        json!([{"price": "200.00", "quantity": 1, "orders": 1}])
    );
    app.stop().await;
}

async fn immediate_or_cancel_cancels_what_does_not_trade_now(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let ask = id(&place(&app, &seller, "ask", product, "220.00", 1, json!({})).await);
    place(&app, &seller, "ask", product, "240.00", 1, json!({})).await;

    let buy_now = place(
        &app,
        &buyer,
        "bid",
        product,
        "225.00",
        3,
        json!({"time_in_force": "ioc"}),
    )
    .await;
    assert_eq!(fills(&buy_now), vec![("220.00".to_owned(), 1, ask)]);
    let order = &buy_now.body["order"];
    assert_eq!(order["time_in_force"], "ioc");
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "immediate_or_cancel");
    assert_eq!(order["remaining_quantity"], 2);

    let nothing = place(
        &app,
        &buyer,
        "bid",
        product,
        "230.00",
        1,
        json!({"time_in_force": "ioc"}),
    )
    .await;
    assert_eq!(nothing.body["matches"], json!([]));
    assert_eq!(nothing.body["order"]["status"], "cancelled");
    assert_eq!(
        nothing.body["order"]["cancel_reason"],
        "immediate_or_cancel"
    );
    assert_eq!(nothing.body["order"]["remaining_quantity"], 1);

    let book = app.book(product, "10").await;
    assert_eq!(book["bids"], json!([]), "an ioc order never rests");
    assert_eq!(
        book["asks"],
        json!([{"price": "240.00", "quantity": 1, "orders": 1}])
    );
    let stored = app
        .get(
            &format!("/api/v1/orders/{}", id(&buy_now)),
            Some(&buyer.token),
        )
        .await;
    assert_eq!(stored.body["status"], "cancelled");
    assert_eq!(stored.body["cancel_reason"], "immediate_or_cancel");
    app.stop().await;
}

async fn fill_or_kill_trades_everything_or_nothing(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let first = id(&place(&app, &seller, "ask", product, "220.00", 1, json!({})).await);
    let second = id(&place(&app, &seller, "ask", product, "221.00", 1, json!({})).await);
    place(&app, &seller, "ask", product, "230.00", 5, json!({})).await;
    let book_before = app.book(product, "10").await;

    let killed = place(
        &app,
        &buyer,
        "bid",
        product,
        "221.00",
        3,
        json!({"time_in_force": "fok"}),
    )
    .await;
    assert_eq!(killed.body["matches"], json!([]), "{:?}", killed.body);
    let order = &killed.body["order"];
    assert_eq!(order["time_in_force"], "fok");
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "fill_or_kill");
    assert_eq!(order["remaining_quantity"], 3);
    let book = app.book(product, "10").await;
    assert_eq!(book["bids"], book_before["bids"]);
    assert_eq!(book["asks"], book_before["asks"], "nothing traded");
    for ask in [first, second] {
        let stored = app
            .get(&format!("/api/v1/orders/{ask}"), Some(&seller.token))
            .await;
        assert_eq!(stored.body["status"], "open");
    }
    let none = app.get("/api/v1/matches", Some(&buyer.token)).await;
    assert_eq!(none.body["items"], json!([]));

    let filled = place(
        &app,
        &buyer,
        "bid",
        product,
        "221.00",
        2,
        json!({"time_in_force": "fok"}),
    )
    .await;
    assert_eq!(
        fills(&filled),
        vec![
            ("220.00".to_owned(), 1, first),
            ("221.00".to_owned(), 1, second),
        ]
    );
    assert_eq!(filled.body["order"]["status"], "filled");
    assert_eq!(
        app.book(product, "10").await["asks"],
        json!([{"price": "230.00", "quantity": 5, "orders": 1}])
    );
    app.stop().await;
}

async fn an_order_never_trades_with_its_owners_own_order(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_ask = id(&place(&app, &ann, "ask", product, "220.00", 1, json!({})).await);

    let own = place(&app, &ann, "bid", product, "225.00", 1, json!({})).await;
    assert_eq!(own.body["matches"], json!([]), "{:?}", own.body);
    assert_eq!(own.body["order"]["status"], "cancelled");
    assert_eq!(own.body["order"]["cancel_reason"], "self_trade");
    assert_eq!(own.body["order"]["remaining_quantity"], 1);
    let stored = app
        .get(&format!("/api/v1/orders/{ann_ask}"), Some(&ann.token))
        .await;
    assert_eq!(stored.body["status"], "open", "the resting order stays");
    let book = app.book(product, "10").await;
    assert_eq!(book["bids"], json!([]));
    assert_eq!(
        book["asks"],
        json!([{"price": "220.00", "quantity": 1, "orders": 1}])
    );

    // A better ask of someone else trades first; the rest stops at Ann's own.
    let bob_ask = id(&place(&app, &bob, "ask", product, "219.00", 1, json!({})).await);
    let partly = place(&app, &ann, "bid", product, "225.00", 3, json!({})).await;
    assert_eq!(fills(&partly), vec![("219.00".to_owned(), 1, bob_ask)]);
    assert_eq!(partly.body["order"]["status"], "cancelled");
    assert_eq!(partly.body["order"]["cancel_reason"], "self_trade");
    assert_eq!(partly.body["order"]["remaining_quantity"], 2);
    let book = app.book(product, "10").await;
    assert_eq!(book["bids"], json!([]));
    assert_eq!(
        book["asks"],
        json!([{"price": "220.00", "quantity": 1, "orders": 1}])
    );
    let ann_matches = app.get("/api/v1/matches", Some(&ann.token)).await;
    assert_eq!(
        ann_matches.body["items"].as_array().map(Vec::len),
        Some(1),
        "Ann only bought Bob's ask"
    );
    app.stop().await;
}

async fn an_order_expires_on_time_without_being_touched(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    let lasting = id(&place(&app, &ann, "bid", product, "190.00", 1, json!({})).await);
    let expires_at = format_micros(now_micros() + 2 * SECOND);
    let brief = place(
        &app,
        &ann,
        "bid",
        product,
        "200.00",
        1,
        json!({"expires_at": expires_at}),
    )
    .await;
    let brief_id = id(&brief);
    assert_eq!(brief.body["order"]["status"], "open");
    assert_eq!(
        brief.body["order"]["expires_at"]
            .as_str()
            .and_then(parse_rfc3339),
        parse_rfc3339(&expires_at)
    );
    let path = format!("/api/v1/orders/{brief_id}");
    let open = app.get(&path, Some(&ann.token)).await;
    assert_eq!(open.body["status"], "open");
    assert_eq!(
        app.book(product, "10").await["bids"],
        json!([
            {"price": "200.00", "quantity": 1, "orders": 1},
            {"price": "190.00", "quantity": 1, "orders": 1},
        ])
    );

    // Nothing touches the market from here on: only the actor's timer can
    // take the order off the book.
    let mut status = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = app.get(&path, Some(&ann.token)).await.body["status"].clone();
        if status == "expired" {
            break;
        }
    }
    assert_eq!(status, "expired", "the order expired within 10 seconds");
    let expired = app.get(&path, Some(&ann.token)).await;
    assert_eq!(expired.body["remaining_quantity"], 1);
    assert_eq!(expired.body["cancel_reason"], json!(null));
    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([{"price": "190.00", "quantity": 1, "orders": 1}]),
        "the expired order's level is gone"
    );
    let summary = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(summary.body["markets"][0]["highest_bid"], "190.00");
    assert_eq!(summary.body["markets"][0]["bid_count"], 1);
    let listed = app
        .get("/api/v1/orders?status=expired", Some(&ann.token))
        .await;
    assert_eq!(listed.body["items"][0]["id"], brief_id, "{:?}", listed.body);
    let still_open = app
        .get(&format!("/api/v1/orders/{lasting}"), Some(&ann.token))
        .await;
    assert_eq!(still_open.body["status"], "open");
    let cancel = app.delete(&path, Some(&ann.token)).await;
    assert_eq!((cancel.status, cancel.code()), (409, "order_not_open"));
    app.stop().await;
}

/// More orders than one expiry unit holds (2,000), all due at one moment,
/// leave in several commits: one for all of them grew with their number
/// (80,000 outlasted the writer's 10 s bound, failed and were retried for
/// ever). Every one expires, each with its event, and `seq` counts them.
async fn thousands_of_orders_due_at_once_expire_in_several_commits(backend: Backend) {
    const ORDERS: usize = 2_500;
    let database = TestDatabase::new(backend).await;
    let mut app = spawn_app_on(database, |config| config.max_open_orders = 0).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let ann = app.register("ann").await;
    // Far enough ahead for every order to be placed first, even on a
    // slow machine.
    let due = now_micros() + 20 * SECOND;
    let expires_at = format_micros(due);
    let last_seq = app
        .asks_on_levels_of_their_own(&ann, product, ORDERS, &expires_at)
        .await;
    assert!(
        now_micros() < due,
        "placing took past the expiry: make it later"
    );

    let mut book = Value::Null;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        book = app.book(product, "10").await;
        if now_micros() > due && book["asks"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
    }
    assert_eq!(book["asks"], json!([]), "every order left the book");
    // One level event per order, and nothing else happened.
    assert_eq!(book["seq"].as_i64(), Some(last_seq + ORDERS as i64));
    let listed = app
        .get("/api/v1/orders?status=open", Some(&ann.token))
        .await;
    assert_eq!(listed.body["items"], json!([]), "{:?}", listed.body);
    // Events are stamped when their commit begins: the expiry's carry
    // more than one stamp.
    let channel = format!("product:{product}");
    let (mut feed, _) = WsClient::resuming(&app, &channel, last_seq).await;
    let mut stamps = std::collections::BTreeSet::new();
    for _ in 0..ORDERS {
        let event = feed.next().await;
        assert_eq!(event["type"], "ASK_UPDATED", "{event}");
        stamps.insert(event["ts"].as_str().expect("a ts").to_owned());
    }
    assert!(
        stamps.len() >= 2,
        "{ORDERS} expiries in {} commit(s)",
        stamps.len()
    );
    app.stop().await;
}

/// An `expires_at` only just ahead of the handler's clock may be behind the
/// market's by the time the order arrives; whatever its time in force, the
/// answer is a 201 or a 422, never a failed commit.
async fn orders_expiring_within_microseconds_are_accepted_or_refused_never_unavailable(
    backend: Backend,
) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("EDGE-1", &["10"]).await;
    let ann = app.register("ann").await;
    // Orders that the handler let through: accepted, or refused by the
    // market (the engine's words), which is the race this is about.
    let mut past_the_handler = 0;
    for index in 0..60_i64 {
        let at = bidask_server::clock::format_micros(
            bidask_server::clock::now_micros() + 50 + index * 500,
        );
        let tif = ["gtc", "ioc", "fok"][usize::try_from(index % 3).unwrap_or(0)];
        let reply = app
            .place(
                &ann,
                "bid",
                &json!({"product_id": product, "size": "10", "price": "10.00", "time_in_force": tif, "expires_at": at}),
            )
            .await;
        let refused_for_expiry =
            reply.status == 422 && reply.body["error"]["field"] == "expires_at";
        assert!(
            reply.status == 201 || refused_for_expiry,
            "{tif} expiring at {at}: {} {:?}",
            reply.status,
            reply.body
        );
        if reply.status == 201
            || reply.body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("later than the time of placement"))
        {
            past_the_handler += 1;
        }
    }
    assert!(
        past_the_handler > 0,
        "the handler refused all 60: none reached the market"
    );
    // Which of the handler and the market refused a given one is a race
    // of microseconds; what holds either way is that nothing failed and
    // the market still takes orders.
    let later = app.order(&ann, "bid", product, "10", "11.00").await;
    assert_eq!(
        (later.status, &later.body["order"]["status"]),
        (201, &json!("open")),
        "{:?}",
        later.body
    );
    app.stop().await;
}
