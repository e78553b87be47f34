//! The catalog: creating products, listing and searching them, each
//! product's market summaries and each market's book.

use bidask_tests::{Backend, TestApp, is_utc_micros, on_both_backends, spawn_app};
use serde_json::{Value, json};

on_both_backends!(
    only_an_admin_creates_a_product_and_skus_are_unique,
    products_are_listed_newest_first_in_pages_and_searchable,
    product_markets_summarize_the_resting_orders_of_each_size,
    book_levels_aggregate_orders_best_first_at_the_last_seq,
    unknown_products_and_sizes_are_refused,
    a_coarser_tick_size_refuses_off_tick_prices_and_keeps_two_decimals,
    unusable_tick_sizes_are_refused_by_name_and_nothing_is_stored,
);

/// `POST /products` as the admin with `body`.
async fn create_product(app: &mut TestApp, body: &Value) -> bidask_tests::Reply {
    let token = app.admin_token().await;
    app.post("/api/v1/products", Some(&token), body).await
}

/// The ids of a page of products, in the order listed.
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

async fn only_an_admin_creates_a_product_and_skus_are_unique(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let body = json!({
        "sku": "AJ1-CHI",
        "name": "Air Jordan 1 Chicago",
        "brand": "Jordan",
        "sizes": ["9", "10", "10.5"],
    });

    let created = create_product(&mut app, &body).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let product = &created.body;
    assert!(product["id"].as_i64().is_some_and(|id| id > 0), "{product}");
    assert_eq!(product["sku"], "AJ1-CHI");
    assert_eq!(product["name"], "Air Jordan 1 Chicago");
    assert_eq!(product["brand"], "Jordan");
    assert_eq!(product["tick_size"], "0.01", "the default tick is a cent");
    assert_eq!(product["sizes"], json!(["9", "10", "10.5"]));
    assert!(product["seq"].as_i64().is_some(), "{product}");
    assert!(is_utc_micros(&product["created_at"]), "{product}");
    let markets = product["markets"].as_array().expect("markets");
    assert_eq!(markets.len(), 3);
    for (market, size) in markets.iter().zip(["9", "10", "10.5"]) {
        assert_eq!(
            market,
            &json!({
                "size": size,
                "highest_bid": null,
                "lowest_ask": null,
                "last_sale": null,
                "bid_count": 0,
                "ask_count": 0,
            })
        );
    }
    let location = format!("/api/v1/products/{}", product["id"]);
    assert_eq!(
        created.location.as_ref(),
        Some(&location),
        "the 201 names it"
    );
    let shown = app.get(&location, None).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["sku"], "AJ1-CHI");
    assert_eq!(shown.body["created_at"], product["created_at"]);

    let trader = app.register("trader").await;
    let forbidden = app
        .post(
            "/api/v1/products",
            Some(&trader.token),
            &json!({"sku": "OTHER", "name": "Other", "brand": "Nike", "sizes": ["9"]}),
        )
        .await;
    assert_eq!((forbidden.status, forbidden.code()), (403, "forbidden"));
    // A trader's body is not looked at: not JSON, the wrong fields, or
    // over the size limit, it is the same 403.
    let huge = format!(r#"{{"sku": "{}"}}"#, "x".repeat(20 * 1024));
    for body in ["{not json", r#"{"sku": 7}"#, huge.as_str()] {
        let refused = app
            .send(
                reqwest::Method::POST,
                "/api/v1/products",
                Some(&trader.token),
                Some(body.to_owned()),
                &[],
            )
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (403, "forbidden"),
            "{}",
            &body[..body.len().min(40)]
        );
    }

    // Control characters (a NUL would not even be stored) and invisible
    // ones name their field instead of being stored.
    for (field, body) in [
        (
            "name",
            json!({"sku": "NUL", "name": "Air\u{0}Max", "brand": "Nike", "sizes": ["9"]}),
        ),
        (
            "sku",
            json!({"sku": "NU\nL", "name": "Air Max", "brand": "Nike", "sizes": ["9"]}),
        ),
        (
            "sizes[1]",
            json!({"sku": "NUL", "name": "Air Max", "brand": "Nike", "sizes": ["9", "1\u{7}0"]}),
        ),
        // Invisible ones too: a size that looks like another, a name
        // whose direction is overridden.
        (
            "sizes[1]",
            json!({"sku": "ZWS", "name": "Air Max", "brand": "Nike", "sizes": ["10", "\u{200B}10"]}),
        ),
        (
            "name",
            json!({"sku": "RLO", "name": "Air \u{202E}xaM", "brand": "Nike", "sizes": ["9"]}),
        ),
        (
            "brand",
            json!({"sku": "BOM", "name": "Air Max", "brand": "\u{FEFF}Nike", "sizes": ["9"]}),
        ),
        // And a line break that is not a control character.
        (
            "name",
            json!({"sku": "LSEP", "name": "Air\u{2028}Max", "brand": "Nike", "sizes": ["9"]}),
        ),
    ] {
        let refused = create_product(&mut app, &body).await;
        assert_eq!(
            (refused.status, refused.code()),
            (422, "validation_failed"),
            "{body}"
        );
        assert_eq!(refused.body["error"]["field"], field, "{:?}", refused.body);
    }

    let anonymous = app
        .post(
            "/api/v1/products",
            None,
            &json!({"sku": "OTHER", "name": "Other", "brand": "Nike", "sizes": ["9"]}),
        )
        .await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "missing_token"));

    let duplicate = create_product(
        &mut app,
        &json!({"sku": "AJ1-CHI", "name": "Another name", "brand": "Nike", "sizes": ["8"]}),
    )
    .await;
    assert_eq!((duplicate.status, duplicate.code()), (409, "sku_taken"));

    let listed = app.get("/api/v1/products", None).await;
    assert_eq!(
        ids(&listed.body),
        vec![product["id"].as_i64().expect("an id")],
        "only the admin's product exists: {:?}",
        listed.body
    );
    app.stop().await;
}

async fn products_are_listed_newest_first_in_pages_and_searchable(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let mut created = Vec::new();
    for (sku, name, brand) in [
        ("AJ1-CHI", "Air Jordan 1 Chicago", "Jordan"),
        ("YZY-350", "Yeezy Boost 350", "Adidas"),
        ("DUNK-PANDA", "Dunk Low Panda", "Nike"),
    ] {
        let reply = create_product(
            &mut app,
            &json!({"sku": sku, "name": name, "brand": brand, "sizes": ["9", "10"]}),
        )
        .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        created.push(reply.body["id"].as_i64().expect("an id"));
    }
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();

    let all = app.get("/api/v1/products", None).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(ids(&all.body), newest_first);
    assert_eq!(all.body["next_cursor"], json!(null));
    assert_eq!(
        all.body["items"][0]["markets"].as_array().map(Vec::len),
        Some(2),
        "each listed product has its market summaries"
    );

    let first = app.get("/api/v1/products?limit=2", None).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(ids(&first.body), newest_first[..2].to_vec());
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a full page has a next_cursor")
        .to_owned();
    let second = app
        .get(&format!("/api/v1/products?limit=2&cursor={cursor}"), None)
        .await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(ids(&second.body), newest_first[2..].to_vec());
    assert_eq!(second.body["next_cursor"], json!(null));

    let by_brand = app.get("/api/v1/products?q=nike", None).await;
    assert_eq!(ids(&by_brand.body), vec![created[2]], "{:?}", by_brand.body);
    let by_name = app.get("/api/v1/products?q=Boost", None).await;
    assert_eq!(ids(&by_name.body), vec![created[1]], "{:?}", by_name.body);
    let by_sku = app.get("/api/v1/products?q=aj1-chi", None).await;
    assert_eq!(ids(&by_sku.body), vec![created[0]], "{:?}", by_sku.body);
    let nothing = app.get("/api/v1/products?q=no-such-sneaker", None).await;
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.body["items"], json!([]));
    assert_eq!(nothing.body["next_cursor"], json!(null));

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "limit=-1.5",
        "limit=1e3",
        "limit=99999999999999999999",
        "cursor=abc",
        "limit=1&limit=2",
    ] {
        let reply = app.get(&format!("/api/v1/products?{bad}"), None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{bad}: {:?}",
            reply.body
        );
        let field = bad.split('=').next().unwrap_or_default();
        assert_eq!(
            reply.body["error"]["field"], field,
            "{bad}: {:?}",
            reply.body
        );
        reply.assert_plain_message();
        // Whatever is wrong with one `limit`, the answer gives the range.
        if field == "limit" && !bad.contains('&') {
            assert_eq!(
                reply.body["error"]["message"], "limit must be from 1 to 100",
                "{bad}"
            );
        }
    }
    app.stop().await;
}

async fn product_markets_summarize_the_resting_orders_of_each_size(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["9", "10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let carl = app.register("carl").await;

    for (trader, side, price) in [
        (&ann, "bid", "200.00"),
        (&bob, "bid", "205.00"),
        (&ann, "bid", "205.00"),
        (&carl, "ask", "230.00"),
        (&carl, "ask", "240.00"),
    ] {
        let reply = app.order(trader, side, product, "10", price).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }

    let shown = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(
        shown.body["markets"],
        json!([
            {"size": "9", "highest_bid": null, "lowest_ask": null, "last_sale": null,
             "bid_count": 0, "ask_count": 0},
            {"size": "10", "highest_bid": "205.00", "lowest_ask": "230.00", "last_sale": null,
             "bid_count": 3, "ask_count": 2},
        ])
    );

    // Bob buys the lowest ask: the sale is the market's last sale.
    let bought = app.order(&bob, "bid", product, "10", "230.00").await;
    assert_eq!(bought.status, 201, "{:?}", bought.body);
    assert_eq!(bought.body["order"]["status"], "filled");
    let shown = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(
        shown.body["markets"][1],
        json!({"size": "10", "highest_bid": "205.00", "lowest_ask": "240.00",
               "last_sale": "230.00", "bid_count": 3, "ask_count": 1})
    );
    assert_eq!(shown.body["seq"], bought.body["seq"]);
    let listed = app.get("/api/v1/products", None).await;
    assert_eq!(listed.body["items"][0]["markets"], shown.body["markets"]);
    app.stop().await;
}

async fn book_levels_aggregate_orders_best_first_at_the_last_seq(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10", "11"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;

    let mut last_seq = json!(null);
    for (trader, side, price, quantity) in [
        (&ann, "bid", "200.00", 1),
        (&ann, "bid", "205.00", 2),
        (&bob, "bid", "205.00", 1),
        (&bob, "ask", "230.00", 3),
        (&ann, "ask", "220.00", 1),
        (&ann, "ask", "225.50", 1),
    ] {
        let reply = app
            .place(
                trader,
                side,
                &json!({"product_id": product, "size": "10", "price": price, "quantity": quantity}),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        assert!(
            reply.body["seq"].as_i64() > last_seq.as_i64(),
            "seq grows: {:?}",
            reply.body
        );
        last_seq = reply.body["seq"].clone();
    }

    let book = app.book(product, "10").await;
    assert_eq!(book["product_id"], product);
    assert_eq!(book["size"], "10");
    assert_eq!(
        book["seq"], last_seq,
        "the book is current to the last order"
    );
    assert_eq!(
        book["bids"],
        json!([
            {"price": "205.00", "quantity": 3, "orders": 2},
            {"price": "200.00", "quantity": 1, "orders": 1},
        ])
    );
    assert_eq!(
        book["asks"],
        json!([
            {"price": "220.00", "quantity": 1, "orders": 1},
            {"price": "225.50", "quantity": 1, "orders": 1},
            {"price": "230.00", "quantity": 3, "orders": 1},
        ])
    );

    let shallow = app
        .get(
            &format!("/api/v1/products/{product}/book?size=10&depth=1"),
            None,
        )
        .await;
    assert_eq!(shallow.status, 200, "{:?}", shallow.body);
    assert_eq!(
        shallow.body["bids"],
        json!([{"price": "205.00", "quantity": 3, "orders": 2}])
    );
    assert_eq!(
        shallow.body["asks"],
        json!([{"price": "220.00", "quantity": 1, "orders": 1}])
    );

    let other_size = app.book(product, "11").await;
    assert_eq!(other_size["bids"], json!([]));
    assert_eq!(other_size["asks"], json!([]));
    assert_eq!(other_size["size"], "11");
    app.stop().await;
}

async fn unknown_products_and_sizes_are_refused(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let missing = product + 1_000;

    for path in [
        format!("/api/v1/products/{missing}"),
        "/api/v1/products/not-a-number".to_owned(),
        format!("/api/v1/products/{missing}/book?size=10"),
        format!("/api/v1/products/{missing}/matches"),
    ] {
        let reply = app.get(&path, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{path}: {:?}",
            reply.body
        );
    }

    for (query, field) in [
        ("", "size"),
        ("?depth=5", "size"),
        ("?size=12", "size"),
        ("?size=10&depth=0", "depth"),
        ("?size=10&depth=x", "depth"),
        ("?size=10&depth=-1", "depth"),
        ("?size=10&depth=1001", "depth"),
        ("?size=10&depth=99999999999999999999", "depth"),
    ] {
        let reply = app
            .get(&format!("/api/v1/products/{product}/book{query}"), None)
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{query}: {:?}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["field"], field,
            "{query}: {:?}",
            reply.body
        );
        reply.assert_plain_message();
        if field == "depth" {
            assert_eq!(
                reply.body["error"]["message"], "depth must be from 1 to 1000",
                "{query}"
            );
        }
    }
    app.stop().await;
}

/// A tick no price could sit on is refused with its field named, and the
/// message says what a tick may be; no product is made.
async fn unusable_tick_sizes_are_refused_by_name_and_nothing_is_stored(backend: Backend) {
    let mut app = spawn_app(backend).await;
    for tick in [
        json!("0"),
        json!("-0.01"),
        json!("0.000000001"),
        json!("2000000"),
        json!(1e7),
        json!("a cent"),
        json!(true),
    ] {
        let reply = create_product(
            &mut app,
            &json!({"sku": "TICK-1", "name": "Tick Dunk", "brand": "Nike",
                    "sizes": ["10"], "tick_size": tick}),
        )
        .await;
        assert_eq!(reply.status, 422, "{tick}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["field"], "tick_size", "{tick}");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("tick"), "{tick}: {message}");
        if tick == json!("2000000") {
            assert!(
                message.contains("1000000"),
                "names the highest price: {message}"
            );
        }
    }
    let listed = app.get("/api/v1/products", None).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was made");
    app.stop().await;
}

async fn a_coarser_tick_size_refuses_off_tick_prices_and_keeps_two_decimals(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let created = create_product(
        &mut app,
        &json!({"sku": "NICKEL", "name": "Nickel Dunk", "brand": "Nike",
                "sizes": ["10"], "tick_size": "0.05"}),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["tick_size"], "0.05");
    let product = created.body["id"].as_i64().expect("an id");
    let ann = app.register("ann").await;

    for price in [json!("210.03"), json!("210.01"), json!(210.07)] {
        let reply = app
            .place(
                &ann,
                "bid",
                &json!({"product_id": product, "size": "10", "price": price}),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{price}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], "price");
    }

    let on_tick = app.order(&ann, "bid", product, "10", "210.05").await;
    assert_eq!(on_tick.status, 201, "{:?}", on_tick.body);
    assert_eq!(on_tick.body["order"]["price"], "210.05");
    let as_number = app
        .place(
            &ann,
            "bid",
            &json!({"product_id": product, "size": "10", "price": 210.1}),
        )
        .await;
    assert_eq!(as_number.status, 201, "{:?}", as_number.body);
    assert_eq!(as_number.body["order"]["price"], "210.10");
    let whole = app
        .place(
            &ann,
            "ask",
            &json!({"product_id": product, "size": "10", "price": 250}),
        )
        .await;
    assert_eq!(whole.status, 201, "{:?}", whole.body);
    assert_eq!(whole.body["order"]["price"], "250.00");

    let book = app.book(product, "10").await;
    assert_eq!(
        book["bids"],
        json!([
            {"price": "210.10", "quantity": 1, "orders": 1},
            {"price": "210.05", "quantity": 1, "orders": 1},
        ])
    );
    assert_eq!(
        book["asks"],
        json!([{"price": "250.00", "quantity": 1, "orders": 1}])
    );
    let shown = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(shown.body["markets"][0]["highest_bid"], "210.10");
    assert_eq!(shown.body["markets"][0]["lowest_ask"], "250.00");

    // A whole tick is shown, and named in a refusal, with two decimals.
    let fives = create_product(
        &mut app,
        &json!({"sku": "FIVES", "name": "Five Dollar Dunk", "brand": "Nike",
                "sizes": ["10"], "tick_size": "5"}),
    )
    .await;
    assert_eq!(fives.body["tick_size"], "5.00", "{:?}", fives.body);
    let fives = fives.body["id"].as_i64().expect("an id");
    let off = app.order(&ann, "bid", fives, "10", "212.00").await;
    assert_eq!(
        off.body["error"]["message"],
        "price must be a multiple of the tick size 5.00"
    );

    // Zeros that end a fraction are no digits that matter, however many;
    // a digit past what a decimal holds is off every tick, and is told so.
    let zeros = "0".repeat(40);
    let long = app
        .order(&ann, "bid", fives, "10", &format!("215.{zeros}"))
        .await;
    assert_eq!(long.status, 201, "{:?}", long.body);
    assert_eq!(long.body["order"]["price"], "215.00");
    let too_fine = app
        .order(&ann, "bid", fives, "10", &format!("215.{zeros}1"))
        .await;
    assert_eq!(
        too_fine.body["error"]["message"],
        "price must be greater than zero, at most 1000000, and a multiple of the tick size 5.00"
    );
    app.stop().await;
}
