//! Rate limits: past the burst, 429 with `Retry-After`, nothing stored.

use bidask_tests::{Backend, TestApp, TestDatabase, on_both_backends, spawn_app_on};
use serde_json::json;

on_both_backends!(a_user_past_the_burst_gets_429_with_retry_after);
on_both_backends!(an_address_past_its_password_checks_gets_429_while_requests_go_on);
on_both_backends!(clients_behind_a_trusted_proxy_are_limited_each_by_their_own_address);
on_both_backends!(logins_to_one_account_are_limited_whatever_address_they_come_from);

async fn a_user_past_the_burst_gets_429_with_retry_after(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let mut app = spawn_app_on(database, |config| config.rate_limit_user = 2).await;
    let product = app.create_product("LIMIT-1", &["10"]).await;
    let ann = app.register("ann").await;
    // A rate of 2/s bursts to 4: the fifth immediate request is refused.
    let mut statuses = Vec::new();
    let mut retry_after = 0;
    for index in 0..6 {
        let reply = app
            .place(
                &ann,
                "bid",
                &json!({"product_id": product, "size": "10", "price": format!("{}.00", 100 + index)}),
            )
            .await;
        if reply.status == 429 {
            assert_eq!(reply.code(), "rate_limited");
            let seconds = reply
                .retry_after
                .as_deref()
                .and_then(|value| value.parse::<u64>().ok())
                .filter(|seconds| *seconds >= 1);
            let Some(seconds) = seconds else {
                panic!("429 without a usable Retry-After: {:?}", reply.retry_after);
            };
            retry_after = retry_after.max(seconds);
        }
        statuses.push(reply.status);
    }
    assert!(
        statuses.contains(&429),
        "no request was limited: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|status| matches!(status, 201 | 429)),
        "{statuses:?}"
    );
    let placed = statuses.iter().filter(|status| **status == 201).count();
    // After the wait it asked for, the user is served again, and only the
    // orders that got a 201 exist.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    let again = app.order(&ann, "bid", product, "10", "99.00").await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    let orders = app.get("/api/v1/orders", Some(&ann.token)).await;
    assert_eq!(orders.status, 200, "{:?}", orders.body);
    assert_eq!(
        orders.body["items"].as_array().map(Vec::len),
        Some(placed + 1)
    );
    app.stop().await;
}

/// Registrations and logins cost an Argon2 hash each, so an address gets
/// far fewer of them than of other requests; the rest of the API is not
/// held back by it.
async fn an_address_past_its_password_checks_gets_429_while_requests_go_on(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let app = spawn_app_on(database, |config| config.rate_limit_auth = 1).await;
    let credentials = json!({"username": "bea", "password": "password-of-bea"});
    // A rate of 1/s bursts to 2: the registration and one login pass.
    let registered = app.post("/api/v1/auth/register", None, &credentials).await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let token = registered.body["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    // All at once: the limit is checked before the hash, so however long
    // the hashes take, the bucket cannot refill between the checks.
    let logins = (0..4).map(|_| app.post("/api/v1/auth/login", None, &credentials));
    let replies = futures_util::future::join_all(logins).await;
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    for reply in replies.iter().filter(|reply| reply.status == 429) {
        assert_eq!(reply.code(), "rate_limited");
        assert!(reply.retry_after.is_some(), "429 without Retry-After");
    }
    assert!(
        statuses.iter().all(|status| [200, 429].contains(status)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&200),
        "no login got through: {statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "no login was limited: {statuses:?}"
    );
    // Other requests from the same address are not password checks.
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let again = app.post("/api/v1/auth/login", None, &credentials).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    app.stop().await;
}

/// Behind a trusted reverse proxy, each client its `X-Forwarded-For`
/// names has a budget of its own; from anyone else, the header counts for
/// nothing, so a client cannot buy itself fresh budgets with it.
async fn clients_behind_a_trusted_proxy_are_limited_each_by_their_own_address(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let app = spawn_app_on(database, |config| {
        config.rate_limit_auth = 1;
        config.trusted_proxies = "127.0.0.1".parse().expect("an address");
    })
    .await;
    // A rate of 1/s bursts to 2, per client. All at once, so that no
    // budget refills between the checks, however long the hashes take:
    // the first client's four (one of them forged an entry before the
    // proxy's, which is counted by the proxy's) get two through, the
    // second client's one gets through.
    let first = ["ann", "bob", "cyd"]
        .map(|name| register_from(&app, name, "203.0.113.5"))
        .into_iter()
        .chain([register_from(&app, "dee", "198.51.100.1, 203.0.113.5")]);
    let first = futures_util::future::join_all(first);
    let (first, second) = tokio::join!(first, register_from(&app, "eve", "203.0.113.6"));
    assert_eq!(
        first.iter().filter(|status| **status == 201).count(),
        2,
        "{first:?}"
    );
    assert_eq!(second, 201);
    let database = app.stop().await;

    // Without the setting, the header is the client's own word.
    let app = spawn_app_on(database, |config| config.rate_limit_auth = 1).await;
    let statuses = futures_util::future::join_all(
        [
            ("fay", "203.0.113.7"),
            ("gus", "203.0.113.8"),
            ("hal", "203.0.113.9"),
        ]
        .map(|(name, client)| register_from(&app, name, client)),
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        2,
        "{statuses:?}"
    );
    app.stop().await;
}

/// Guesses at one account spread over many addresses each keep within
/// their address's limit; the account's own limit stops them, names in
/// any case and names nobody has alike, and leaves other accounts be.
/// The owner still signs in from where they did before; from anywhere
/// else they wait, as long as `Retry-After` says and no longer.
async fn logins_to_one_account_are_limited_whatever_address_they_come_from(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let app = spawn_app_on(database, |config| {
        config.rate_limit_login = 6;
        config.rate_limit_auth = 1;
        config.trusted_proxies = "127.0.0.1".parse().expect("an address");
    })
    .await;
    for (name, client) in [("ann", "198.51.100.1"), ("bob", "198.51.100.2")] {
        assert_eq!(register_from(&app, name, client).await, 201, "{name}");
    }
    let home = login_from(&app, "ann", "password-of-ann", "198.51.100.9").await;
    assert_eq!(home.status, 200, "{:?}", home.body);
    // Six a minute, all at once, and that sign-in from a new client took
    // one: five wrong guesses from five addresses are each refused as
    // wrong, the sixth (in another case) is not checked at all, and
    // neither is the right password from a new address.
    let guesses = ["ann", "Ann", "aNN", "anN", "AnN", "ANN"];
    let mut statuses = Vec::new();
    for (index, name) in guesses.into_iter().enumerate() {
        let client = format!("203.0.113.{}", index + 1);
        let reply = login_from(&app, name, "not-the-password", &client).await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let elsewhere = login_from(&app, "ann", "password-of-ann", "198.51.100.10").await;
    assert_eq!(elsewhere.status, 429, "{:?}", elsewhere.body);
    assert_eq!(elsewhere.code(), "rate_limited");
    let wait = elsewhere
        .retry_after
        .as_deref()
        .and_then(|value| value.parse::<u64>().ok())
        .filter(|seconds| (1..=10).contains(seconds));
    let Some(wait) = wait else {
        panic!(
            "one login comes back every 10 s: {:?}",
            elsewhere.retry_after
        );
    };
    // Where ann signed in and where she registered, she still does.
    for client in ["198.51.100.9", "198.51.100.1"] {
        let known = login_from(&app, "ANN", "password-of-ann", client).await;
        assert_eq!(known.status, 200, "from {client}: {:?}", known.body);
    }
    // Another account is untouched, and a name nobody has is limited as
    // any other, so the limit does not tell which names exist.
    let bob = login_from(&app, "bob", "password-of-bob", "203.0.113.1").await;
    assert_eq!(bob.status, 200, "{:?}", bob.body);
    let mut statuses = Vec::new();
    for index in 0..7 {
        let client = format!("192.0.2.{}", index + 1);
        statuses.push(
            login_from(&app, "nobody", "not-the-password", &client)
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 429]);
    // Waiting as long as `Retry-After` said is enough: it is rounded up.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let later = login_from(&app, "ann", "password-of-ann", "198.51.100.10").await;
    assert_eq!(later.status, 200, "after {wait} s: {:?}", later.body);
    app.stop().await;
}

/// A login as `name` sent with `X-Forwarded-For: client`.
async fn login_from(
    app: &TestApp,
    name: &str,
    password: &str,
    client: &str,
) -> bidask_tests::Reply {
    let body = json!({"username": name, "password": password});
    post_from(app, "/api/v1/auth/login", &body, client).await
}

/// The status of a registration of `name` sent with `X-Forwarded-For: client`.
async fn register_from(app: &TestApp, name: &str, client: &str) -> u16 {
    let body = json!({"username": name, "password": format!("password-of-{name}")});
    let reply = post_from(app, "/api/v1/auth/register", &body, client).await;
    assert!(
        matches!(reply.status, 201 | 429),
        "{name}: {:?}",
        reply.body
    );
    reply.status
}

/// `POST path` with `body`, sent with `X-Forwarded-For: client`.
async fn post_from(
    app: &TestApp,
    path: &str,
    body: &serde_json::Value,
    client: &str,
) -> bidask_tests::Reply {
    app.send(
        reqwest::Method::POST,
        path,
        None,
        Some(body.to_string()),
        &[("x-forwarded-for", client)],
    )
    .await
}

/// A connection must send a whole request head within the request time
/// bound of opening, or of its last response, or it is closed: silent,
/// half a head, or idle after a request alike. Each holds a file
/// descriptor, and the process has 20,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_no_request_head_are_closed() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| config.request_timeout_secs = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut waits = Vec::new();
    for sent in [
        "",
        "GET /healthz HTTP/1.1\r\nHost: bidask\r\n",
        "GET /healthz HTTP/1.1\r\nHost: bidask\r\n\r\n",
    ] {
        let address = address.clone();
        waits.push(tokio::spawn(async move {
            // Before the server's clock starts, so that a client slow to
            // run on a busy machine cannot make the wait look short.
            let started = Instant::now();
            let mut stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("a connection");
            stream.write_all(sent.as_bytes()).await.expect("a write");
            let mut received = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
                    .await;
            assert!(read.is_ok(), "{sent:?}: still open after 10 s");
            (
                sent,
                started.elapsed(),
                String::from_utf8_lossy(&received).into_owned(),
            )
        }));
    }
    for wait in waits {
        let (sent, waited, received) = wait.await.expect("a reader");
        assert!(
            waited >= Duration::from_millis(900),
            "{sent:?}: closed after {waited:?}"
        );
        if sent.ends_with("\r\n\r\n") {
            assert!(received.starts_with("HTTP/1.1 200"), "{received}");
        }
    }
    // The server itself goes on.
    assert_eq!(app.get("/healthz", None).await.status, 200);
    app.stop().await;
}

/// A client that asks for responses and never reads them is closed once
/// a write has made no progress for the request time bound, rather than
/// holding its file descriptor for as long as TCP keeps probing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_left_unread_closes_its_connection() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const REQUESTS: usize = 64;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.request_timeout_secs = 1;
        config.send_buffer = Some(8 * 1024);
    })
    .await;
    let document = app.get("/api/openapi.json", None).await;
    assert_eq!(document.status, 200);
    let size = document.body.to_string().len();

    // Small buffers at both ends, and requests for megabytes: the
    // server's writes stall at once.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let address = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let mut stream = socket.connect(address).await.expect("a connection");
    let request = "GET /api/openapi.json HTTP/1.1\r\nHost: bidask\r\n\r\n".repeat(REQUESTS);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the requests");
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut received = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&buf[..read]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "still open after 24 s");
    // What the buffers held when the write stalled, and no more.
    assert!(
        received.len() < 8 * size,
        "{} bytes of {}: the writes went on",
        received.len(),
        REQUESTS * size
    );
    assert!(
        app.metrics()
            .await
            .contains("bidask_http_timeouts_total{waiting_for=\"client_read\"}"),
        "not counted"
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);
    app.stop().await;
}

/// One address holds at most `BIDASK_HTTP_MAX_CONNECTIONS_PER_ADDRESS`
/// connections before their upgrade; one more is answered 503
/// `at_capacity` and closed, and a place is given back when a connection
/// closes or becomes a WebSocket. A trusted proxy's connections are not
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holds_so_many_connections_at_once() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Whether the server keeps `stream` open (it sends nothing unasked).
    async fn kept(stream: &mut TcpStream) -> bool {
        let mut byte = [0; 1];
        tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte))
            .await
            .is_err()
    }
    /// `GET path` on a connection of its own, retried while refused (a
    /// place is given back once the server has seen its connection
    /// close, a moment after the client closed it).
    async fn get(authority: &str, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut stream = TcpStream::connect(authority).await.expect("a connection");
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: bidask\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(request.as_bytes()).await;
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response).await;
            let response = String::from_utf8_lossy(&response).into_owned();
            if !response.contains("at_capacity") {
                return response;
            }
            assert!(Instant::now() < deadline, "{path}: refused for 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.http_max_connections_per_address = 3
    })
    .await;
    let authority = app.address.trim_start_matches("http://").to_owned();
    // A WebSocket holds no place once upgraded.
    let (head, _feed) = bidask_tests::ws::raw_upgrade(&app, &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Its place is given back just after the 101 is written.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&authority).await.expect("a connection");
        assert!(kept(&mut stream).await, "closed within the bound");
        held.push(stream);
    }
    // A fourth is told why, and closed.
    let mut over = TcpStream::connect(&authority).await.expect("a connection");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a fourth connection was kept");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("\"code\":\"at_capacity\""),
        "{answer}"
    );

    drop(held.pop());
    assert!(
        get(&authority, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let metrics = get(&authority, "/metrics").await;
    let refused = metrics
        .lines()
        .find_map(|line| line.strip_prefix("bidask_http_connections_refused_total "))
        .and_then(|value| value.trim().parse::<f64>().ok());
    assert!(refused.is_some_and(|count| count >= 1.0), "{metrics}");
    drop(held);
    app.stop().await;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.http_max_connections_per_address = 1;
        config.trusted_proxies = "127.0.0.1".parse().expect("an address");
    })
    .await;
    let authority = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&authority).await.expect("a connection");
        assert!(kept(&mut stream).await, "a proxy's connection was refused");
        held.push(stream);
    }
    drop(held);
    app.stop().await;
}

/// A client whose request body does not all arrive within the request
/// time bound gets 408 `body_timeout`, not the 503 that blames the
/// server, and nothing is placed; declared by length or chunked alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_is_408_and_places_nothing() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |config| config.request_timeout_secs = 1).await;
    let product = app.create_product("SLOW-1", &["10"]).await;
    let ann = app.register("ann").await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let start = format!("{{\"product_id\": {product}, \"size\": \"10\",");
    let framings = [
        format!("Content-Length: 200\r\n\r\n{start}"),
        format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{start}\r\n",
            start.len()
        ),
    ];
    let timeouts = || async {
        let metrics = app.metrics().await;
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix("bidask_http_timeouts_total{waiting_for=\"client\"} ")
            })
            .map_or(0, |count| count.parse::<u64>().expect("a count"))
    };
    let before = timeouts().await;
    for framing in framings {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("a connection");
        let head = format!(
            "POST /api/v1/bids HTTP/1.1\r\nHost: bidask\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\n{framing}",
            ann.token
        );
        // Before the server's clock starts, as above.
        let started = Instant::now();
        stream.write_all(head.as_bytes()).await.expect("a write");
        let mut received = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
        assert!(read.is_ok(), "{framing:?}: still open after 10 s");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "answered after {waited:?}"
        );
        let received = String::from_utf8_lossy(&received);
        assert!(received.starts_with("HTTP/1.1 408"), "{received}");
        assert!(received.contains("connection: close"), "{received}");
        let body = received.split("\r\n\r\n").nth(1).unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    }
    let orders = app.get("/api/v1/orders", Some(&ann.token)).await;
    assert_eq!(orders.status, 200);
    assert_eq!(orders.body["items"], json!([]), "an order was placed");
    assert_eq!(timeouts().await, before + 2, "counted as the client's");
    app.stop().await;
}

/// The per-address rate covers every route, the feed's upgrade and the
/// operational endpoints included, not only the API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_rate_gets_429_on_every_route() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| config.rate_limit_address = 1).await;
    // A rate of 1/s bursts to 2: ten requests in a row meet the limit
    // however slowly they go out, on each route alike.
    for path in ["/healthz", "/readyz", "/ws", "/api/openapi.json", "/"] {
        let mut limited = None;
        for _ in 0..10 {
            let reply = app.get(path, None).await;
            if reply.status == 429 {
                limited = Some(reply);
                break;
            }
        }
        let reply = limited.unwrap_or_else(|| panic!("{path}: no 429 in ten requests at 1/s"));
        assert_eq!(reply.code(), "rate_limited", "{path}");
        assert!(
            reply.retry_after.is_some(),
            "{path}: 429 without Retry-After"
        );
    }
    app.stop().await;
}
