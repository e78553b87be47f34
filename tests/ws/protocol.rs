//! Every message type of the protocol, its errors, and the three ways to
//! authenticate.

use std::time::{Duration, Instant};

use bidask_server::clock::now_micros;
use bidask_tests::ws::{Connect, EXAMPLE_KEY, WsClient, raw_request, refusal};
use bidask_tests::{
    Backend, JWT_SECRET, TestDatabase, on_both_backends, rust_words, spawn_app, spawn_app_on,
};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

on_both_backends!(
    welcome_ping_and_bad_messages,
    authentication_by_header_query_and_message,
    a_sign_in_whose_own_channel_cannot_be_joined_is_refused_by_its_id,
    subscribing_again_to_a_followed_channel_answers_where_it_stands
);

async fn welcome_ping_and_bad_messages(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("WS-PROTO", &["10"]).await;
    let mut client = WsClient::connect(&app).await;
    let welcome = client.expect("welcome").await;
    assert!(welcome["connection_id"].as_u64().is_some(), "{welcome}");
    assert_eq!(welcome["user"], Value::Null);
    assert_eq!(welcome["heartbeat_interval_ms"], 5_000);

    client.send(&json!({"type": "ping", "id": 7})).await;
    assert_eq!(client.next().await, json!({"type": "pong", "id": 7}));

    let bad: [(&str, &str, Value); 13] = [
        ("not json", "invalid_json", Value::Null),
        ("[1, 2]", "invalid_message", Value::Null),
        (r#"{"id": 1}"#, "invalid_message", json!(1)),
        (r#"{"type": 5, "id": 2}"#, "invalid_message", json!(2)),
        (
            r#"{"type": "dance", "id": "x"}"#,
            "unknown_type",
            json!("x"),
        ),
        (
            r#"{"type": "subscribe", "id": 3}"#,
            "invalid_message",
            json!(3),
        ),
        (
            r#"{"type": "subscribe", "channels": "product:1", "id": 4}"#,
            "invalid_message",
            json!(4),
        ),
        (
            r#"{"type": "subscribe", "channels": ["product:1"], "since_seq": "x"}"#,
            "invalid_message",
            Value::Null,
        ),
        (
            r#"{"type": "subscribe", "channels": ["orders:1"], "id": 5}"#,
            "unknown_channel",
            json!(5),
        ),
        (
            r#"{"type": "subscribe", "channels": ["product:999999"], "id": 6}"#,
            "unknown_channel",
            json!(6),
        ),
        (
            r#"{"type": "subscribe", "channels": ["user:1"], "id": 7}"#,
            "forbidden",
            json!(7),
        ),
        (
            r#"{"type": "auth", "token": "garbage", "id": 8}"#,
            "invalid_token",
            json!(8),
        ),
        (
            r#"{"type": "unsubscribe", "channels": [1]}"#,
            "invalid_message",
            Value::Null,
        ),
    ];
    for (frame, code, id) in bad {
        client.send_raw(Message::Text(frame.into())).await;
        let error = client.expect("error").await;
        assert_eq!(error["code"], code, "{frame} → {error}");
        assert_eq!(
            error.get("id").cloned().unwrap_or(Value::Null),
            id,
            "{frame} → {error}"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty() && rust_words(m).is_none()),
            "{frame} → {error}"
        );
    }
    client.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(client.expect("error").await["code"], "unsupported_frame");

    // The product's channel spelled another way: replies and events name
    // `product:{id}`, which such a client would not know for its own.
    for other in [format!("product:0{product}"), format!("product:+{product}")] {
        client
            .send(&json!({"type": "subscribe", "channels": [other], "id": 9}))
            .await;
        let error = client.expect("error").await;
        assert_eq!(error["code"], "unknown_channel", "{other} → {error}");
    }

    // None of that closed the connection.
    client.send(&json!({"type": "ping"})).await;
    assert_eq!(client.next().await, json!({"type": "pong"}));
    let stats = app.get("/api/v1/realtime/stats", None).await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.body["connected_clients"], 1, "{:?}", stats.body);
    for field in [
        "subscriptions",
        "events_published",
        "messages_sent",
        "slow_consumer_disconnects",
        "max_queue_depth",
    ] {
        assert!(stats.body[field].is_u64(), "{field}: {:?}", stats.body);
    }
    // A close from the client is answered with a close (RFC 6455 5.5.1),
    // so the client sees a clean end rather than a dropped connection.
    client
        .send_raw(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await;
    let echo = client.closed().await.expect("a close frame back");
    assert_eq!(echo.code, CloseCode::Normal);
}

async fn authentication_by_header_query_and_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let own_channel = |id: i64| format!("user:{id}");

    let mut by_header = WsClient::connect_with(
        &app,
        &Connect {
            header_token: Some(&alice.token),
            ..Connect::default()
        },
    )
    .await
    .expect("upgraded");
    let welcome = by_header.expect("welcome").await;
    assert_eq!(
        welcome["user"],
        json!({"id": alice.id, "username": "alice"})
    );
    let subscribed = by_header.expect("subscribed").await;
    assert_eq!(subscribed["channel"], own_channel(alice.id));
    assert_eq!(subscribed["seq"], 0);
    // Every `subscribed` carries the field, `null` where there is no book.
    assert_eq!(
        subscribed.get("snapshot"),
        Some(&Value::Null),
        "{subscribed}"
    );
    by_header
        .send(&json!({"type": "subscribe", "channels": [own_channel(bob.id)], "id": 1}))
        .await;
    assert_eq!(by_header.expect("error").await["code"], "forbidden");

    let mut by_query = WsClient::connect_as(&app, &bob.token).await;
    assert_eq!(by_query.expect("welcome").await["user"]["id"], bob.id);
    assert_eq!(
        by_query.expect("subscribed").await["channel"],
        own_channel(bob.id)
    );

    let mut by_message = WsClient::connect(&app).await;
    assert_eq!(by_message.expect("welcome").await["user"], Value::Null);
    by_message
        .send(&json!({"type": "auth", "token": bob.token, "id": "a"}))
        .await;
    let authenticated = by_message.expect("authenticated").await;
    assert_eq!(authenticated["user"]["username"], "bob");
    assert_eq!(authenticated["id"], "a");
    assert_eq!(
        by_message.expect("subscribed").await["channel"],
        own_channel(bob.id)
    );
    by_message
        .send(&json!({"type": "auth", "token": alice.token}))
        .await;
    assert_eq!(
        by_message.expect("error").await["code"],
        "already_authenticated"
    );
    // Subscribing to one's own channel again is acknowledged, not doubled.
    by_message
        .send(&json!({"type": "subscribe", "channels": [own_channel(bob.id)]}))
        .await;
    assert_eq!(
        by_message.expect("subscribed").await["channel"],
        own_channel(bob.id)
    );

    for token in ["garbage", &format!("{}x", alice.token)] {
        let refused = WsClient::connect_with(
            &app,
            &Connect {
                query_token: Some(token),
                ..Connect::default()
            },
        )
        .await
        .err()
        .expect("refused");
        assert_eq!(refusal(&refused), (401, "invalid_token".to_owned()));
    }
    // Credentials of another scheme (a browser behind a password-protected
    // proxy resends them), or a bare `Bearer`, are no token: the feed is
    // anonymous, or signed in by `?token=`. Two `Authorization` headers
    // are refused.
    let authority = app.address.trim_start_matches("http://");
    let upgrade = |query: &str, headers: &str| {
        format!(
            "GET /ws{query} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: {EXAMPLE_KEY}\r\n{headers}\r\n"
        )
    };
    for (query, user, header) in [
        (String::new(), Value::Null, "Basic YW5uOnNlY3JldA=="),
        (
            format!("?token={}", bob.token),
            json!("bob"),
            "Basic YW5uOnNlY3JldA==",
        ),
        (String::new(), Value::Null, "Bearer"),
        (format!("?token={}", bob.token), json!("bob"), "Bearer"),
    ] {
        let authorization = format!("Authorization: {header}\r\n");
        let (head, stream) = raw_request(authority, &upgrade(&query, &authorization)).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{header} {query}: {head}");
        let mut welcome = RawFrames(stream);
        let message = welcome.next_text().await;
        assert_eq!(message["type"], "welcome", "{message}");
        assert_eq!(
            message["user"]["username"], user,
            "{header} {query}: {message}"
        );
    }
    let both = format!(
        "Authorization: Bearer {}\r\nAuthorization: Bearer {}\r\n",
        alice.token, alice.token
    );
    let (head, _) = raw_request(authority, &upgrade("", &both)).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Two tokens: the same one twice is one user; two users is refused,
    // not decided by which came first.
    let both = |query_token| Connect {
        header_token: Some(&alice.token),
        query_token: Some(query_token),
        ..Connect::default()
    };
    let mut twice = WsClient::connect_with(&app, &both(&alice.token))
        .await
        .expect("upgraded");
    assert_eq!(twice.expect("welcome").await["user"]["id"], alice.id);
    let refused = WsClient::connect_with(&app, &both(&bob.token))
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal(&refused), (400, "ambiguous_token".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_ends_the_private_channel_until_a_fresh_one() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| config.ws_heartbeat_ms = 100).await;
    let product = app.create_product("WS-EXPIRY", &["10"]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let channel = format!("user:{}", ann.id);

    // A token of Ann's that expires in two seconds.
    let now = now_micros() / 1_000_000;
    let short = jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": ann.id.to_string(), "role": "trader", "iat": now, "exp": now + 2}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("a token");
    let mut client = WsClient::connect_as(&app, &short).await;
    assert_eq!(client.expect("welcome").await["user"]["id"], ann.id);
    assert_eq!(client.expect("subscribed").await["channel"], channel);

    let began = Instant::now();
    let expired = loop {
        assert!(began.elapsed() < Duration::from_secs(10), "never expired");
        let message = client.next_any().await;
        if message["type"] == "error" {
            break message;
        }
    };
    assert_eq!(expired["code"], "token_expired", "{expired}");

    // Ann sells while her token is expired: the sale is not sent to her
    // there, but to another connection of hers, which reads it.
    let mut other = WsClient::connect_as(&app, &ann.token).await;
    other.expect("welcome").await;
    let from = other.expect("subscribed").await["seq"]
        .as_i64()
        .expect("a seq");
    app.sell(&ann, &bob, product, "220.00").await;
    other.events_until(&channel, from, from + 2).await;
    other.close().await;
    // The sale recorded as delivered, as the other connection's pong
    // would: only then can a resume from the record be told from a
    // resume from this connection's own place.
    let mut database = app.database.as_ref().expect("a database").connect().await;
    sqlx::query(
        "INSERT INTO deliveries (user_id, seq) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
    )
    .bind(ann.id)
    .bind(from + 2)
    .execute(&mut database)
    .await
    .expect("the delivery recorded");
    client.send(&json!({"type": "ping", "id": 1})).await;
    assert_eq!(
        client.next().await,
        json!({"type": "pong", "id": 1}),
        "nothing of her channel comes first"
    );
    client
        .send(&json!({"type": "subscribe", "channels": [channel], "id": 2}))
        .await;
    let refused = client.expect("error").await;
    assert_eq!(
        (&refused["code"], &refused["id"]),
        (&json!("token_expired"), &json!(2))
    );

    // A fresh token resumes her channel where this connection stopped,
    // not where her other one did: the sale.
    client
        .send(&json!({"type": "auth", "token": ann.token}))
        .await;
    client.expect("authenticated").await;
    assert_eq!(client.expect("subscribed").await["channel"], channel);
    let sold = loop {
        let message = client.next().await;
        if message["type"] == "MATCH_CREATED" {
            break message;
        }
        assert_eq!(message["type"], "ORDER_UPDATED", "{message}");
    };
    assert_eq!(sold["channel"], channel);
    assert_eq!(sold["role"], "seller");
    // Each heartbeat records its connection's queue, in frames: buckets
    // of frames, not the latencies' fractions of a second, under which
    // every queue of one frame or more read as above 2.5.
    let metrics = app.metrics().await;
    for bucket in [
        r#"bidask_ws_queue_depth_bucket{le="16"}"#,
        r#"bidask_ws_queue_depth_bucket{le="65536"}"#,
    ] {
        assert!(metrics.contains(bucket), "{bucket} missing from /metrics");
    }
}

/// The `auth` succeeds, but joining the user's channel needs a read that
/// fails: the refusal names the `auth` message, so a client can tell that
/// it will get no private events and start over.
async fn a_sign_in_whose_own_channel_cannot_be_joined_is_refused_by_its_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.register("bob").await;
    let mut connection = app.database.as_ref().expect("a database").connect().await;
    // The one table only the join reads, out of the server's reach.
    sqlx::query("ALTER TABLE deliveries RENAME TO deliveries_away")
        .execute(&mut connection)
        .await
        .expect("the table moves");

    let mut client = WsClient::connect(&app).await;
    client.expect("welcome").await;
    client
        .send(&json!({"type": "auth", "token": bob.token, "id": "sign-in"}))
        .await;
    assert_eq!(client.expect("authenticated").await["id"], "sign-in");
    let refused = client.expect("error").await;
    assert_eq!(refused["id"], "sign-in", "{refused}");
    assert_eq!(refused["code"], "unavailable", "{refused}");

    sqlx::query("ALTER TABLE deliveries_away RENAME TO deliveries")
        .execute(&mut connection)
        .await
        .expect("the table returns");
    let own_channel = format!("user:{}", bob.id);
    client
        .send(&json!({"type": "subscribe", "channels": [own_channel], "id": 2}))
        .await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(subscribed["channel"], own_channel);
    assert_eq!(subscribed["id"], 2);
}

/// A `user:` or `products` channel already followed answers a second
/// `subscribe` with the `seq` this connection was last sent, from memory:
/// with the feed's table out of reach, it still does.
async fn subscribing_again_to_a_followed_channel_answers_where_it_stands(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let bob = app.register("bob").await;
    let own_channel = format!("user:{}", bob.id);
    let mut client = WsClient::connect_as(&app, &bob.token).await;
    client.expect("welcome").await;
    assert_eq!(client.expect("subscribed").await["seq"], 0);
    let seq = client.subscribe("products").await["seq"]
        .as_i64()
        .expect("a seq");
    app.create_product("WS-AGAIN", &["10"]).await;
    let event = client.events_until("products", seq, seq + 1).await;
    assert_eq!(event[0]["type"], "NEW_PRODUCT");

    let mut connection = app.database.as_ref().expect("a database").connect().await;
    sqlx::query("ALTER TABLE feed_events RENAME TO feed_events_away")
        .execute(&mut connection)
        .await
        .expect("the table moves");
    client
        .send(&json!({"type": "subscribe", "channels": ["products", own_channel], "id": 9}))
        .await;
    let products = client.expect("subscribed").await;
    assert_eq!(
        (&products["channel"], &products["seq"], &products["id"]),
        (&json!("products"), &json!(seq + 1), &json!(9)),
        "{products}"
    );
    assert_eq!(products.get("snapshot"), Some(&Value::Null), "{products}");
    let own = client.expect("subscribed").await;
    assert_eq!(
        (&own["channel"], &own["seq"]),
        (&json!(own_channel), &json!(0)),
        "{own}"
    );
    sqlx::query("ALTER TABLE feed_events_away RENAME TO feed_events")
        .execute(&mut connection)
        .await
        .expect("the table returns");
}

/// A message's `id` comes back exactly as written: parsed, 2^64 would
/// come back as 1.8446744073709552e19, `1e2` as 100.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_comes_back_as_written() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = WsClient::connect(&app).await;
    client.expect("welcome").await;
    for id in ["18446744073709551616", "1e2", "-0"] {
        let ping = format!(r#"{{"type": "ping", "id": {id}}}"#);
        client.send_raw(Message::text(ping)).await;
        let mut pong = None;
        for _ in 0..10 {
            if let Some(Message::Text(text)) = client.next_frame().await
                && !text.contains("heartbeat")
            {
                pong = Some(text.to_string());
                break;
            }
        }
        assert_eq!(pong, Some(format!(r#"{{"type":"pong","id":{id}}}"#)));
    }
}

/// A server's unmasked, unfragmented text frames read off a raw stream.
struct RawFrames(tokio::net::TcpStream);

impl RawFrames {
    async fn next_text(&mut self) -> Value {
        use tokio::io::AsyncReadExt;

        let reading = async {
            let mut head = [0_u8; 2];
            self.0.read_exact(&mut head).await.expect("a frame head");
            assert_eq!(head[0], 0x81, "one whole text frame");
            let length = match head[1] & 0x7f {
                126 => usize::from(self.0.read_u16().await.expect("a length")),
                127 => usize::try_from(self.0.read_u64().await.expect("a length")).expect("a size"),
                short => usize::from(short),
            };
            let mut payload = vec![0_u8; length];
            self.0.read_exact(&mut payload).await.expect("the payload");
            serde_json::from_slice(&payload).expect("JSON")
        };
        tokio::time::timeout(Duration::from_secs(10), reading)
            .await
            .expect("a frame within 10 s")
    }
}
