//! Clients that do not keep up: a reader that stops reading is closed with
//! 4008 and its last `seq`, without holding back anyone else; a client that
//! stops answering pings is dropped; shutdown closes with 1001.

use std::time::{Duration, Instant};

use bidask_tests::ws::{Connect, WsClient, raw_upgrade};
use bidask_tests::{Backend, TestApp, TestDatabase, spawn_app_on};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A client whose kernel holds little for it (a 4 KiB receive buffer), so
/// that once it stops reading the server's writes to it back up soon;
/// past its `welcome`.
async fn small_buffered(app: &TestApp) -> WsClient {
    let mut client = WsClient::connect_with(
        app,
        &Connect {
            receive_buffer: Some(4096),
            ..Connect::default()
        },
    )
    .await
    .expect("upgraded");
    client.expect("welcome").await;
    client
}

async fn stat(app: &TestApp, field: &str) -> u64 {
    let stats = app.get("/api/v1/realtime/stats", None).await;
    stats.body[field].as_u64().expect("a counter")
}

/// Waits, up to `within`, until a client was dropped for not answering
/// (counted with the ping timeouts).
async fn until_dropped(app: &TestApp, within: Duration, what: &str) {
    until_stat(app, "ping_timeouts", |timeouts| timeouts > 0, within, what).await;
}

/// Waits, up to `within`, until the counter `field` of
/// `/realtime/stats` satisfies `done`; fails saying `what` did not happen.
async fn until_stat(
    app: &TestApp,
    field: &str,
    done: impl Fn(u64) -> bool,
    within: Duration,
    what: &str,
) {
    let began = Instant::now();
    while !done(stat(app, field).await) {
        assert!(began.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_closed_with_4008_and_others_get_everything() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| {
        config.ws_queue = 8;
        config.send_buffer = Some(8 * 1024);
    })
    .await;
    let product = app.create_product("WS-SLOW", &["10"]).await;
    let channel = format!("product:{product}");
    let trader = app.register("trader").await;

    let mut stuck = small_buffered(&app).await;
    let start = stuck.subscribe(&channel).await["seq"]
        .as_i64()
        .expect("a seq");
    let mut healthy = WsClient::connect(&app).await;
    healthy.expect("welcome").await;
    assert_eq!(healthy.subscribe(&channel).await["seq"], start);

    // Orders until the stuck client is cut off, bounded in count and time.
    let began = Instant::now();
    let mut end = start;
    let mut placed = 0;
    while stat(&app, "slow_consumer_disconnects").await == 0 {
        assert!(
            placed < 5_000 && began.elapsed() < Duration::from_secs(120),
            "never cut off"
        );
        for price in 0..50 {
            let price = format!("{}.{:02}", 100 + placed % 50, price);
            let reply = app.order(&trader, "bid", product, "10", &price).await;
            assert_eq!(reply.status, 201, "{:?}", reply.body);
            end = reply.body["seq"].as_i64().expect("a seq");
            placed += 1;
        }
        // The healthy client keeps up as it goes.
        healthy.events_until(&channel, end - 50, end).await;
    }
    println!("the stuck client was cut off after {placed} orders");

    // The stuck client finally reads: what was written, a slow_consumer
    // error with its seqs, and the 4008 close naming them.
    let mut last = start;
    let mut told = None;
    let reading = async {
        loop {
            match stuck.next_frame().await {
                Some(Message::Text(text)) => {
                    let message: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                    if message["type"] == "error" {
                        assert_eq!(message["code"], "slow_consumer");
                        told = message["seqs"][&channel].as_i64();
                    } else if message["channel"] == channel.as_str() {
                        let seq = message["seq"].as_i64().expect("a seq");
                        assert_eq!(seq, last + 1);
                        last = seq;
                    }
                }
                Some(Message::Close(frame)) => break frame,
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
    };
    let close = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the close within 30 s");
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::from(4008));
    assert!(
        close.reason.contains(&format!("{channel}={last}")),
        "{}",
        close.reason
    );
    assert_eq!(told, Some(last));

    // It resumes from there and misses nothing.
    let mut back = WsClient::connect(&app).await;
    back.expect("welcome").await;
    back.send(&json!({"type": "subscribe", "channels": [channel], "since_seq": last}))
        .await;
    back.expect("subscribed").await;
    back.events_until(&channel, last, end).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_carry_seqs_and_silent_clients_are_dropped() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| config.ws_heartbeat_ms = 100).await;
    let product = app.create_product("WS-BEAT", &["10"]).await;
    let channel = format!("product:{product}");
    let mut listening = WsClient::connect(&app).await;
    assert_eq!(
        listening.expect("welcome").await["heartbeat_interval_ms"],
        100
    );
    let seq = listening.subscribe(&channel).await["seq"].clone();
    let heartbeat = loop {
        let message = listening.next_any().await;
        if message["type"] == "heartbeat" {
            break message;
        }
    };
    assert_eq!(heartbeat["seqs"], json!({channel.clone(): seq}));
    assert!(heartbeat["ts"].is_string());

    // This one never reads, so it never answers a ping.
    let mut silent = WsClient::connect(&app).await;
    let began = Instant::now();
    while stat(&app, "ping_timeouts").await == 0 {
        assert!(began.elapsed() < Duration::from_secs(10), "never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The listening client answers pings by reading.
        let _ = listening.next_any().await;
    }
    assert_eq!(silent.expect("welcome").await["type"], "welcome");
    let frame = silent.closed().await;
    assert_eq!(frame.map(|frame| frame.code), Some(CloseCode::Policy));
    listening.send(&json!({"type": "ping"})).await;
    assert_eq!(
        listening.next().await["type"],
        "pong",
        "the reading client stays"
    );
}

/// A client that stops reading once its kernel buffers are full, with
/// room left in its outbox: no later event overflows the outbox, and
/// while the server's write to it waits, no heartbeat is heard either. It
/// is dropped all the same (1008, counted with the ping timeouts) once the
/// write has waited as long as a client may stay silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stuck_mid_write_is_dropped_as_silent() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    // Three heartbeats of silence (3 s) must not pass before the buffers
    // fill, some thirty events in, or the ping timeout closes the client
    // first; at 100 ms that race was lost on a loaded machine.
    // The request time bound, which also closes an HTTP connection whose
    // response goes unread, is shorter than the feed's: a WebSocket's
    // writes are the gateway's to bound, with a close that says why.
    let mut app = spawn_app_on(database, |config| {
        config.ws_heartbeat_ms = 1_000;
        config.ws_queue = 100_000;
        config.send_buffer = Some(4 * 1024);
        config.request_timeout_secs = 2;
    })
    .await;
    let product = app.create_product("WS-STUCK", &["10"]).await;
    let channel = format!("product:{product}");
    let trader = app.register("trader").await;
    let mut stuck = small_buffered(&app).await;
    stuck.subscribe(&channel).await;

    // Far more than the kernel buffers hold, far fewer than the outbox.
    for index in 0..400 {
        let price = format!("{}.{:02}", 100 + index / 100, index % 100);
        let reply = app.order(&trader, "bid", product, "10", &price).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    until_dropped(
        &app,
        Duration::from_secs(20),
        "a client stuck mid-write was never dropped",
    )
    .await;
    assert_eq!(stat(&app, "slow_consumer_disconnects").await, 0);
    // Reading again, it finds the close at the end of what was written,
    // saying why: a write waited, not three heartbeats went unanswered.
    let frame = stuck.closed().await.expect("a close frame");
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode::Policy, "not reading")
    );
}

/// A seller whose connection stops reading (a phone that lost its
/// network) has not had what the server wrote into its buffers: her next
/// connection gets every sale, in order, from the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_written_to_a_client_that_stopped_reading_reach_its_next_connection() {
    const SALES: usize = 60;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| {
        config.ws_heartbeat_ms = 1_000;
        config.ws_queue = 100_000;
        config.send_buffer = Some(4 * 1024);
    })
    .await;
    let product = app.create_product("WS-GONE", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let channel = format!("user:{}", seller.id);
    let mut gone = WsClient::connect_with(
        &app,
        &Connect {
            query_token: Some(&seller.token),
            receive_buffer: Some(4096),
            ..Connect::default()
        },
    )
    .await
    .expect("upgraded");
    gone.expect("welcome").await;
    assert_eq!(gone.expect("subscribed").await["seq"], 0);

    // Far more than the kernel buffers hold: it reads none of it.
    for index in 0..SALES {
        let price = format!("{}.00", 100 + index);
        app.sell(&seller, &buyer, product, &price).await;
    }
    until_dropped(
        &app,
        Duration::from_secs(20),
        "the client that stopped reading was never dropped",
    )
    .await;
    drop(gone);

    let mut back = WsClient::connect_as(&app, &seller.token).await;
    back.expect("welcome").await;
    assert_eq!(back.expect("subscribed").await["seq"], 0);
    // A sale is her order's update and the match.
    let events = back.events_until(&channel, 0, 2 * SALES as i64).await;
    let received: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "MATCH_CREATED")
        .map(|event| &event["notification_id"])
        .collect();
    let stored = app
        .get("/api/v1/notifications?limit=100", Some(&seller.token))
        .await;
    let stored: Vec<&Value> = stored.body["items"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|notification| &notification["notification_id"])
        .collect();
    assert_eq!(received.len(), SALES);
    assert_eq!(received, stored);
}

/// A close says nothing of what the client read: a browser drops whatever
/// arrives once it is closing. A seller who closes her page as the sales
/// she missed are written to it gets them all on her next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_without_reading_gets_its_backlog_next_time() {
    const SALES: i64 = 5;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |_| {}).await;
    let product = app.create_product("WS-CLOSED", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let channel = format!("user:{}", seller.id);
    for index in 0..SALES {
        let price = format!("{}.00", 100 + index);
        app.sell(&seller, &buyer, product, &price).await;
    }
    // Upgraded, it sends a close at once and reads nothing, but keeps its
    // end open until the server is done with it.
    let bearer = format!("Authorization: Bearer {}", seller.token);
    let (head, mut leaving) = raw_upgrade(&app, &[&bearer]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // A masked close frame without a payload.
    leaving
        .write_all(&[0x88, 0x80, 7, 1, 2, 9])
        .await
        .expect("the close is sent");
    let gone = |connected| connected == 0;
    let within = Duration::from_secs(20);
    until_stat(
        &app,
        "connected_clients",
        gone,
        within,
        "the closed connection is still counted",
    )
    .await;
    drop(leaving);
    let mut back = WsClient::connect_as(&app, &seller.token).await;
    back.expect("welcome").await;
    assert_eq!(back.expect("subscribed").await["seq"], 0);
    back.events_until(&channel, 0, 2 * SALES).await;
}

/// A client that reads answers the heartbeat's ping, and what it answered
/// for is recorded as delivered while it is still connected: its next
/// connection, even after this one just ends, starts after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_answered_a_ping_for_is_recorded_as_delivered() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| config.ws_heartbeat_ms = 100).await;
    let product = app.create_product("WS-ACKED", &["10"]).await;
    let seller = app.register("seller").await;
    let buyer = app.register("buyer").await;
    let channel = format!("user:{}", seller.id);
    let mut reading = WsClient::connect_as(&app, &seller.token).await;
    reading.expect("welcome").await;
    assert_eq!(reading.expect("subscribed").await["seq"], 0);
    app.sell(&seller, &buyer, product, "150.00").await;
    reading.events_until(&channel, 0, 2).await;
    crate::feed::answer_a_ping(&mut reading).await;
    crate::feed::wait_for_delivery(&app, seller.id, 2).await;
    // It just ends: the next connection starts after the sale all the
    // same.
    drop(reading);
    let mut next = WsClient::connect_as(&app, &seller.token).await;
    next.expect("welcome").await;
    assert_eq!(next.expect("subscribed").await["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_feeds_with_1001() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |_| {}).await;
    let mut client = WsClient::connect(&app).await;
    client.expect("welcome").await;
    let stopping = tokio::spawn(app.stop());
    let frame = client.closed().await;
    assert_eq!(frame.map(|frame| frame.code), Some(CloseCode::Away));
    stopping.await.expect("the server stops");
}

/// A client that stops reading in the middle of a long snapshot, which
/// goes out in fragments, is closed with 4008 like any other; the close
/// is the only frame that may follow part of a message, so the
/// `slow_consumer` error is not sent, and the snapshot's `seq`, which the
/// client never had whole, is not named as its last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_mid_snapshot_is_closed_with_4008() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| {
        config.ws_queue = 8;
        config.send_buffer = Some(4 * 1024);
    })
    .await;
    let product = app.create_product("WS-MIDSNAP", &["10"]).await;
    let channel = format!("product:{product}");
    let buyer = app.register("buyer").await;
    // About 40 KB of snapshot, far more than the two sockets' buffers.
    for level in 0..900 {
        let price = format!("{}.{:02}", 100 + level / 100, level % 100);
        let reply = app.order(&buyer, "bid", product, "10", &price).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    let mut stuck = small_buffered(&app).await;
    stuck
        .send(&json!({"type": "subscribe", "channels": [channel]}))
        .await;

    // Orders until it is cut off, bounded in count and time.
    let began = Instant::now();
    let mut placed = 0;
    while stat(&app, "slow_consumer_disconnects").await == 0 {
        assert!(
            placed < 2_000 && began.elapsed() < Duration::from_secs(60),
            "never cut off"
        );
        let price = format!("{}.{:02}", 50 + placed / 100, placed % 100);
        let reply = app.order(&buyer, "bid", product, "10", &price).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        placed += 1;
    }

    // What it reads now: part of the snapshot, then the close, and no
    // error of the protocol on the way.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), stuck.next_result()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.expect("a close frame"),
            Ok(Some(Ok(Message::Text(text)))) => {
                assert!(!text.contains("subscribed"), "the snapshot went out whole");
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(error))) => panic!("the client read {error}"),
            Ok(None) => panic!("the connection ended without a close frame"),
            Err(_) => panic!("no close within 10 s"),
        }
    };
    assert_eq!(close.code, CloseCode::from(4008));
    assert!(!close.reason.contains(&channel), "{}", close.reason);
}
