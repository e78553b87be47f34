//! Snapshots, deltas and private events: what a product page and a seller
//! see, and that they agree with REST at every `seq`.

use std::collections::BTreeMap;

use bidask_tests::ws::{WsClient, raw_upgrade};
use bidask_tests::{
    Backend, TestApp, TestDatabase, is_utc_micros, on_both_backends, spawn_app, spawn_app_on,
};
use serde_json::{Value, json};

use crate::book::BookModel;

on_both_backends!(
    snapshot_then_deltas_and_private_matches,
    a_cancel_and_an_expiry_reach_every_connection_of_their_owner,
    concurrent_orders_reach_every_subscriber_exactly_once,
    new_products_reach_the_catalog_channel,
);

async fn rest_books(app: &TestApp, product: i64, sizes: &[&str]) -> (i64, BookModel) {
    let mut books = Vec::new();
    for size in sizes {
        books.push(app.book_depth(product, size, 1_000).await);
    }
    let seq = books[0]["seq"].as_i64().expect("a seq");
    assert!(
        books.iter().all(|book| book["seq"] == seq),
        "one seq per product"
    );
    (seq, BookModel::from_rest(&books))
}

async fn snapshot_then_deltas_and_private_matches(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let mut app = spawn_app_on(database, |config| config.ws_heartbeat_ms = 200).await;
    let product = app.create_product("WS-FEED", &["9", "10"]).await;
    let channel = format!("product:{product}");
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let other = app.register("other").await;
    assert_eq!(
        app.order(&seller, "ask", product, "10", "220").await.status,
        201
    );
    assert_eq!(
        app.order(&buyer, "bid", product, "10", "200").await.status,
        201
    );

    let mut page = WsClient::connect(&app).await;
    page.expect("welcome").await;
    let subscribed = page.subscribe(&channel).await;
    let (seq, rest) = rest_books(&app, product, &["9", "10"]).await;
    assert_eq!(subscribed["seq"], seq);
    assert_eq!(BookModel::from_snapshot(&subscribed["snapshot"]), rest);
    let markets = &subscribed["snapshot"]["markets"];
    assert_eq!(markets[1]["size"], "10");
    assert_eq!(
        markets[1]["asks"],
        json!([{"price": "220.00", "quantity": 1, "orders": 1}])
    );
    assert_eq!(markets[1]["last_sale"], Value::Null);

    let mut seller_feed = WsClient::connect_as(&app, &seller.token).await;
    seller_feed.expect("welcome").await;
    let own = seller_feed.expect("subscribed").await;
    let mut bystander = WsClient::connect_as(&app, &other.token).await;
    bystander.expect("welcome").await;
    bystander.expect("subscribed").await;

    // The buyer is offline: its notification waits for its next connection.
    let placed = app.order(&buyer, "bid", product, "10", "225").await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let placed_seq = placed.body["seq"].as_i64().expect("a seq");
    let events = page.events_until(&channel, seq, placed_seq).await;
    let trade = events
        .iter()
        .find(|event| event["type"] == "MATCH_CREATED")
        .expect("a public match");
    assert_eq!(trade["price"], "220.00");
    assert_eq!(trade["quantity"], 1);
    assert_eq!(trade["taker_side"], "bid");
    assert_eq!(trade["size"], "10");
    assert!(trade.get("buyer_id").is_none() && trade.get("seller_id").is_none());
    assert!(
        events.iter().any(|event| event["type"] == "ASK_UPDATED"
            && event["price"] == "220.00"
            && event["quantity"] == 0
            && event["lowest_ask"].is_null()),
        "{events:?}"
    );
    for event in &events {
        assert!(is_utc_micros(&event["ts"]), "{event}");
    }

    let own_channel = format!("user:{}", seller.id);
    let own_seq = own["seq"].as_i64().expect("a seq");
    let private = seller_feed
        .events_until(&own_channel, own_seq, own_seq + 2)
        .await;
    let sold = &private[0];
    assert_eq!(sold["type"], "MATCH_CREATED");
    assert_eq!(sold["role"], "seller");
    assert_eq!(
        sold["message"],
        "Your Sneaker WS-FEED (size 10) sold for $220.00!"
    );
    assert!(sold["notification_id"].as_i64().is_some());
    assert_eq!(private[1]["type"], "ORDER_UPDATED");
    assert_eq!(private[1]["status"], "filled");

    // The offline buyer gets both of its events on connecting, in order...
    let mut buyer_feed = WsClient::connect_as(&app, &buyer.token).await;
    buyer_feed.expect("welcome").await;
    let resumed = buyer_feed.expect("subscribed").await;
    assert_eq!(resumed["seq"], 0);
    let buyer_channel = format!("user:{}", buyer.id);
    let missed = buyer_feed.events_until(&buyer_channel, 0, 2).await;
    assert_eq!(missed[0]["role"], "buyer");
    assert_eq!(
        missed[0]["message"],
        "You bought Sneaker WS-FEED (size 10) for $220.00!"
    );
    assert_eq!(missed[1]["type"], "ORDER_UPDATED");
    // ...once: once it answered a ping after them, the next connection
    // starts after them, however this one ends.
    answer_a_ping(&mut buyer_feed).await;
    wait_for_delivery(&app, buyer.id, 2).await;
    drop(buyer_feed);
    // An explicit `since_seq` replays the channel from any point.
    let mut replay = WsClient::connect_as(&app, &buyer.token).await;
    replay.expect("welcome").await;
    assert_eq!(replay.expect("subscribed").await["seq"], 2);
    replay
        .send(&json!({"type": "subscribe", "channels": [buyer_channel], "since_seq": 0, "id": 5}))
        .await;
    let again = replay.expect("subscribed").await;
    assert_eq!((&again["seq"], &again["id"]), (&json!(0), &json!(5)));
    let replayed = replay.events_until(&buyer_channel, 0, 2).await;
    assert_eq!(replayed[0]["role"], "buyer");
    assert_eq!(replayed[1]["type"], "ORDER_UPDATED");
    replay.close().await;

    // Nobody else saw a private event.
    bystander.send(&json!({"type": "ping"})).await;
    assert_eq!(bystander.next().await["type"], "pong");
    page.send(&json!({"type": "ping"})).await;
    assert_eq!(page.next().await["type"], "pong");
}

/// A client that leaves its own channel and comes back gets what happened
/// meanwhile: a private channel has no snapshot to stand for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoining_ones_own_channel_brings_what_happened_meanwhile() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| config.ws_heartbeat_ms = 200).await;
    let product = app.create_product("WS-REJOIN", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let channel = format!("user:{}", seller.id);
    let mut client = WsClient::connect_as(&app, &seller.token).await;
    client.expect("welcome").await;
    assert_eq!(client.expect("subscribed").await["seq"], 0);
    client
        .send(&json!({"type": "unsubscribe", "channels": [channel], "id": 1}))
        .await;
    assert_eq!(client.expect("unsubscribed").await["id"], 1);
    app.sell(&seller, &buyer, product, "150.00").await;
    client
        .send(&json!({"type": "subscribe", "channels": [channel], "id": 2}))
        .await;
    let again = client.expect("subscribed").await;
    assert_eq!((&again["seq"], &again["id"]), (&json!(0), &json!(2)));
    let sale = client.events_until(&channel, 0, 2).await;
    assert_eq!(sale[0]["type"], "MATCH_CREATED");
    // Read, as a later pong shows: the next connection starts after it.
    answer_a_ping(&mut client).await;
    wait_for_delivery(&app, seller.id, 2).await;
}

/// Reads `client` until two heartbeats came: tungstenite answers a ping as
/// it reads it, so the ping after the first one is answered by then, and
/// with it everything written before that ping.
pub(crate) async fn answer_a_ping(client: &mut WsClient) {
    let mut heartbeats = 0;
    for _ in 0..1_000 {
        if client.next_any().await["type"] == "heartbeat" {
            heartbeats += 1;
            if heartbeats == 2 {
                return;
            }
        }
    }
    panic!("no two heartbeats in 1,000 messages");
}

/// Waits until the server has recorded `user`'s channel as delivered up
/// to `seq` (it does so off the connection's path).
pub(crate) async fn wait_for_delivery(app: &TestApp, user: i64, seq: i64) {
    let mut database = app.database.as_ref().expect("a database").connect().await;
    let began = std::time::Instant::now();
    loop {
        let recorded: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM deliveries WHERE user_id = $1")
                .bind(user)
                .fetch_optional(&mut database)
                .await
                .expect("the deliveries");
        if recorded == Some(seq) {
            return;
        }
        assert!(
            began.elapsed() < std::time::Duration::from_secs(10),
            "recorded as delivered: {recorded:?}, not {seq}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn concurrent_orders_reach_every_subscriber_exactly_once(backend: Backend) {
    const TRADERS: usize = 4;
    const ORDERS: usize = 40;
    let mut app = spawn_app(backend).await;
    let sizes = ["9", "10"];
    let product = app.create_product("WS-LOAD", &sizes).await;
    let channel = format!("product:{product}");
    let mut early = WsClient::connect(&app).await;
    early.expect("welcome").await;
    let first = early.subscribe(&channel).await;
    let start = first["seq"].as_i64().expect("a seq");
    let mut model = BookModel::from_snapshot(&first["snapshot"]);

    let mut traders = Vec::new();
    for index in 0..TRADERS {
        traders.push(app.register(&format!("trader{index}")).await);
    }
    let app = std::sync::Arc::new(app);
    let mut placing = Vec::new();
    for (index, trader) in traders.into_iter().enumerate() {
        let app = std::sync::Arc::clone(&app);
        placing.push(tokio::spawn(async move {
            for n in 0..ORDERS {
                // Bids 100–107 and asks 104–111 cross in the middle.
                let step = (index * 7 + n * 3) % 8;
                let (side, price) = if (index + n) % 2 == 0 {
                    ("bid", 100 + step)
                } else {
                    ("ask", 104 + step)
                };
                let size = sizes[n % 2];
                let reply = app
                    .order(&trader, side, product, size, &price.to_string())
                    .await;
                assert_eq!(reply.status, 201, "{:?}", reply.body);
            }
        }));
    }

    // Late subscribers join while orders stream in; each snapshot must be
    // the early subscriber's book at the snapshot's seq.
    let mut snapshots: Vec<(i64, BookModel)> = Vec::new();
    let mut late = None;
    // The first one joins once the stream is under way (bounded wait).
    for _ in 0..500 {
        let seq = app.book(product, sizes[0]).await["seq"].as_i64();
        if seq.is_some_and(|seq| seq > start + 20) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for round in 0..4 {
        if round > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut client = WsClient::connect(&app).await;
        client.expect("welcome").await;
        let subscribed = client.subscribe(&channel).await;
        let seq = subscribed["seq"].as_i64().expect("a seq");
        snapshots.push((seq, BookModel::from_snapshot(&subscribed["snapshot"])));
        if round == 0 {
            late = Some((
                client,
                seq,
                BookModel::from_snapshot(&subscribed["snapshot"]),
            ));
        }
    }
    for task in placing {
        task.await.expect("the traders finish");
    }
    let (end, rest) = rest_books(&app, product, &sizes).await;

    let mut books_at: BTreeMap<i64, BookModel> = BTreeMap::new();
    books_at.insert(start, model.clone());
    for event in early.events_until(&channel, start, end).await {
        model.apply(&event);
        books_at.insert(event["seq"].as_i64().expect("a seq"), model.clone());
    }
    assert_eq!(model, rest, "snapshot + deltas = the REST book at {end}");
    for (seq, snapshot) in &snapshots {
        assert_eq!(Some(snapshot), books_at.get(seq), "the snapshot at {seq}");
    }
    assert!(
        snapshots.iter().any(|(seq, _)| *seq > start && *seq < end),
        "no late subscriber joined mid-stream (snapshots at {:?}, stream {start}..{end})",
        snapshots.iter().map(|(seq, _)| seq).collect::<Vec<_>>()
    );
    let (mut client, seq, mut late_model) = late.expect("a late subscriber");
    for event in client.events_until(&channel, seq, end).await {
        late_model.apply(&event);
    }
    assert_eq!(late_model, rest, "a late subscriber converges too");
}

async fn new_products_reach_the_catalog_channel(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let mut catalog = WsClient::connect(&app).await;
    catalog.expect("welcome").await;
    let subscribed = catalog.subscribe("products").await;
    assert_eq!(subscribed["snapshot"], Value::Null);
    let seq = subscribed["seq"].as_i64().expect("a seq");
    let product = app.create_product("WS-NEW", &["8", "9"]).await;
    let event = catalog
        .events_until("products", seq, seq + 1)
        .await
        .remove(0);
    assert_eq!(event["type"], "NEW_PRODUCT");
    assert_eq!(event["product_id"], product);
    assert_eq!(event["sizes"], json!(["8", "9"]));

    // A lower ask than the lowest is a price drop; a higher one is not.
    let seller = app.register("seller").await;
    let mut lowest = 0;
    for price in ["250", "260", "240"] {
        let reply = app.order(&seller, "ask", product, "9", price).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        lowest = reply.body["order"]["id"].as_i64().expect("an order id");
    }
    // An amendment is judged by where the lowest ask stood before it and
    // after it, not by the book without the order in between: lowering
    // the lowest ask drops the price from it, raising it (still under the
    // next ask) is no drop, and lowering a market's only ask is one.
    let amend = |id: i64, price: &str| {
        let body = json!({ "price": price });
        let path = format!("/api/v1/orders/{id}");
        let token = seller.token.clone();
        let app = &app;
        async move {
            let reply = app.patch(&path, Some(&token), &body).await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
        }
    };
    amend(lowest, "230").await;
    amend(lowest, "245").await;
    let only = app.order(&seller, "ask", product, "8", "300").await;
    assert_eq!(only.status, 201, "{:?}", only.body);
    amend(
        only.body["order"]["id"].as_i64().expect("an order id"),
        "290",
    )
    .await;

    let drops = catalog.events_until("products", seq + 1, seq + 4).await;
    let seen: Vec<_> = drops
        .iter()
        .map(|drop| {
            assert_eq!(drop["type"], "PRICE_DROP");
            assert_eq!(drop["product_id"], product);
            (
                drop["size"].as_str().unwrap_or_default(),
                drop["old_price"].as_str().unwrap_or_default(),
                drop["new_price"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("9", "250.00", "240.00"),
            ("9", "240.00", "230.00"),
            ("8", "300.00", "290.00"),
        ]
    );
    // Nothing else reached the channel.
    let mut late = WsClient::connect(&app).await;
    late.expect("welcome").await;
    assert_eq!(late.subscribe("products").await["seq"], seq + 4);
}

/// `ORDER_UPDATED` for a cancel and for an expiry, on the owner's channel,
/// to each of the owner's connections alike; the expiry's level update on
/// the product's channel.
async fn a_cancel_and_an_expiry_reach_every_connection_of_their_owner(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("WS-GONE", &["10"]).await;
    let channel = format!("product:{product}");
    let ann = app.register("ann").await;
    let own = format!("user:{}", ann.id);
    let mut phone = WsClient::connect_as(&app, &ann.token).await;
    let mut laptop = WsClient::connect_as(&app, &ann.token).await;
    let mut start = 0;
    for client in [&mut phone, &mut laptop] {
        client.expect("welcome").await;
        start = client.expect("subscribed").await["seq"]
            .as_i64()
            .expect("a seq");
    }
    let mut watcher = WsClient::connect(&app).await;
    watcher.expect("welcome").await;
    let product_seq = watcher.subscribe(&channel).await["seq"]
        .as_i64()
        .expect("a seq");

    let placed = app.order(&ann, "bid", product, "10", "150.00").await;
    let order_id = placed.body["order"]["id"].clone();
    let cancelled = app
        .delete(&format!("/api/v1/orders/{order_id}"), Some(&ann.token))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    let expires_at =
        bidask_server::clock::format_micros(bidask_server::clock::now_micros() + 1_000_000);
    let brief = app
        .place(
            &ann,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "160.00", "expires_at": expires_at}),
        )
        .await;
    assert_eq!(brief.status, 201, "{:?}", brief.body);
    let brief_id = brief.body["order"]["id"].clone();

    for client in [&mut phone, &mut laptop] {
        let events = client.events_until(&own, start, start + 2).await;
        assert_eq!(
            (
                &events[0]["type"],
                &events[0]["order_id"],
                &events[0]["status"],
                &events[0]["cancel_reason"],
                &events[0]["remaining_quantity"]
            ),
            (
                &json!("ORDER_UPDATED"),
                &order_id,
                &json!("cancelled"),
                &json!("requested"),
                &json!(1)
            ),
            "{events:?}"
        );
        assert_eq!(
            (&events[1]["order_id"], &events[1]["status"]),
            (&brief_id, &json!("expired")),
            "{events:?}"
        );
    }
    // On the product: 150 placed and removed, 160 placed and expired.
    let levels = watcher
        .events_until(&channel, product_seq, product_seq + 4)
        .await;
    let expired = &levels[3];
    assert_eq!(
        (&expired["type"], &expired["price"], &expired["quantity"]),
        (&json!("BID_UPDATED"), &json!("160.00"), &json!(0)),
        "{levels:?}"
    );
}

/// The snapshot holds the whole book, however deep, and a long one goes
/// out in fragments of at most 512 bytes: the server's per-connection write
/// buffer keeps the size of the largest frame it was ever sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_book_is_sent_whole_in_fragments() {
    const LEVELS: u32 = 150;
    let mut app = spawn_app(Backend::Sqlite).await;
    let product = app.create_product("WS-DEEP", &["9", "10"]).await;
    let buyer = app.register("buyer").await;
    let seller = app.register("seller").await;
    for level in 0..LEVELS {
        let bid = format!("{}.00", 100 + level);
        let ask = format!("{}.00", 300 + level);
        assert_eq!(
            app.order(&buyer, "bid", product, "10", &bid).await.status,
            201
        );
        assert_eq!(
            app.order(&seller, "ask", product, "10", &ask).await.status,
            201
        );
    }
    let channel = format!("product:{product}");
    let (_, rest) = rest_books(&app, product, &["9", "10"]).await;

    let mut page = WsClient::connect(&app).await;
    page.expect("welcome").await;
    let subscribed = page.subscribe(&channel).await;
    let market = &subscribed["snapshot"]["markets"][1];
    assert_eq!(
        market["bids"].as_array().map(Vec::len),
        Some(LEVELS as usize)
    );
    assert_eq!(
        market["asks"].as_array().map(Vec::len),
        Some(LEVELS as usize)
    );
    assert_eq!(BookModel::from_snapshot(&subscribed["snapshot"]), rest);

    // A second subscriber at the same `seq` gets the same snapshot; one
    // after the next order gets that order too, not the one kept.
    let mut second = WsClient::connect(&app).await;
    second.expect("welcome").await;
    assert_eq!(
        second.subscribe(&channel).await["snapshot"],
        subscribed["snapshot"]
    );
    assert_eq!(
        app.order(&buyer, "bid", product, "10", "99.00")
            .await
            .status,
        201
    );
    let mut third = WsClient::connect(&app).await;
    third.expect("welcome").await;
    let later = third.subscribe(&channel).await;
    // The bid rested on a new level: one event.
    assert_eq!(
        later["seq"].as_i64().expect("a seq"),
        subscribed["seq"].as_i64().expect("a seq") + 1
    );
    let bids = later["snapshot"]["markets"][1]["bids"]
        .as_array()
        .map(Vec::len);
    assert_eq!(bids, Some(LEVELS as usize + 1));

    let (head, stream) = raw_upgrade(&app, &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let stream = stream.into_std().expect("a socket");
    stream.set_nonblocking(false).expect("a blocking socket");
    let frames = tokio::task::spawn_blocking(move || raw::subscribed_frames(stream, &channel))
        .await
        .expect("the raw client");
    assert!(frames.len() > 1, "a {}-level book in one frame", LEVELS * 2);
    for (index, frame) in frames.iter().enumerate() {
        assert!(
            frame.length <= 512,
            "frame {index} has {} bytes",
            frame.length
        );
        assert_eq!(
            frame.first,
            index == 0,
            "only the first frame is a text frame"
        );
        assert_eq!(
            frame.last,
            index == frames.len() - 1,
            "only the last frame ends it"
        );
    }
}

/// A WebSocket client that sees frames, not messages.
mod raw {
    use std::net::TcpStream;
    use std::time::Duration;

    use serde_json::json;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameSocket};

    /// One frame's shape.
    pub struct Shape {
        /// A text frame (the start of a message), not a continuation.
        pub first: bool,
        /// Its FIN bit.
        pub last: bool,
        pub length: usize,
    }

    /// On an upgraded connection, subscribes to `channel` and returns the
    /// frames of the `subscribed` reply.
    pub fn subscribed_frames(stream: TcpStream, channel: &str) -> Vec<Shape> {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        let mut socket = FrameSocket::new(stream);
        let mut subscribe = Frame::message(
            json!({"type": "subscribe", "channels": [channel]}).to_string(),
            OpCode::Data(Data::Text),
            true,
        );
        subscribe.header_mut().mask = Some([7, 1, 2, 9]);
        socket.send(subscribe).expect("the subscribe is sent");
        let mut shapes = Vec::new();
        let mut message = Vec::new();
        // Heartbeats reset the read timeout: the wait as a whole is bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no subscribed reply within 30 s"
            );
            let frame = socket
                .read(None)
                .expect("a frame")
                .expect("the connection stays open");
            let header = frame.header();
            // Pings between fragments are allowed, and no part of them.
            if let OpCode::Control(_) = header.opcode {
                continue;
            }
            let (first, last) = (header.opcode == OpCode::Data(Data::Text), header.is_final);
            if first {
                message.clear();
                shapes.clear();
            }
            message.extend_from_slice(frame.payload());
            shapes.push(Shape {
                first,
                last,
                length: frame.payload().len(),
            });
            if last {
                let text = std::str::from_utf8(&message).expect("UTF-8");
                let reply: serde_json::Value = serde_json::from_str(text).expect("JSON");
                if reply["type"] == "subscribed" {
                    assert_eq!(reply["channel"], channel);
                    return shapes;
                }
            }
        }
    }
}
