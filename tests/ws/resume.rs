//! `since_seq`: a client that disconnects mid-stream resumes with nothing
//! lost and nothing repeated, from the window, from the database after a
//! restart, and with a `reset` snapshot when its `seq` is unknown or its
//! events were pruned.

use bidask_store::{Store, StoreOptions};
use bidask_tests::ws::{Connect, WsClient};
use futures_util::future::join_all;
use std::time::{Duration, Instant};

use bidask_tests::{
    Backend, TestApp, TestDatabase, Trader, on_both_backends, spawn_app, spawn_app_on,
};
use serde_json::{Value, json};

on_both_backends!(
    resume_after_disconnect_and_restart,
    a_resume_from_pruned_events_resets_and_numbering_goes_on,
    a_prune_during_a_replay_resets_where_the_events_stop,
    a_refused_resume_keeps_the_subscription_it_had,
);

async fn place_some(
    app: &TestApp,
    trader: &Trader,
    product: i64,
    prices: std::ops::Range<u32>,
) -> i64 {
    let mut seq = 0;
    for price in prices {
        let reply = app
            .order(trader, "bid", product, "10", &price.to_string())
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        seq = reply.body["seq"].as_i64().expect("a seq");
    }
    seq
}

/// `/realtime/stats`' resume counters: from the window, from the
/// database, reset.
async fn resumes(app: &TestApp) -> (u64, u64, u64) {
    let stats = app.get("/api/v1/realtime/stats", None).await;
    let count = |field: &str| stats.body[field].as_u64().expect("a counter");
    (
        count("resumes_from_window"),
        count("resumes_from_database"),
        count("resets"),
    )
}

async fn resume(app: &TestApp, channel: &str, since: i64) -> WsClient {
    let (client, subscribed) = WsClient::resuming(app, channel, since).await;
    assert_eq!(subscribed["seq"], since, "{subscribed}");
    assert!(
        subscribed.get("snapshot").is_none_or(Value::is_null),
        "{subscribed}"
    );
    assert!(subscribed.get("reset").is_none(), "{subscribed}");
    client
}

async fn resume_after_disconnect_and_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("WS-RESUME", &["10"]).await;
    let channel = format!("product:{product}");
    let trader = app.register("trader").await;

    let mut steady = WsClient::connect(&app).await;
    steady.expect("welcome").await;
    let start = steady.subscribe(&channel).await["seq"]
        .as_i64()
        .expect("a seq");
    let mut leaving = WsClient::connect(&app).await;
    leaving.expect("welcome").await;
    leaving.subscribe(&channel).await;

    let middle = place_some(&app, &trader, product, 100..110).await;
    leaving.events_until(&channel, start, middle).await;
    leaving.close().await;
    let end = place_some(&app, &trader, product, 110..120).await;
    let everything = steady.events_until(&channel, start, end).await;

    // From the in-memory window.
    let mut back = resume(&app, &channel, middle).await;
    let missed = back.events_until(&channel, middle, end).await;
    assert_eq!(missed, everything[(middle - start) as usize..]);
    assert_eq!(resumes(&app).await, (1, 0, 0), "(window, database, reset)");
    back.send(&json!({"type": "ping"})).await;
    assert_eq!(
        back.next().await["type"],
        "pong",
        "nothing after the last event"
    );

    // A seller who has never connected sells before the restart...
    let other = app.create_product("WS-RESUME-2", &["9"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    assert_eq!(
        app.order(&seller, "ask", other, "9", "300").await.status,
        201
    );
    assert_eq!(
        app.order(&buyer, "bid", other, "9", "300").await.status,
        201
    );

    // From the database, after a restart.
    let database = app.stop().await;
    let app = spawn_app_on(database, |_| {}).await;
    // ...and hears of it on connecting afterwards.
    let mut seller_feed = WsClient::connect_as(&app, &seller.token).await;
    seller_feed.expect("welcome").await;
    assert_eq!(seller_feed.expect("subscribed").await["seq"], 0);
    let own = format!("user:{}", seller.id);
    let missed = seller_feed.events_until(&own, 0, 2).await;
    assert_eq!(
        (&missed[0]["type"], &missed[0]["role"], &missed[1]["type"]),
        (
            &json!("MATCH_CREATED"),
            &json!("seller"),
            &json!("ORDER_UPDATED")
        )
    );
    let before = resumes(&app).await;
    let mut back = resume(&app, &channel, start).await;
    let replayed = back.events_until(&channel, start, end).await;
    assert_eq!(replayed, everything);
    assert_eq!(
        resumes(&app).await,
        (before.0, before.1 + 1, 0),
        "after a restart the window is empty: the database serves it"
    );
    let next = place_some(&app, &trader, product, 120..121).await;
    assert_eq!(next, end + 1, "seq continues across the restart");
    let live = back.events_until(&channel, end, next).await;
    assert_eq!(live[0]["type"], "BID_UPDATED");

    // A seq the server never had: a fresh snapshot, marked as a reset.
    let mut lost = WsClient::connect(&app).await;
    lost.expect("welcome").await;
    lost.send(&json!({"type": "subscribe", "channels": [channel], "since_seq": next + 1000}))
        .await;
    let reset = lost.expect("subscribed").await;
    assert_eq!(reset["reset"], true, "{reset}");
    assert_eq!(resumes(&app).await.2, 1);
    assert_eq!(reset["seq"], next);
    assert_eq!(
        reset["snapshot"]["markets"][0]["bids"][0]["price"],
        "120.00"
    );

    // The largest seq there is: a reset too, not an overflow.
    lost.send(&json!({"type": "subscribe", "channels": [channel], "since_seq": i64::MAX}))
        .await;
    let reset = lost.expect("subscribed").await;
    assert_eq!(
        (&reset["reset"], &reset["seq"]),
        (&json!(true), &json!(next))
    );
    assert_eq!(resumes(&app).await.2, 2);
}

/// With a retention of seconds, a restarted server (whose in-memory
/// window is empty) prunes a product's events down to its newest: a
/// resume from before that is a reset, a resume from just before the
/// newest still replays it, and the next restart numbers on. A seller who
/// was away for longer gets a reset of their own channel followed by what
/// is left of it, the sale made meanwhile included.
async fn a_resume_from_pruned_events_resets_and_numbering_goes_on(backend: Backend) {
    let mut app = spawn_app_on(TestDatabase::new(backend).await, |config| {
        config.feed_retention_secs = 1;
    })
    .await;
    let product = app.create_product("WS-PRUNE", &["10", "11"]).await;
    let channel = format!("product:{product}");
    let trader = app.register("trader").await;
    let seller = app.register("seller").await;
    let own = format!("user:{}", seller.id);
    place_some(&app, &trader, product, 100..105).await;
    // A sale in size 11: two events on the seller's channel.
    let sell = |price: &'static str| {
        let (app, seller, trader) = (&app, &seller, &trader);
        async move {
            assert_eq!(
                app.order(seller, "ask", product, "11", price).await.status,
                201
            );
            let bought = app.order(trader, "bid", product, "11", price).await;
            assert_eq!(bought.status, 201, "{:?}", bought.body);
            bought.body["seq"].as_i64().expect("a seq")
        }
    };
    let last = sell("50").await;

    let database = app.stop().await;
    // Older than the next server's two-second retention when its first
    // pass runs; what it does afterwards has two seconds to be read.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let app = spawn_app_on(database, |config| config.feed_retention_secs = 2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reset = loop {
        let (client, subscribed) = WsClient::resuming(&app, &channel, 0).await;
        client.close().await;
        if subscribed.get("reset").is_some() {
            break subscribed;
        }
        assert!(
            Instant::now() < deadline,
            "the events were not pruned in 10 s: {subscribed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (&reset["reset"], &reset["seq"]),
        (&json!(true), &json!(last)),
        "{reset}"
    );
    let bids = reset["snapshot"]["markets"][0]["bids"]
        .as_array()
        .expect("bids");
    assert_eq!((bids.len(), &bids[0]["price"]), (5, &json!("104.00")));
    assert_eq!(resumes(&app).await.2, 1, "counted as a reset");

    // The seller's first sale is past the retention; the second is not.
    // Connecting resumes their channel from 0, which is gone: a reset,
    // then every event still stored, the new sale's among them.
    let asked = app.order(&seller, "ask", product, "11", "60").await;
    assert_eq!(asked.status, 201, "{:?}", asked.body);
    let bought = app.order(&trader, "bid", product, "11", "60").await;
    assert_eq!(bought.status, 201, "{:?}", bought.body);
    let sold = app.get("/api/v1/notifications", Some(&seller.token)).await;
    assert_eq!(
        sold.body["items"].as_array().map(Vec::len),
        Some(2),
        "notifications are never pruned: {:?}",
        sold.body
    );
    let mut away = WsClient::connect_as(&app, &seller.token).await;
    away.expect("welcome").await;
    let rejoined = away.expect("subscribed").await;
    assert_eq!(
        (
            &rejoined["channel"],
            &rejoined["reset"],
            &rejoined["snapshot"]
        ),
        (&json!(own), &json!(true), &Value::Null),
        "{rejoined}"
    );
    let from = rejoined["seq"].as_i64().expect("a seq");
    assert!(
        (1..3).contains(&from),
        "the first sale's events were pruned, not the second's: {rejoined}"
    );
    let rest = away.events_until(&own, from, 4).await;
    assert!(
        rest.iter()
            .any(|event| event["type"] == "MATCH_CREATED" && event["price"] == "60.00"),
        "{rest:?}"
    );
    // The product's newest event outlives the retention.
    let last = bought.body["seq"].as_i64().expect("a seq");
    let mut back = resume(&app, &channel, last - 1).await;
    let kept = back.events_until(&channel, last - 1, last).await;
    assert_eq!(kept[0]["size"], "11", "{kept:?}");

    let database = app.stop().await;
    let app = spawn_app_on(database, |_| {}).await;
    let next = place_some(&app, &trader, product, 105..106).await;
    assert_eq!(next, last + 1, "seq goes on from the newest event kept");
}

/// A prune that runs while a resume is replayed from the database takes
/// the events the replay had not reached yet. The client gets every event
/// up to where the prune cut in, whole and in order, and then a `reset`
/// snapshot at the channel's newest `seq`, never a jump over the hole.
///
/// The replay reads the database a page (500 events) at a time. Small
/// socket buffers at both ends hold the server inside the first page
/// while the client reads no further than its first event, and the prune
/// runs then, so it lands between the first page and the second. Were
/// the first page to go out whole before the prune, the second would
/// follow it with no hole and no reset, and the test would fail.
async fn a_prune_during_a_replay_resets_where_the_events_stop(backend: Backend) {
    const TRADERS: u32 = 4;
    const EACH: u32 = 175;
    let mut app = spawn_app(backend).await;
    let product = app.create_product("WS-PRUNE-MID", &["10"]).await;
    let channel = format!("product:{product}");
    let mut traders = Vec::new();
    for index in 0..TRADERS {
        traders.push(app.register(&format!("trader-{index}")).await);
    }
    let shared = &app;
    join_all(traders.iter().zip(0..).map(|(trader, index)| async move {
        let first = 100 + index * EACH;
        place_some(shared, trader, product, first..first + EACH).await
    }))
    .await;
    let last = app.book(product, "10").await["seq"]
        .as_i64()
        .expect("a seq");
    assert!(last > 600, "{last} events: not enough for two pages");

    // A restarted server's window is empty: the database serves resumes.
    let database = app.stop().await;
    let url = database.url.clone();
    let app = spawn_app_on(database, |config| config.send_buffer = Some(4096)).await;
    let mut client = WsClient::connect_with(
        &app,
        &Connect {
            receive_buffer: Some(4096),
            ..Connect::default()
        },
    )
    .await
    .expect("the upgrade succeeds");
    client.expect("welcome").await;
    client
        .send(&json!({"type": "subscribe", "channels": [channel], "since_seq": 1}))
        .await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(
        (&subscribed["seq"], subscribed.get("reset")),
        (&json!(1), None),
        "{subscribed}"
    );
    // The first event shows the first page was read; the rest of it waits
    // on the client, far more than the buffers hold.
    let mut replayed = client.events_until(&channel, 1, 2).await;
    let store = Store::connect_lazy(&url, &StoreOptions::default()).expect("a store");
    let pruned = store.prune_feed(i64::MAX).await.expect("a prune");
    assert!(pruned.events + 2 >= last.unsigned_abs(), "{pruned:?}");
    replayed.extend(client.events_until(&channel, 2, 501).await);
    assert_eq!(replayed.len(), 500, "the first page, whole");
    let reset = client.expect("subscribed").await;
    assert_eq!(
        (&reset["reset"], &reset["seq"]),
        (&json!(true), &json!(last)),
        "{reset}"
    );
    let bids = &reset["snapshot"]["markets"][0]["bids"];
    let book = app.book_depth(product, "10", 1000).await;
    assert_eq!(bids, &book["bids"], "the snapshot is the committed book");
    assert_eq!(book["seq"], last);
    assert_eq!(resumes(&app).await, (0, 1, 1), "(window, database, reset)");

    // And on from there, live.
    let next = place_some(&app, &traders[0], product, 50..51).await;
    assert_eq!(next, last + 1);
    client.events_until(&channel, last, next).await;
}

/// `/realtime/stats`, once no client is connected: each connection adds
/// its count of messages as it closes.
async fn settled_stats(app: &TestApp) -> Value {
    let began = Instant::now();
    loop {
        let stats = app.get("/api/v1/realtime/stats", None).await.body;
        if stats["connected_clients"] == 0 {
            return stats;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "clients never left: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Events a resume replays are messages sent, as live ones are; and a
/// connection with a token, which joins its own channel from where the
/// user's events were last read, has not asked for a resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_events_are_sent_messages_and_signing_in_is_no_resume() {
    // No heartbeat during the test: it is a message sent too, and the
    // first one may come at any moment of a connection's first interval.
    let mut app = spawn_app_on(TestDatabase::new(Backend::Sqlite).await, |config| {
        config.ws_heartbeat_ms = 3_600_000;
    })
    .await;
    let product = app.create_product("WS-COUNT", &["10"]).await;
    let channel = format!("product:{product}");
    let trader = app.register("trader").await;
    let end = place_some(&app, &trader, product, 100..150).await;
    let before = settled_stats(&app).await["messages_sent"]
        .as_u64()
        .expect("a counter");
    let (mut client, _) = WsClient::resuming(&app, &channel, 0).await;
    let events = client.events_until(&channel, 0, end).await;
    client.close().await;
    let after = settled_stats(&app).await["messages_sent"]
        .as_u64()
        .expect("a counter");
    assert_eq!(
        after - before,
        2 + events.len() as u64,
        "welcome, subscribed and the {} events replayed",
        events.len()
    );

    let counted = resumes(&app).await;
    let mut signed_in = WsClient::connect_as(&app, &trader.token).await;
    signed_in.expect("welcome").await;
    signed_in.expect("subscribed").await;
    assert_eq!(resumes(&app).await, counted, "(window, database, reset)");
}

/// A `subscribe` with `since_seq` to a channel the connection follows
/// already, refused because the feed cannot be read, leaves that
/// subscription as it was: its events go on coming. The same for the
/// user's own channel and for a product (resumed after a restart, so that
/// the database, not the window, has to serve it).
async fn a_refused_resume_keeps_the_subscription_it_had(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("WS-KEEP", &["10"]).await;
    let channel = format!("product:{product}");
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let seq = place_some(&app, &bob, product, 100..103).await;
    let database = app.stop().await;
    let app = spawn_app_on(database, |_| {}).await;
    let own = format!("user:{}", ann.id);
    let mut client = WsClient::connect_as(&app, &ann.token).await;
    client.expect("welcome").await;
    let from = client.expect("subscribed").await["seq"]
        .as_i64()
        .expect("a seq");
    assert_eq!(client.subscribe(&channel).await["seq"], seq);

    let mut connection = app.database.as_ref().expect("a database").connect().await;
    sqlx::query("ALTER TABLE feed_events RENAME TO feed_events_away")
        .execute(&mut connection)
        .await
        .expect("the table moves");
    for name in [&own, &channel] {
        client
            .send(&json!({"type": "subscribe", "channels": [name], "since_seq": 1, "id": 5}))
            .await;
        let refused = client.expect("error").await;
        assert_eq!(
            (&refused["code"], &refused["id"]),
            (&json!("unavailable"), &json!(5)),
            "{refused}"
        );
    }
    sqlx::query("ALTER TABLE feed_events_away RENAME TO feed_events")
        .execute(&mut connection)
        .await
        .expect("the table returns");

    // Ann sells to Bob: her channel and the product's both go on.
    app.order(&ann, "ask", product, "10", "90").await;
    let sold = app.order(&bob, "bid", product, "10", "90").await;
    assert_eq!(sold.status, 201, "{:?}", sold.body);
    let last = sold.body["seq"].as_i64().expect("a seq");
    let mut heard = Vec::new();
    let (mut at_own, mut at_product) = (from, seq);
    while at_own < from + 2 || at_product < last {
        let message = client.next().await;
        let at = if message["channel"] == own.as_str() {
            &mut at_own
        } else {
            assert_eq!(message["channel"], channel.as_str(), "{message}");
            &mut at_product
        };
        assert_eq!(message["seq"], *at + 1, "a gap or a repeat: {message}");
        *at += 1;
        heard.push(message);
    }
    assert!(
        heard.iter().any(|event| event["type"] == "MATCH_CREATED"),
        "{heard:?}"
    );
}

/// A replay that cannot read its next page, after its `subscribed` went
/// out and some events with it, closes the connection with 1011 rather
/// than refusing the `subscribe`: a refusal there would leave the client
/// subscribed to nothing, or with a hole between the events it had and
/// the live ones. A resume from the last one it had goes on from there.
/// The unreadable page is a stored event that is not text (SQLite keeps
/// what it is given), 501st of the catalog channel, so the first page of
/// 500 is read and the second is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_cut_by_an_unreadable_page_closes_for_a_resume() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let store = Store::connect_lazy(&database.url, &StoreOptions::default()).expect("a store");
    store.migrate().await.expect("migrations");
    store.close().await;
    let mut connection = database.connect().await;
    for seq in 1..=500_i64 {
        sqlx::query(
            "INSERT INTO feed_events (channel, seq, event_type, payload, created_at) \
             VALUES ('products', $1, 'NEW_PRODUCT', $2, $3)",
        )
        .bind(seq)
        .bind(json!({"type": "NEW_PRODUCT", "seq": seq}).to_string())
        .bind(bidask_server::clock::now_micros())
        .execute(&mut connection)
        .await
        .expect("an event");
    }
    sqlx::query(
        "INSERT INTO feed_events (channel, seq, event_type, payload, created_at) \
         VALUES ('products', 501, 'NEW_PRODUCT', X'FF', $1)",
    )
    .bind(bidask_server::clock::now_micros())
    .execute(&mut connection)
    .await
    .expect("an event that is not text");
    drop(connection);
    let app = spawn_app_on(database, |_| {}).await;

    let mut client = WsClient::connect(&app).await;
    client.expect("welcome").await;
    client
        .send(&json!({"type": "subscribe", "channels": ["products"], "since_seq": 0, "id": 7}))
        .await;
    assert_eq!(client.expect("subscribed").await["seq"], 0);
    for seq in 1..=500 {
        assert_eq!(client.next().await["seq"], seq);
    }
    let close = client.closed().await;
    assert_eq!(
        close.as_ref().map(|frame| u16::from(frame.code)),
        Some(1011),
        "{close:?}"
    );
    assert!(
        close.is_some_and(|frame| frame.reason.contains("since_seq")),
        "the reason says how to go on"
    );

    // The server is fine, and the catalog channel's `seq` is where the
    // stored events end.
    let mut after = WsClient::connect(&app).await;
    after.expect("welcome").await;
    assert_eq!(after.subscribe("products").await["seq"], 501);
}
