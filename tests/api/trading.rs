//! Accounts and the core trade: a seller's ask, a buyer's crossing bid.

use bidask_tests::{
    Backend, TestDatabase, is_utc_micros, on_both_backends, spawn_app, spawn_app_on,
};
use serde_json::json;

on_both_backends!(
    register_login_and_me,
    the_configured_admin_is_the_account_of_that_name_in_any_case,
    ask_then_crossing_bid_makes_one_match,
    notification_ids_follow_the_commit_order,
    match_lists_are_newest_first_filtered_and_paged
);

/// `BIDASK_ADMIN_USERNAME` names an account the way a login does: a
/// trader registered as "boss" becomes the admin "Boss" asks for, keeping
/// its id and name, rather than a second account beside it.
async fn the_configured_admin_is_the_account_of_that_name_in_any_case(backend: Backend) {
    let app = spawn_app_on(TestDatabase::new(backend).await, |_| {}).await;
    let boss = app.register("boss").await;
    let database = app.stop().await;
    let app = spawn_app_on(database, |config| {
        config.admin_username = Some("Boss".to_owned());
        config.admin_password = Some("password-of-the-admin".to_owned());
    })
    .await;
    let login = app.login("boss", "password-of-the-admin").await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(
        (
            &login.body["user"]["id"],
            &login.body["user"]["username"],
            &login.body["user"]["role"]
        ),
        (&json!(boss.id), &json!("boss"), &json!("admin"))
    );
    app.stop().await;
}

async fn register_login_and_me(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.register("ann").await;

    // A name is taken in every case, and signs in in any.
    for taken in ["ann", "Ann", "ANN"] {
        let again = app
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"username": taken, "password": "another-password"}),
            )
            .await;
        assert_eq!(
            (again.status, again.code()),
            (409, "username_taken"),
            "{taken}"
        );
    }
    let shouted = app.login("ANN", "password-of-ann").await;
    assert_eq!(shouted.status, 200, "{:?}", shouted.body);
    assert_eq!(shouted.body["user"]["id"], ann.id);
    assert_eq!(shouted.body["user"]["username"], "ann");

    let login = app.login("ann", "password-of-ann").await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert!(is_utc_micros(&login.body["expires_at"]), "{:?}", login.body);
    let wrong = app.login("ann", "wrong-password").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    let nobody = app.login("nobody", "wrong-password").await;
    assert_eq!((nobody.status, nobody.code()), (401, "invalid_credentials"));

    let me = app.get("/api/v1/me", Some(&ann.token)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], ann.id);
    assert_eq!(me.body["username"], "ann");
    assert_eq!(me.body["role"], "trader");
    let anonymous = app.get("/api/v1/me", None).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "missing_token"));

    // A new account's 201 names where its token reads it.
    let bob = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "bob", "password": "password-of-bob"}),
        )
        .await;
    assert_eq!(bob.status, 201, "{:?}", bob.body);
    let location = bob.location.as_deref().expect("a Location");
    let token = bob.body["token"].as_str().expect("a token");
    let read = app.get(location, Some(token)).await;
    assert_eq!(
        (read.status, &read.body["username"]),
        (200, &json!("bob")),
        "{location}"
    );
    app.stop().await;
}

async fn ask_then_crossing_bid_makes_one_match(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["9", "10", "10.5"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;

    let ask = app.order(&seller, "ask", product, "10", "220.00").await;
    assert_eq!(ask.status, 201, "{:?}", ask.body);
    assert_eq!(ask.body["order"]["status"], "open");
    assert_eq!(ask.body["order"]["price"], "220.00");
    assert_eq!(ask.body["matches"], json!([]));
    let ask_id = ask.body["order"]["id"].as_i64().expect("an id");

    let bid = app
        .place(
            &buyer,
            "bid",
            &json!({"product_id": product, "size": "10", "price": 225, "quantity": 1}),
        )
        .await;
    assert_eq!(bid.status, 201, "{:?}", bid.body);
    assert_eq!(bid.body["order"]["status"], "filled");
    assert_eq!(bid.body["order"]["remaining_quantity"], 0);
    let matches = bid.body["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["price"], "220.00", "trades at the resting price");
    assert_eq!(matches[0]["ask_order_id"], ask_id);
    assert_eq!(matches[0]["taker_side"], "bid");
    assert!(
        bid.body["seq"].as_i64().expect("a seq") > ask.body["seq"].as_i64().expect("a seq"),
        "{:?}",
        bid.body
    );

    let ask_at = format!("/api/v1/orders/{ask_id}");
    assert_eq!(
        ask.location.as_ref(),
        Some(&ask_at),
        "the 201 names the order"
    );
    let ask_now = app.get(&ask_at, Some(&seller.token)).await;
    assert_eq!(ask_now.body["status"], "filled");

    let book = app.book(product, "10").await;
    assert_eq!(book["bids"], json!([]));
    assert_eq!(book["asks"], json!([]));
    assert_eq!(book["seq"], bid.body["seq"]);

    let summary = app.get(&format!("/api/v1/products/{product}"), None).await;
    let market = &summary.body["markets"][1];
    assert_eq!(market["size"], "10");
    assert_eq!(market["last_sale"], "220.00");
    assert_eq!(market["highest_bid"], json!(null));

    let seller_matches = app.get("/api/v1/matches", Some(&seller.token)).await;
    assert_eq!(seller_matches.body["items"][0]["role"], "seller");
    let buyer_matches = app.get("/api/v1/matches", Some(&buyer.token)).await;
    assert_eq!(buyer_matches.body["items"][0]["role"], "buyer");

    let notes = app.get("/api/v1/notifications", Some(&seller.token)).await;
    assert_eq!(notes.status, 200, "{:?}", notes.body);
    let note = &notes.body["items"][0];
    assert_eq!(note["type"], "MATCH_CREATED");
    assert_eq!(note["role"], "seller");
    assert_eq!(note["channel"], format!("user:{}", seller.id));
    assert_eq!(
        note["message"],
        "Your Sneaker AJ1-CHI (size 10) sold for $220.00!"
    );

    let public = app
        .get(&format!("/api/v1/products/{product}/matches?size=10"), None)
        .await;
    assert_eq!(public.body["items"].as_array().map(Vec::len), Some(1));
    assert!(public.body["items"][0].get("buyer_id").is_none());
    app.stop().await;
}

/// Notifications are numbered as they are written, so a client paging
/// with `after=` never passes one that commits later. Along the ids, the
/// user channel's `seq` (taken at commit) must grow too, even when matches
/// on several products, decided by separate actors, commit together.
async fn notification_ids_follow_the_commit_order(backend: Backend) {
    const PRODUCTS: usize = 4;
    const MATCHES_EACH: usize = 25;
    let mut app = spawn_app(backend).await;
    let seller = app.register("seller").await;
    let mut markets = Vec::new();
    for index in 0..PRODUCTS {
        let product = app.create_product(&format!("NOTE-{index}"), &["10"]).await;
        let buyer = app.register(&format!("buyer-{index}")).await;
        for _ in 0..MATCHES_EACH {
            let ask = app.order(&seller, "ask", product, "10", "100.00").await;
            assert_eq!(ask.status, 201, "{:?}", ask.body);
        }
        markets.push((product, buyer));
    }
    let shared = &app;
    futures_util::future::join_all(markets.iter().map(|(product, buyer)| async move {
        for _ in 0..MATCHES_EACH {
            let bid = shared.order(buyer, "bid", *product, "10", "100.00").await;
            assert_eq!(bid.status, 201, "{:?}", bid.body);
        }
    }))
    .await;

    let mut notes = Vec::new();
    let mut after = 0;
    // Bounded: a server that ignored `after=` would repeat its first page.
    for _ in 0..=(PRODUCTS * MATCHES_EACH).div_ceil(30) {
        let page = app
            .get(
                &format!("/api/v1/notifications?after={after}&limit=30"),
                Some(&seller.token),
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        let Some(last) = items.last() else { break };
        after = last["notification_id"].as_i64().expect("a notification id");
        notes.extend(items);
    }
    assert_eq!(notes.len(), PRODUCTS * MATCHES_EACH);
    // The same pages through `next_cursor` passed back as `cursor`, as
    // every other list is paged.
    let mut by_cursor = Vec::new();
    let mut cursor = String::new();
    for _ in 0..=(PRODUCTS * MATCHES_EACH).div_ceil(30) {
        let page = app
            .get(
                &format!("/api/v1/notifications?limit=30{cursor}"),
                Some(&seller.token),
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        by_cursor.extend(page.body["items"].as_array().cloned().unwrap_or_default());
        let Some(next) = page.body["next_cursor"].as_str() else {
            break;
        };
        cursor = format!("&cursor={next}");
    }
    assert_eq!(by_cursor, notes);
    let both = app
        .get(
            "/api/v1/notifications?after=1&cursor=1",
            Some(&seller.token),
        )
        .await;
    assert_eq!(
        (both.status, &both.body["error"]["field"]),
        (422, &json!("cursor")),
        "{:?}",
        both.body
    );
    let pairs: Vec<(i64, i64)> = notes
        .iter()
        .map(|note| {
            let id = note["notification_id"].as_i64().expect("an id");
            let seq = note["seq"].as_i64().expect("a seq");
            (id, seq)
        })
        .collect();
    for pair in pairs.windows(2) {
        assert!(
            pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1,
            "notification {:?} is listed before {:?}: ids and seqs disagree",
            pair[0],
            pair[1]
        );
    }
    app.stop().await;
}

/// `GET /products/{id}/matches` and `GET /matches`: newest first, `size`
/// filters, `limit` and `cursor` page, and a public match carries the
/// contract's fields and no user.
async fn match_lists_are_newest_first_filtered_and_paged(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-LIST", &["9", "10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let mut made = Vec::new();
    for (size, price) in [("10", "100.00"), ("9", "101.00"), ("10", "102.00")] {
        let ask = app.order(&seller, "ask", product, size, price).await;
        assert_eq!(ask.status, 201, "{:?}", ask.body);
        let bid = app.order(&buyer, "bid", product, size, price).await;
        assert_eq!(bid.status, 201, "{:?}", bid.body);
        made.push(bid.body["matches"][0]["id"].as_i64().expect("a match"));
    }
    let ids = |body: &serde_json::Value| -> Vec<i64> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_i64().expect("an id"))
            .collect()
    };
    let public = |query: &str| {
        let app = &app;
        let path = format!("/api/v1/products/{product}/matches{query}");
        async move {
            let reply = app.get(&path, None).await;
            assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
            reply.body
        }
    };

    let all = public("").await;
    assert_eq!(ids(&all), vec![made[2], made[1], made[0]], "newest first");
    let newest = &all["items"][0];
    let mut fields: Vec<&str> = newest
        .as_object()
        .expect("a match")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    for field in [
        "ask_order_id",
        "bid_order_id",
        "created_at",
        "id",
        "price",
        "product_id",
        "quantity",
        "size",
        "taker_side",
    ] {
        assert!(fields.contains(&field), "{field} missing: {newest}");
    }
    assert!(
        !fields.iter().any(|field| field.contains("buyer")
            || field.contains("seller")
            || field.contains("user")),
        "no user on a public match: {newest}"
    );
    assert_eq!(
        (&newest["size"], &newest["price"], &newest["taker_side"]),
        (&json!("10"), &json!("102.00"), &json!("bid"))
    );
    assert!(is_utc_micros(&newest["created_at"]), "{newest}");

    assert_eq!(ids(&public("?size=10").await), vec![made[2], made[0]]);
    assert_eq!(ids(&public("?size=9").await), vec![made[1]]);
    let first = public("?limit=1").await;
    assert_eq!(ids(&first), vec![made[2]]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = public(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), vec![made[1], made[0]]);
    let older = match second["next_cursor"].as_str() {
        Some(cursor) => ids(&public(&format!("?cursor={cursor}")).await),
        None => Vec::new(),
    };
    assert!(older.is_empty(), "nothing older: {older:?}");

    for (trader, role) in [(&seller, "seller"), (&buyer, "buyer")] {
        let own = app.get("/api/v1/matches", Some(&trader.token)).await;
        assert_eq!(own.status, 200, "{:?}", own.body);
        assert_eq!(ids(&own.body), vec![made[2], made[1], made[0]]);
        assert!(
            own.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .all(|item| item["role"] == role),
            "{role}: {:?}",
            own.body
        );
    }

    // A trader who both sells and buys, between other traders' trades:
    // the two sides come merged in id order, page by page.
    let both = app.register("both").await;
    let mut traded = Vec::new();
    for _ in 0..3 {
        for (maker, taker, role) in [
            (&both, &buyer, "seller"),
            (&seller, &buyer, ""),
            (&seller, &both, "buyer"),
        ] {
            let ask = app.order(maker, "ask", product, "10", "110.00").await;
            assert_eq!(ask.status, 201, "{:?}", ask.body);
            let bid = app.order(taker, "bid", product, "10", "110.00").await;
            assert_eq!(bid.status, 201, "{:?}", bid.body);
            if !role.is_empty() {
                let id = bid.body["matches"][0]["id"].as_i64().expect("a match");
                traded.push((id, role.to_owned()));
            }
        }
    }
    traded.reverse();
    let mut paged = Vec::new();
    let mut cursor = String::new();
    for _ in 0..=traded.len() {
        let page = app
            .get(
                &format!("/api/v1/matches?limit=2{cursor}"),
                Some(&both.token),
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for item in page.body["items"].as_array().expect("items") {
            let id = item["id"].as_i64().expect("an id");
            paged.push((id, item["role"].as_str().unwrap_or_default().to_owned()));
        }
        let Some(next) = page.body["next_cursor"].as_str() else {
            break;
        };
        cursor = format!("&cursor={next}");
    }
    assert_eq!(paged, traded, "newest first, each trade once, as its side");
    app.stop().await;
}
