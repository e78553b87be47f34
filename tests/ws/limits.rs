//! Protection: origins, connection and subscription bounds, floods, huge
//! frames, and a plain GET of `/ws`.

use std::time::Duration;

use bidask_tests::process::ServerProcess;
use bidask_tests::ws::{
    Connect, EXAMPLE_ACCEPT, EXAMPLE_KEY, WsClient, raw_request, raw_upgrade, refusal,
};
use bidask_tests::{Backend, TestApp, TestDatabase, spawn_app_on};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_are_checked_and_a_plain_get_is_refused() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.allowed_origins = "https://shop.example".parse().expect("an origin");
    })
    .await;
    let own = app.address.clone();
    for (origin, allowed) in [
        (own.as_str(), true),
        ("https://shop.example", true),
        ("https://evil.example", false),
        ("null", false),
    ] {
        let outcome = WsClient::connect_with(
            &app,
            &Connect {
                origin: Some(origin),
                ..Connect::default()
            },
        )
        .await;
        match outcome {
            Ok(mut client) => {
                assert!(allowed, "{origin} must be refused");
                client.expect("welcome").await;
            }
            Err(response) => {
                assert!(!allowed, "{origin} must be allowed");
                assert_eq!(refusal(&response), (403, "forbidden".to_owned()));
            }
        }
    }
    let plain = app.get("/ws", None).await;
    assert_eq!(plain.status, 400);
    assert_eq!(plain.code(), "websocket_required");

    // The handshake itself, as raw requests: what a browser sends, and
    // the ways it can be wrong.
    let authority = app.address.trim_start_matches("http://").to_owned();
    let key = EXAMPLE_KEY;
    for (method, connection, version, key, status) in [
        ("GET", "Upgrade", "13", key, "101"),
        ("GET", "keep-alive, Upgrade", "13", key, "101"),
        ("GET", "upgrade", "13", key, "101"),
        ("HEAD", "Upgrade", "13", key, "400"),
        ("GET", "keep-alive", "13", key, "400"),
        ("GET", "Upgrade", "13", "hello", "400"),
        ("GET", "Upgrade", "13", "", "400"),
        ("GET", "Upgrade", "8", key, "426"),
    ] {
        let request = format!(
            "{method} /ws HTTP/1.1\r\nHost: {authority}\r\nConnection: {connection}\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: {version}\r\n\
             Sec-WebSocket-Key: {key}\r\n\r\n"
        );
        let (head, _) = raw_request(&authority, &request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{method} with Connection: {connection}, version {version}, key {key:?}: {head}"
        );
        match status {
            // RFC 6455's own example key and its answer.
            "101" => assert!(head.contains(EXAMPLE_ACCEPT), "{head}"),
            // The version this server speaks, for the client's next try.
            "426" => assert!(
                head.to_ascii_lowercase()
                    .contains("sec-websocket-version: 13"),
                "{head}"
            ),
            _ => {}
        }
    }
}

/// One client address may not take every place: past its own bound it
/// is refused while other addresses still connect, up to the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    use std::net::Ipv4Addr;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.ws_max_connections = 3;
        config.ws_max_connections_per_address = 2;
    })
    .await;
    let from = |last: u8| Connect {
        source: Some(Ipv4Addr::new(127, 0, 0, last)),
        ..Connect::default()
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = WsClient::connect_with(&app, &from(1))
            .await
            .expect("a place");
        client.expect("welcome").await;
        held.push(client);
    }
    let refused = WsClient::connect_with(&app, &from(1))
        .await
        .err()
        .expect("the address's third is refused");
    let (status, code) = refusal(&refused);
    assert_eq!((status, code.as_str()), (503, "at_capacity"));
    let mut other = WsClient::connect_with(&app, &from(2))
        .await
        .expect("another address still connects");
    other.expect("welcome").await;
    let full = WsClient::connect_with(&app, &from(3))
        .await
        .err()
        .expect("the server's fourth is refused");
    assert_eq!(refusal(&full), (503, "at_capacity".to_owned()));
    let stats = app.get("/api/v1/realtime/stats", None).await;
    assert_eq!(stats.body["refused_connections"], 2);

    // A closed connection gives its address its place back.
    held.pop().expect("a connection").close().await;
    connect_once_freed(&app, &from(1))
        .await
        .expect("welcome")
        .await;
}

/// Behind a trusted proxy, the bound is per client it forwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_places() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.ws_max_connections_per_address = 1;
        config.trusted_proxies = "127.0.0.0/8".parse().expect("a network");
    })
    .await;
    let mut held = Vec::new();
    for (client, expected) in [
        ("203.0.113.5", "HTTP/1.1 101"),
        ("203.0.113.6", "HTTP/1.1 101"),
        ("203.0.113.5", "HTTP/1.1 503"),
    ] {
        let forwarded = format!("X-Forwarded-For: {client}");
        let (head, stream) = raw_upgrade(&app, &[&forwarded]).await;
        assert!(head.starts_with(expected), "{client}: {head}");
        held.push(stream);
    }
}

/// Connects as `how` once a closed connection's place is given back,
/// which the server does when it sees the close: within two seconds.
async fn connect_once_freed(app: &TestApp, how: &Connect<'_>) -> WsClient {
    for _ in 0..100 {
        if let Ok(client) = WsClient::connect_with(app, how).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no place again within two seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_subscriptions_are_bounded() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| {
        config.ws_max_connections = 2;
        config.ws_max_subscriptions = 2;
    })
    .await;
    let first = app.create_product("WS-LIM-1", &["10"]).await;
    let second = app.create_product("WS-LIM-2", &["10"]).await;
    let mut one = WsClient::connect(&app).await;
    one.expect("welcome").await;
    let mut two = WsClient::connect(&app).await;
    two.expect("welcome").await;
    let refused = WsClient::connect_with(&app, &Connect::default())
        .await
        .err()
        .expect("a third connection is refused");
    assert_eq!(refusal(&refused), (503, "at_capacity".to_owned()));
    let stats = app.get("/api/v1/realtime/stats", None).await;
    assert_eq!(stats.body["refused_connections"], 1);

    one.send(&json!({"type": "subscribe", "channels": [format!("product:{first}"), format!("product:{second}"), "products"], "id": 1}))
        .await;
    let error = one.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["id"].as_i64()),
        (Some("too_many_subscriptions"), Some(1))
    );
    one.send(&json!({"type": "subscribe", "channels": [format!("product:{first}"), "products"]}))
        .await;
    one.expect("subscribed").await;
    one.expect("subscribed").await;
    one.send(&json!({"type": "subscribe", "channels": [format!("product:{second}")]}))
        .await;
    assert_eq!(one.expect("error").await["code"], "too_many_subscriptions");
    one.send(&json!({"type": "unsubscribe", "channels": ["products"], "id": 2}))
        .await;
    assert_eq!(
        one.expect("unsubscribed").await,
        json!({"type": "unsubscribed", "channels": ["products"], "id": 2})
    );
    one.send(&json!({"type": "subscribe", "channels": [format!("product:{second}")]}))
        .await;
    one.expect("subscribed").await;

    // A closed connection frees its place.
    two.close().await;
    connect_once_freed(&app, &Connect::default())
        .await
        .expect("welcome")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_channel_counts_toward_the_subscription_bound() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| config.ws_max_subscriptions = 2).await;
    let first = app.create_product("WS-OWN-1", &["10"]).await;
    let second = app.create_product("WS-OWN-2", &["10"]).await;
    let ann = app.register("ann").await;
    let mut feed = WsClient::connect_as(&app, &ann.token).await;
    feed.expect("welcome").await;
    assert_eq!(
        feed.expect("subscribed").await["channel"],
        format!("user:{}", ann.id)
    );
    feed.send(&json!({"type": "subscribe", "channels": [format!("product:{first}"), format!("product:{second}")], "id": 1}))
        .await;
    assert_eq!(feed.expect("error").await["code"], "too_many_subscriptions");
    feed.subscribe(&format!("product:{first}")).await;

    // Signing in on a connection already at the bound does not join the
    // own channel past it: the `auth`'s refusal says so, and the
    // connection keeps what it had.
    let mut anonymous = WsClient::connect(&app).await;
    anonymous.expect("welcome").await;
    anonymous.subscribe(&format!("product:{first}")).await;
    anonymous.subscribe(&format!("product:{second}")).await;
    anonymous
        .send(&json!({"type": "auth", "token": ann.token, "id": 7}))
        .await;
    anonymous.expect("authenticated").await;
    let refused = anonymous.expect("error").await;
    assert_eq!(
        (&refused["code"], &refused["id"]),
        (&json!("too_many_subscriptions"), &json!(7)),
        "{refused}"
    );
    let stats = app.get("/api/v1/realtime/stats", None).await;
    assert_eq!(stats.body["subscriptions"], 4, "{:?}", stats.body);
}

/// A client that keeps sending at a few times its rate is closed, though
/// some of its messages pass; one that keeps within its rate is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_sending_past_its_rate_is_closed() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| config.ws_messages_per_sec = 5).await;

    // 20 a second, each slot's answers read before the next is sent.
    let mut flooder = WsClient::connect(&app).await;
    flooder.expect("welcome").await;
    let (mut sent, mut answered, mut refused) = (0, 0, 0);
    let close = 'flood: loop {
        assert!(
            sent < 200,
            "still open after 200 messages in 10 s: {answered} answered, {refused} refused"
        );
        flooder.send(&json!({"type": "ping", "id": sent})).await;
        sent += 1;
        let slot = tokio::time::Instant::now() + Duration::from_millis(50);
        while let Ok(frame) = tokio::time::timeout_at(slot, flooder.next_result()).await {
            match frame {
                Some(Ok(Message::Close(frame))) => break 'flood frame,
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON");
                    match message["type"].as_str() {
                        Some("pong") => answered += 1,
                        Some("error") if message["code"] == "rate_limited" => refused += 1,
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        }
    };
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Policy));
    // Past the first second's burst of 5, some passed between refusals.
    assert!(
        answered > 5 && refused > 0,
        "{answered} answered, {refused} refused before the close"
    );
    drop(flooder);

    // 4 a second for 3 s: every one answered.
    let mut steady = WsClient::connect(&app).await;
    steady.expect("welcome").await;
    for n in 0..12 {
        steady.send(&json!({"type": "ping", "id": n})).await;
        let answer = steady.next().await;
        assert_eq!(
            (&answer["type"], &answer["id"]),
            (&json!("pong"), &json!(n)),
            "{answer}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    steady.close().await;
    app.stop().await;
}

/// Every text message `client` gets but heartbeats, and the close frame
/// that ends them; panics if none comes within 30 s, or the connection
/// ends without one.
async fn answers_until_closed(client: &mut WsClient) -> (Vec<Value>, Option<CloseFrame>) {
    let mut answers = Vec::new();
    let reading = async {
        loop {
            match client.next_frame().await {
                Some(Message::Text(text)) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON");
                    if message["type"] != "heartbeat" {
                        answers.push(message);
                    }
                }
                Some(Message::Close(frame)) => break frame,
                Some(_) => {}
                None => panic!("closed without a close frame"),
            }
        }
    };
    let close = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the close within 30 s");
    (answers, close)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_and_huge_frames_close_the_connection() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.ws_messages_per_sec = 5;
        config.ws_max_message_bytes = 1024;
    })
    .await;
    let mut flooder = WsClient::connect(&app).await;
    flooder.expect("welcome").await;
    for n in 0..50 {
        flooder.send(&json!({"type": "ping", "id": n})).await;
    }
    let (answers, close) = answers_until_closed(&mut flooder).await;
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|message| message["type"] == "error")
        .collect();
    for message in &refused {
        assert_eq!(message["code"], "rate_limited", "{message}");
        assert!(
            message["id"].is_u64(),
            "the refused message's id: {message}"
        );
    }
    assert!(
        !refused.is_empty(),
        "the flood was answered with rate_limited first"
    );
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Policy));

    // Pongs of no ping of the server's are messages too: each could
    // make the server record a delivery.
    let mut ponger = WsClient::connect(&app).await;
    ponger.expect("welcome").await;
    for n in 0..50_i64 {
        ponger
            .send_raw(Message::Pong(Bytes::copy_from_slice(&n.to_be_bytes())))
            .await;
    }
    let (answers, close) = answers_until_closed(&mut ponger).await;
    for message in &answers {
        assert_eq!(message["code"], "rate_limited", "{message}");
    }
    assert!(
        !answers.is_empty(),
        "the pongs were answered with rate_limited first"
    );
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Policy));

    let mut big = WsClient::connect(&app).await;
    big.expect("welcome").await;
    // Just under the bound is a message like any other.
    let padding = "x".repeat(1000);
    big.send(&json!({"type": "ping", "id": padding})).await;
    assert_eq!(big.next().await["type"], "pong");
    big.send_raw(Message::Text("x".repeat(4096).into())).await;
    assert_eq!(
        big.closed().await.map(|frame| frame.code),
        Some(CloseCode::Size)
    );

    // The bound is on the message, not the frame: small fragments that
    // add up to too much close the connection the same way.
    let mut fragmented = WsClient::connect(&app).await;
    fragmented.expect("welcome").await;
    let piece = || Bytes::from("x".repeat(512));
    fragmented
        .send_raw(Message::Frame(Frame::message(
            piece(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    for last in [false, false, false, false, false, false, true] {
        fragmented
            .send_raw(Message::Frame(Frame::message(
                piece(),
                OpCode::Data(Data::Continue),
                last,
            )))
            .await;
    }
    assert_eq!(
        fragmented.closed().await.map(|frame| frame.code),
        Some(CloseCode::Size)
    );

    // The server is fine.
    let mut after = WsClient::connect(&app).await;
    after.expect("welcome").await;
    after.send(&json!({"type": "ping"})).await;
    assert_eq!(after.next().await["type"], "pong");
}

/// A client that breaks the protocol's rules gets the close code for the
/// rule it broke (RFC 6455, section 7.1.7), not a connection that just
/// ends; and the server goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_are_closed_with_their_code() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;

    let app = bidask_tests::spawn_app(Backend::Sqlite).await;
    // Any opcode with any payload: `Frame::message` takes data opcodes
    // only, so the frame is made as a ping and given its opcode.
    let frame = |opcode: OpCode, payload: &[u8], last: bool| {
        let mut frame = Frame::ping(Bytes::copy_from_slice(payload));
        frame.header_mut().opcode = opcode;
        frame.header_mut().is_final = last;
        Message::Frame(frame)
    };
    let text = OpCode::Data(Data::Text);
    let close = OpCode::Control(Control::Close);
    let cases = [
        (
            "text that is not UTF-8",
            vec![frame(text, b"{\"x\":\"\xff\"}", true)],
            CloseCode::Invalid,
        ),
        (
            "an overlong encoding",
            vec![frame(text, b"\xc0\xaf", true)],
            CloseCode::Invalid,
        ),
        (
            "a continuation with no message begun",
            vec![frame(OpCode::Data(Data::Continue), b"{}", true)],
            CloseCode::Protocol,
        ),
        (
            "a new message inside a fragmented one",
            vec![frame(text, b"{\"ty", false), frame(text, b"pe\"}", true)],
            CloseCode::Protocol,
        ),
        (
            "a ping longer than a control frame may be",
            vec![frame(OpCode::Control(Control::Ping), &[b'p'; 200], true)],
            CloseCode::Protocol,
        ),
        (
            "a close of one byte",
            vec![frame(close, b"\x03", true)],
            CloseCode::Protocol,
        ),
        (
            "a close whose reason is not UTF-8",
            vec![frame(close, b"\x03\xe8\xff", true)],
            CloseCode::Invalid,
        ),
    ];
    for (what, frames, code) in cases {
        let mut client = WsClient::connect(&app).await;
        client.expect("welcome").await;
        for frame in frames {
            client.send_raw(frame).await;
        }
        assert_eq!(
            client.closed().await.map(|frame| frame.code),
            Some(code),
            "{what}"
        );
    }
    let mut after = WsClient::connect(&app).await;
    after.expect("welcome").await;
    after.send(&json!({"type": "ping"})).await;
    assert_eq!(after.next().await["type"], "pong");
    after.close().await;
    app.stop().await;
}

/// The open-file limit bounds the connections, and past it `accept` fails
/// for REST and WebSocket alike. Start-up raises a low soft limit to the
/// hard one; under a low hard limit it lowers the WebSocket bound, leaving
/// files for the rest, so that an upgrade past it gets a 503 and REST
/// still answers. Each server is a process of its own, started by a shell
/// that lowers its limit first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_bounds_websockets_and_spares_rest() {
    const LIMIT: usize = 600;
    // The raise is seen by holding more than LIMIT: the hard limit must
    // leave room for that beside the server's reserve of up to 1,000.
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits
                .lines()
                .find(|line| line.starts_with("Max open files"))?;
            line.split_whitespace().nth(4)?.parse::<usize>().ok()
        })
        .unwrap_or(usize::MAX);
    assert!(
        hard >= 2 * LIMIT + 1_000,
        "this test needs a hard open-file limit of at least {}, not {hard}",
        2 * LIMIT + 1_000
    );
    // `-Sn` lowers the soft limit only, `-n` both.
    for (ulimit, room) in [("-Sn", None), ("-n", Some(450))] {
        let database = TestDatabase::new(Backend::Sqlite).await;
        let mut command = std::process::Command::new("sh");
        command
            .args([
                "-c",
                &format!("ulimit {ulimit} {LIMIT} && exec \"$0\" serve --listen 127.0.0.1:0"),
                env!("CARGO_BIN_EXE_bidask-under-test"),
            ])
            .env("DATABASE_URL", &database.url)
            .env("BIDASK_JWT_SECRET", bidask_tests::JWT_SECRET)
            // The clients never read: no ping may time them out meanwhile.
            .env("BIDASK_WS_HEARTBEAT_MS", "3600000");
        let server = ServerProcess::spawn(command);
        let app = TestApp::connect(server.address.clone());
        let mut held = Vec::new();
        let anonymous = Connect::default();
        let refused = loop {
            if held.len() > LIMIT + 100 {
                break None;
            }
            let upgrade = WsClient::connect_with(&app, &anonymous);
            match tokio::time::timeout(Duration::from_secs(10), upgrade).await {
                Ok(Ok(client)) => held.push(client),
                Ok(Err(response)) => break Some(refusal(&response)),
                Err(_) => panic!(
                    "ulimit {ulimit} {LIMIT}: upgrade {} had no answer in 10 s",
                    held.len() + 1
                ),
            }
        };
        match room {
            None => assert_eq!(refused, None, "the soft limit was not raised"),
            Some(room) => {
                assert_eq!(held.len(), room);
                assert_eq!(refused, Some((503, "at_capacity".to_owned())));
            }
        }
        let health = tokio::time::timeout(Duration::from_secs(10), app.get("/healthz", None)).await;
        assert_eq!(
            health.map(|reply| reply.status).ok(),
            Some(200),
            "ulimit {ulimit}"
        );
    }
}
