//! Crash safety: `kill -9` mid-stream, and the database going away
//! mid-stream. After either, what got a 201 is there with its matches,
//! nothing is half-written, the books are exactly what was committed, and
//! `seq` continues without reuse.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bidask_tests::audit::audit;
use bidask_tests::cluster::Cluster;
use bidask_tests::process::ServerProcess;
use bidask_tests::ws::WsClient;
use bidask_tests::{Backend, TestApp, TestDatabase, Trader, on_both_backends, spawn_app_on};
use serde_json::{Value, json};

/// The `bidask` command line, built as this package's binary.
const SERVER: &str = env!("CARGO_BIN_EXE_bidask-under-test");
const SIZES: [&str; 3] = ["9", "10", "11"];
const TRADERS: usize = 6;

/// One trader's stream: alternating passive and crossing orders around
/// 100.00, at most `orders` of them, until `stop` is set; counts each 201
/// in `counted` and each 503 in `unavailable`. Any answer but a 201, a 429
/// or a 503 fails the test.
async fn trade(
    app: Arc<TestApp>,
    trader: Trader,
    product_id: i64,
    orders: usize,
    stop: Arc<AtomicBool>,
    counted: Arc<AtomicUsize>,
    unavailable: Arc<AtomicUsize>,
) -> Vec<Value> {
    let mut acknowledged = Vec::new();
    for step in 0..orders {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let side = if (step + trader.username.len()).is_multiple_of(2) {
            "bid"
        } else {
            "ask"
        };
        let offset = i64::try_from(step % 7).unwrap_or(0);
        // Every third order crosses the middle, the rest rest near it.
        let cents = match (side, step.is_multiple_of(3)) {
            ("bid", false) => 9_990 - offset * 5,
            ("bid", true) => 10_020 + offset,
            (_, false) => 10_010 + offset * 5,
            (_, true) => 9_980 - offset,
        };
        let body = json!({
            "product_id": product_id,
            "size": SIZES[step % SIZES.len()],
            "price": format!("{}.{:02}", cents / 100, cents % 100),
            "quantity": 1 + step % 3,
        });
        let request = app
            .client
            .post(format!("{}/api/v1/{side}s", app.address))
            .bearer_auth(&trader.token)
            .json(&body);
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|body| (status, body))
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok((201, body)) => {
                let body: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|error| panic!("a 201 that is not JSON ({error}): {body:?}"));
                acknowledged.push(body);
                counted.fetch_add(1, Ordering::Relaxed);
            }
            Ok((429, _)) => {}
            Ok((503, _)) => {
                unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, answer)) => panic!(
                "{side} {body}: {status} {}",
                String::from_utf8_lossy(&answer)
            ),
            // The server is gone (killed) or cut the answer short: keep
            // trying until told to stop, so the stream spans the failure.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    acknowledged
}

/// One trading task per trader.
struct Streams {
    stop: Arc<AtomicBool>,
    /// 201s so far.
    acknowledged: Arc<AtomicUsize>,
    /// 503s so far: none unless the database is made to fail.
    unavailable: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Value>>>,
}

impl Streams {
    /// Starts `orders` orders per trader.
    fn start(app: &Arc<TestApp>, traders: &[Trader], product_id: i64, orders: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let unavailable = Arc::new(AtomicUsize::new(0));
        let tasks = traders
            .iter()
            .map(|trader| {
                let task = trade(
                    Arc::clone(app),
                    trader.clone(),
                    product_id,
                    orders,
                    Arc::clone(&stop),
                    Arc::clone(&acknowledged),
                    Arc::clone(&unavailable),
                );
                tokio::spawn(task)
            })
            .collect();
        Self {
            stop,
            acknowledged,
            unavailable,
            tasks,
        }
    }

    /// How many requests were answered 503.
    fn unavailable(&self) -> usize {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Waits until `count` orders were acknowledged, so that what follows
    /// happens mid-stream however fast this machine is.
    async fn until_acknowledged(&self, count: usize) {
        let began = Instant::now();
        while self.acknowledged.load(Ordering::Relaxed) < count {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "only {} orders acknowledged in a minute",
                self.acknowledged.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the streams; returns every acknowledged (201) reply.
    async fn stop(self) -> Vec<Value> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acknowledged = Vec::new();
        for task in self.tasks {
            acknowledged.extend(task.await.expect("a trading task"));
        }
        acknowledged
    }
}

/// One order placed again and again until it is accepted, within a bound:
/// how these tests wait for a server to recover by itself.
struct Retry<'a> {
    trader: &'a Trader,
    side: &'static str,
    product_id: i64,
    size: &'static str,
    price: &'static str,
    within: Duration,
    pause: Duration,
}

impl<'a> Retry<'a> {
    /// Size 9, every 200 ms for up to a minute.
    fn within_a_minute(
        trader: &'a Trader,
        side: &'static str,
        product_id: i64,
        price: &'static str,
    ) -> Self {
        Self {
            trader,
            side,
            product_id,
            size: "9",
            price,
            within: Duration::from_secs(60),
            pause: Duration::from_millis(200),
        }
    }

    /// The accepted reply; fails the test when the bound passes first.
    async fn until_accepted(&self, app: &TestApp) -> bidask_tests::Reply {
        let deadline = Instant::now() + self.within;
        loop {
            let reply = app
                .order(
                    self.trader,
                    self.side,
                    self.product_id,
                    self.size,
                    self.price,
                )
                .await;
            if reply.status == 201 {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "no recovery within {:?}: {} {:?}",
                self.within,
                reply.status,
                reply.body
            );
            tokio::time::sleep(self.pause).await;
        }
    }
}

/// The answer of a request the server could not commit or read: 503
/// `storage_unavailable`, the body shown if not.
#[track_caller]
fn assert_storage_unavailable(reply: &bidask_tests::Reply) {
    assert_eq!(
        (reply.status, reply.code()),
        (503, "storage_unavailable"),
        "{:?}",
        reply.body
    );
}

/// A registration's body for a user named `name`.
fn newcomer(name: &str) -> Value {
    json!({"username": name, "password": format!("password-of-{name}")})
}

async fn setup(app: &mut TestApp) -> (i64, Vec<Trader>) {
    let product_id = app.create_product("CRASH-1", &SIZES).await;
    let mut traders = Vec::new();
    for index in 0..TRADERS {
        traders.push(app.register(&format!("trader{index}")).await);
    }
    (product_id, traders)
}

/// Checks that every acknowledged order survived with the matches its
/// reply listed, then audits the books; returns the highest `seq` any
/// acknowledged reply carried.
async fn check_acknowledged(
    app: &TestApp,
    traders: &[Trader],
    product_id: i64,
    acknowledged: &[Value],
) -> i64 {
    let findings = audit(app, traders, product_id, &SIZES).await;
    assert!(
        !findings.matches.is_empty(),
        "the stream made no matches to check"
    );
    let mut highest_seq = 0;
    for reply in acknowledged {
        let id = reply["order"]["id"].as_i64().expect("an order id");
        assert!(
            findings.orders.contains_key(&id),
            "acknowledged order {id} is missing"
        );
        for trade in reply["matches"].as_array().expect("matches") {
            let match_id = trade["id"].as_i64().expect("a match id");
            assert_eq!(
                findings
                    .matches
                    .get(&match_id)
                    .map(|found| &found["quantity"]),
                Some(&trade["quantity"]),
                "acknowledged match {match_id} is missing or different"
            );
        }
        highest_seq = highest_seq.max(reply["seq"].as_i64().expect("a seq"));
    }
    assert!(
        findings.seq >= highest_seq,
        "the rebuilt book is at seq {} but seq {highest_seq} was acknowledged",
        findings.seq
    );
    findings.seq
}

async fn kill_9_mid_stream(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let server = ServerProcess::start(SERVER, &database.url);
    let mut app = TestApp::connect(server.address.clone());
    let (product_id, traders) = setup(&mut app).await;
    let app = Arc::new(app);
    // A product page watching the live feed across the crash.
    let channel = format!("product:{product_id}");
    let mut page = WsClient::connect(&app).await;
    page.expect("welcome").await;
    let subscribed = page.subscribe(&channel).await["seq"]
        .as_i64()
        .expect("a seq");
    let watched = {
        let channel = channel.clone();
        tokio::spawn(async move {
            page.events_until_closed(&channel, Duration::from_secs(120))
                .await
        })
    };
    let streams = Streams::start(&app, &traders, product_id, 400);
    // Let a few hundred orders through, then pull the plug.
    streams.until_acknowledged(300).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(streams.unavailable(), 0, "503s with the database up");
    let acknowledged = streams.stop().await;
    let published = watched.await.expect("the watching page");
    assert!(!published.is_empty(), "nothing was published live");
    assert!(
        !acknowledged.is_empty(),
        "no order got through before the kill"
    );
    assert!(
        acknowledged.len() < TRADERS * 400,
        "every order finished before the kill: the crash was not mid-stream"
    );
    eprintln!(
        "{} orders acknowledged and {} events sent live before kill -9",
        acknowledged.len(),
        published.len()
    );

    let server = ServerProcess::start(SERVER, &database.url);
    let app = TestApp::connect(server.address.clone());
    let seq = check_acknowledged(&app, &traders, product_id, &acknowledged).await;

    let committed = numbering_goes_on(&app, &traders[0], product_id, seq).await;
    // Published only once committed: the page was sent the committed
    // events from its subscription on, in order, each once, to the byte
    // of its time stamp.
    let sent: Vec<i64> = published
        .iter()
        .map(|event| event["seq"].as_i64().expect("a seq"))
        .collect();
    let expected: Vec<i64> = (subscribed + 1..).take(sent.len()).collect();
    assert_eq!(sent, expected, "sent out of order, twice, or with a gap");
    for event in &published {
        let seq = event["seq"].as_i64().expect("a seq");
        let stored = usize::try_from(seq - 1)
            .ok()
            .and_then(|index| committed.get(index));
        assert_eq!(stored, Some(event), "sent live, not what was committed");
    }
    drop(server);
}

/// After a crash or a restore, at product channel `seq`: the next order
/// gets the next `seq`, neither reused nor skipped, and the channel,
/// replayed from its start, has no gap anywhere. Returns the replayed
/// events, the one of `seq` n at index n - 1.
async fn numbering_goes_on(
    app: &TestApp,
    trader: &Trader,
    product_id: i64,
    seq: i64,
) -> Vec<Value> {
    let next = app.order(trader, "bid", product_id, "10", "1.00").await;
    assert_eq!(next.status, 201, "{:?}", next.body);
    assert_eq!(
        next.body["seq"].as_i64(),
        Some(seq + 1),
        "seq was reused or skipped"
    );
    let channel = format!("product:{product_id}");
    let (mut replay, _) = WsClient::resuming(app, &channel, 0).await;
    replay.events_until(&channel, 0, seq + 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_sqlite() {
    kill_9_mid_stream(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_postgres() {
    kill_9_mid_stream(Backend::Postgres).await;
}

/// `SIGTERM` mid-stream: in-flight requests finish, what was accepted is
/// committed, the process exits 0, and a restart has every acknowledged
/// order. Products are being created all the while, so some markets open
/// as the drain begins: none may keep the process from exiting, and every
/// acknowledged one trades after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let server = ServerProcess::start(SERVER, &database.url);
    let mut app = TestApp::connect(server.address.clone());
    let (product_id, traders) = setup(&mut app).await;
    let admin = app.admin_token().await;
    let app = Arc::new(app);
    let streams = Streams::start(&app, &traders, product_id, 400);
    let creating = Arc::new(AtomicBool::new(true));
    let creations = tokio::spawn(create_products(
        Arc::clone(&app),
        admin,
        Arc::clone(&creating),
    ));
    streams.until_acknowledged(100).await;
    let code = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("the signal task");
    assert_eq!(code, Some(0), "the server did not exit 0 after SIGTERM");
    let acknowledged = streams.stop().await;
    creating.store(false, Ordering::Relaxed);
    let created = creations.await.expect("the creating task");
    assert!(
        !created.is_empty(),
        "no product was created before the stop"
    );
    let server = ServerProcess::start(SERVER, &database.url);
    let app = TestApp::connect(server.address.clone());
    check_acknowledged(&app, &traders, product_id, &acknowledged).await;
    // Spread over the traders, so no one trader's rate limit is reached.
    for (id, trader) in created.iter().zip(traders.iter().cycle()) {
        let bid = app.order(trader, "bid", *id, "10", "100.00").await;
        assert_eq!(bid.status, 201, "product {id}: {:?}", bid.body);
    }
}

/// A request whose body is still coming when `SIGTERM` arrives holds the
/// drain: the process waits for it, answers it 201, commits it, and only
/// then exits 0; a restart has the order. (The streaming test above
/// accepts a request cut short, as it cannot tell one from a connection
/// refused after the listener closed.)
async fn a_request_in_flight_at_sigterm_is_answered_and_committed(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = TestDatabase::new(backend).await;
    let mut server = ServerProcess::start(SERVER, &database.url);
    let mut app = TestApp::connect(server.address.clone());
    let (product_id, traders) = setup(&mut app).await;
    let body = json!({"product_id": product_id, "size": "10", "price": "42.00"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let authority = server.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("the server accepts");
    // hyper answers `100 Continue` when the handler first reads the body:
    // then the request is in flight, whatever the machine's speed.
    let head = format!(
        "POST /api/v1/bids HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        traders[0].token,
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("the head is sent");
    let mut interim = [0; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut interim))
        .await
        .expect("100 Continue in time")
        .expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream
        .write_all(first.as_bytes())
        .await
        .expect("half the body is sent");
    server.signal("TERM");
    assert_eq!(
        server.exited_within(Duration::from_millis(500)),
        None,
        "exited with a request in flight"
    );
    stream
        .write_all(rest.as_bytes())
        .await
        .expect("the rest is sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "{read:?}: {answer}");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let exit = tokio::task::spawn_blocking(move || server.exited_within(Duration::from_secs(60)))
        .await
        .expect("the waiting task");
    assert_eq!(exit, Some(Some(0)), "the exit after the drain");

    let server = ServerProcess::start(SERVER, &database.url);
    let app = TestApp::connect(server.address.clone());
    let orders = app.get("/api/v1/orders", Some(&traders[0].token)).await;
    let prices: Vec<&Value> = orders.body["items"]
        .as_array()
        .expect("the orders")
        .iter()
        .map(|order| &order["price"])
        .collect();
    assert_eq!(prices, [&json!("42.00")], "{:?}", orders.body);
}

on_both_backends!(a_request_in_flight_at_sigterm_is_answered_and_committed);

/// Creates products until told to stop (1,000 at most), paced under the
/// admin's own rate limit so creations are still arriving when the drain
/// begins, riding out refusals and a server that is gone; returns the ids
/// acknowledged with 201.
async fn create_products(app: Arc<TestApp>, admin: String, going: Arc<AtomicBool>) -> Vec<i64> {
    let mut created = Vec::new();
    for index in 0..1_000 {
        if !going.load(Ordering::Relaxed) {
            break;
        }
        let sku = format!("DRAIN-{index}");
        let request = app
            .client
            .post(format!("{}/api/v1/products", app.address))
            .bearer_auth(&admin)
            .json(&json!({"sku": sku, "name": format!("Sneaker {sku}"), "brand": "Nike", "sizes": SIZES}));
        match request.send().await {
            Ok(response) if response.status().as_u16() == 201 => {
                if let Ok(body) = response.json::<Value>().await {
                    created.extend(body["id"].as_i64());
                }
            }
            // Gone or going: wait to be told to stop.
            _ => {}
        }
        // At most 100 a second: the default limit per user.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    created
}

/// A stop during start-up (migrations, the catalog, every book) is a
/// clean exit too, not death by the signal's default action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_start_up_exits_cleanly() {
    use std::io::{BufRead, BufReader};

    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut child = std::process::Command::new(SERVER)
        .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
        .env("DATABASE_URL", &database.url)
        .env("BIDASK_JWT_SECRET", bidask_tests::JWT_SECRET)
        .env("BIDASK_ADMIN_USERNAME", bidask_tests::ADMIN.0)
        .env("BIDASK_ADMIN_PASSWORD", bidask_tests::ADMIN.1)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().expect("its stdout");
    let outcome = tokio::task::spawn_blocking(move || {
        let (starting, started) = std::sync::mpsc::channel();
        // Drains the log for as long as the process lives, so a full pipe
        // can never hold it up; hands back whether the stop was taken
        // during start-up.
        let log = std::thread::spawn(move || {
            let mut during_start_up = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("starting:") {
                    let _ = starting.send(());
                }
                during_start_up |= line.contains("stopping once start-up is done");
            }
            during_start_up
        });
        if started.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("the server never said it was starting");
        }
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was not delivered");
        for _ in 0..600 {
            if let Some(status) = child.try_wait().expect("the server can be waited for") {
                let during_start_up = log.join().expect("the log reader");
                return (status.code(), during_start_up);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("the server did not exit within 60 s of SIGTERM");
    })
    .await
    .expect("the signal task");
    assert_eq!(
        outcome,
        (Some(0), true),
        "(exit code, the stop was taken during start-up)"
    );
}

/// `bidask migrate` creates the schema and exits 0, twice (it is
/// idempotent); `serve` then starts on it. On both databases.
async fn migrate_then_serve(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    for _ in 0..2 {
        let status = std::process::Command::new(SERVER)
            .args(["migrate", "--database-url", &database.url])
            .status()
            .expect("the binary runs");
        assert!(status.success(), "bidask migrate failed: {status}");
    }
    let server = ServerProcess::start(SERVER, &database.url);
    let app = TestApp::connect(server.address.clone());
    assert_eq!(app.get("/readyz", None).await.status, 200);
}

on_both_backends!(migrate_then_serve);

/// `bidask migrate` does not change the schema under a server that writes
/// to the database (an older one, which a new column or check could
/// break): while another holds the writer's lock it refuses, naming why,
/// and applies nothing. With nothing left to apply it runs beside that
/// server, and exits 0.
async fn migrate_refuses_to_change_the_schema_under_a_running_writer(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let store =
        bidask_store::Store::connect_lazy(&database.url, &Default::default()).expect("a store");
    store.reach().await.expect("the database");
    let migrate = || {
        std::process::Command::new(SERVER)
            .args(["migrate", "--database-url", &database.url])
            .output()
            .expect("the binary runs")
    };
    let mut writer = store.committer();
    writer.fence().await.expect("the writer's lock");
    let refused = migrate();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("another bidask server is writing"),
        "{}: {said}",
        refused.status
    );
    assert!(
        store.has_pending_migrations().await.expect("a read"),
        "nothing was applied"
    );
    writer.close().await;

    let applied = migrate();
    assert!(applied.status.success(), "{}", applied.status);
    let mut writer = store.committer();
    writer.fence().await.expect("the writer's lock");
    let beside = migrate();
    assert!(
        beside.status.success(),
        "nothing to apply, beside a writer: {}: {}",
        beside.status,
        String::from_utf8_lossy(&beside.stderr)
    );
    writer.close().await;
    store.close().await;
}

on_both_backends!(migrate_refuses_to_change_the_schema_under_a_running_writer);

/// An older PostgreSQL server that lost its writer's lock for a moment (a
/// database restart) while `bidask migrate` changed the schema must not
/// take the lock back and write on the new schema: `migrate` claims the
/// database as `serve` does, and the old writer's next commit is refused.
#[tokio::test]
async fn migrate_stops_a_writer_that_had_lost_its_lock() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let store =
        bidask_store::Store::connect_lazy(&database.url, &Default::default()).expect("a store");
    store.migrate().await.expect("the migrations");
    let mut old = store.committer();
    old.fence().await.expect("the writer's lock");
    old.claim().await.expect("a claim");
    old.close().await;
    // Something to apply: the newest migration, as if not yet run.
    let mut connection = database.connect().await;
    for statement in [
        "DROP INDEX orders_resting_by_user",
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    ] {
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .expect(statement);
    }
    assert!(store.has_pending_migrations().await.expect("a read"));

    let applied = std::process::Command::new(SERVER)
        .args(["migrate", "--database-url", &database.url])
        .output()
        .expect("the binary runs");
    assert!(applied.status.success(), "{}", applied.status);
    let product = bidask_store::ProductRecord {
        id: 1,
        sku: "LATE-1".to_owned(),
        name: "Late".to_owned(),
        brand: "Old server".to_owned(),
        tick_units: 1,
        scale: 2,
        sizes: vec!["10".to_owned()],
        created_at: 1,
    };
    let refused = old
        .commit(&bidask_store::Batch {
            products: vec![product],
            ..bidask_store::Batch::default()
        })
        .await;
    assert!(
        matches!(refused, Err(bidask_store::StoreError::WriterReplaced)),
        "{refused:?}"
    );
    store.close().await;
}

/// At a terminal, where the log and the error both land, a start-up error
/// is said once, as a sentence ("bidask: ..."), not also as a log line
/// above it. Piped (a service manager, a script), it is in both: the log
/// for a collector, stderr for whoever reads it. The terminal is
/// `script`'s (util-linux, essential on Debian).
#[tokio::test]
async fn a_start_up_error_is_said_once_at_a_terminal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("its address").to_string();
    let directory = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}/bidask.db", directory.path().display());
    let args = ["serve", "--listen", &address, "--database-url", &url];
    // A command line for `sh -c`, each word quoted.
    let quoted = |word: &str| format!("'{}'", word.replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(SERVER).chain(args).map(quoted).collect();
    let terminal = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(line.join(" "))
        .arg("/dev/null")
        .env("SHELL", "/bin/sh")
        .output()
        .expect("script runs");
    let said = String::from_utf8_lossy(&terminal.stdout);
    assert_eq!(terminal.status.code(), Some(1), "{said}");
    assert_eq!(said.matches("cannot listen on").count(), 1, "{said}");
    assert!(said.contains("bidask: cannot listen on"), "{said}");

    let piped = std::process::Command::new(SERVER)
        .args(args)
        .output()
        .expect("the binary runs");
    assert_eq!(piped.status.code(), Some(1));
    let logged = String::from_utf8_lossy(&piped.stdout);
    let said = String::from_utf8_lossy(&piped.stderr);
    assert!(
        logged.contains("bidask stopped") && logged.contains("cannot listen on"),
        "{logged}"
    );
    assert!(said.contains("bidask: cannot listen on"), "{said}");
    drop(taken);
}

/// A fresh server's `/metrics` already carries every counter and gauge
/// without labels, at 0, with what it counts (a series used to appear
/// only with its first event, so an alert on a rate of failures or on the
/// number of feed connections saw nothing until then); and then counts
/// what the server does. A process of its own, since the metrics
/// recorder is the process's: in-process tests share one, and only a rise
/// could be checked there, which another test could have made.
#[tokio::test]
async fn a_servers_metrics_start_at_zero_and_count_what_it_does() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let server = ServerProcess::start(SERVER, &database.url);
    let mut app = TestApp::connect(server.address.clone());
    let metrics = app.metrics().await;
    for name in [
        "bidask_orders_accepted_total",
        "bidask_orders_expired_total",
        "bidask_matches_total",
        "bidask_events_published_total",
        "bidask_commit_failures_total",
        "bidask_units_refused_stale_total",
        "bidask_requests_rate_limited_total",
        "bidask_http_connections_refused_total",
        "bidask_ws_connections",
        "bidask_ws_subscriptions",
        "bidask_ws_fanout_backlog",
        "bidask_ws_messages_sent_total",
        "bidask_ws_events_fanned_out_total",
        "bidask_ws_slow_disconnects_total",
        "bidask_ws_ping_timeouts_total",
        "bidask_feed_events_pruned_total",
    ] {
        assert_eq!(value(&metrics, name), Some(0.0), "{name}:\n{metrics}");
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with(&format!("# HELP {name} "))),
            "{name} described:\n{metrics}"
        );
    }

    let product = app.create_product("METRICS-1", &["10"]).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let mut page = WsClient::connect(&app).await;
    page.expect("welcome").await;
    page.subscribe(&format!("product:{product}")).await;
    let metrics = app.metrics().await;
    for (name, expected) in [
        ("bidask_ws_connections", 1.0),
        ("bidask_ws_subscriptions", 1.0),
    ] {
        assert_eq!(value(&metrics, name), Some(expected), "{name}:\n{metrics}");
    }
    app.sell(&ann, &bob, product, "150.00").await;
    page.expect("ASK_UPDATED").await;
    page.close().await;
    // A connection counts what it sent at its end, which comes after the
    // close: read until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = app.metrics().await;
        if value(&metrics, "bidask_ws_connections") == Some(0.0) {
            break metrics;
        }
        assert!(Instant::now() < deadline, "the page never left:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (name, expected) in [
        ("bidask_orders_accepted_total", 2.0),
        ("bidask_matches_total", 1.0),
        ("bidask_commit_failures_total", 0.0),
    ] {
        assert_eq!(value(&metrics, name), Some(expected), "{name}:\n{metrics}");
    }
    for name in [
        "bidask_events_published_total",
        "bidask_ws_messages_sent_total",
        "bidask_ws_events_fanned_out_total",
    ] {
        assert!(
            value(&metrics, name).is_some_and(|count| count > 0.0),
            "{name}:\n{metrics}"
        );
    }
}

/// The value of the series `name` without labels in a Prometheus text.
fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A SQLite file this process may only read (another user's, say after a
/// restore done as root) stops the server at start, saying so. SQLite
/// opened it read-only without a word: the server started, `/readyz` said
/// ready, and every command was refused with 503. Root may write any
/// file, so as root the server runs as `nobody` (`setpriv`, util-linux),
/// from a copy of the binary that `nobody` may run, on root's file made
/// 0644; otherwise the file is made 0444.
#[tokio::test]
async fn a_database_this_process_may_only_read_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let file = bidask_store::sqlite_file(&database.url).expect("a file");
    let directory = file.parent().expect("its directory").to_owned();
    let migrated = std::process::Command::new(SERVER)
        .args(["migrate", "--database-url", &database.url])
        .status()
        .expect("the binary runs");
    assert!(migrated.success(), "bidask migrate failed: {migrated}");
    // A directory the server may write to: only the file is not its own.
    let anyone = std::fs::Permissions::from_mode(0o777);
    std::fs::set_permissions(&directory, anyone).expect("the directory opened up");
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id runs");
    let mut command = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        // Root's file, which others may read (the server makes it its
        // owner's alone).
        let readable = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&file, readable).expect("the file made readable");
        let copy = directory.join("bidask-under-test");
        std::fs::copy(SERVER, &copy).expect("a copy of the server");
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(copy);
        command
    } else {
        let read_only = std::fs::Permissions::from_mode(0o444);
        std::fs::set_permissions(&file, read_only).expect("the file made read-only");
        std::process::Command::new(SERVER)
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &database.url)
        .env("BIDASK_JWT_SECRET", bidask_tests::JWT_SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the server's status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server kept running on a database it may only read");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut said = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut said).expect("its stderr");
    }
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "the SQLite file {} can only be read by this process",
            file.display()
        )),
        "{said}"
    );
}

/// SQLite's side of a failed commit: another process holds the write lock
/// (the outage tests above stop PostgreSQL). The order whose commit it
/// refused gets a 503 and leaves nothing in the book; an order that came
/// due meanwhile expires once the lock is gone and never trades; `seq`
/// goes on from the last commit, without a gap or a reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_by_a_held_sqlite_lock_leaves_nothing_ahead() {
    use bidask_server::clock::{format_micros, now_micros};
    use sqlx::Connection;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut app = spawn_app_on(database, |_| {}).await;
    let product = app.create_product("LOCK-1", &["10"]).await;
    let (ann, bob, carl) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("carl").await,
    );
    let resting = app.order(&ann, "ask", product, "10", "220.00").await;
    assert_eq!(resting.status, 201, "{:?}", resting.body);
    let soon = format_micros(now_micros() + 1_500_000);
    let expiring = app
        .place(
            &carl,
            "ask",
            &json!({"product_id": product, "size": "10", "price": "210.00", "expires_at": soon}),
        )
        .await;
    assert_eq!(expiring.status, 201, "{:?}", expiring.body);
    let seq = expiring.body["seq"].as_i64().expect("a seq");
    let expiring_id = expiring.body["order"]["id"].as_i64().expect("an id");

    let mut lock = app
        .database
        .as_ref()
        .expect("the test's database")
        .connect()
        .await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .expect("the write lock");
    let refused = app
        .place(
            &bob,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "225.00", "time_in_force": "ioc"}),
        )
        .await;
    assert_storage_unavailable(&refused);
    // Past the expiry, still locked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqlx::query("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("the lock let go");
    lock.close().await.expect("closed");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let book = app.book(product, "10").await;
        if book["asks"].as_array().is_some_and(|asks| asks.len() == 1) {
            assert_eq!(book["asks"][0]["price"], "220.00", "{book}");
            break;
        }
        assert!(Instant::now() < deadline, "the expiry never came: {book}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = app
        .get(&format!("/api/v1/orders/{expiring_id}"), Some(&carl.token))
        .await;
    assert_eq!(order.body["status"], "expired", "{:?}", order.body);
    let bought = app
        .place(
            &bob,
            "bid",
            &json!({"product_id": product, "size": "10", "price": "225.00"}),
        )
        .await;
    assert_eq!(bought.status, 201, "{:?}", bought.body);
    assert_eq!(bought.body["matches"][0]["price"], "220.00");
    // The expiry's ASK_UPDATED, then the match and the emptied level.
    assert_eq!(
        bought.body["seq"].as_i64(),
        Some(seq + 3),
        "{:?}",
        bought.body
    );
    app.stop().await;
}

/// An expiry of more orders than one unit of the writer's is committed unit
/// by unit (`market/actor/expiry.rs`). When a unit after the first fails,
/// the units before it stay committed, the product is rebuilt from the
/// database with the rest still open, and the rest expire then: every
/// order ends expired, once, and each level's emptying is one event, in
/// `seq` order without a gap.
///
/// The second unit fails for certain: a trigger the test adds counts the
/// expired orders and refuses the 2,001st, until the test drops it once
/// the rebuilt product has tried again. (A refusal takes the writer's
/// path of an outage here: the unit fails and its product is marked
/// stale.) A process of its own, so that its count of failed commits is
/// this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_whose_later_unit_fails_is_finished_after_the_rebuild() {
    use bidask_server::clock::{SECOND, format_micros, now_micros};

    /// Three units: 2,000, 2,000 and 500 (`UNIT_ORDERS` is 2,000).
    const ORDERS: i64 = 4_500;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let server = ServerProcess::start_with(
        SERVER,
        &database.url,
        &[
            ("BIDASK_MAX_OPEN_ORDERS", "0"),
            ("BIDASK_RATE_LIMIT_USER", "0"),
            ("BIDASK_RATE_LIMIT_ADDRESS", "0"),
        ],
    );
    let mut app = TestApp::connect(server.address.clone());
    let product = app.create_product("EXPIRE-MANY", &["10"]).await;
    let ann = app.register("ann").await;
    // Far enough ahead for every order to be placed first, even on a slow
    // machine.
    let due = now_micros() + 40 * SECOND;
    let expires_at = format_micros(due);
    let last_seq = app
        .asks_on_levels_of_their_own(&ann, product, ORDERS as usize, &expires_at)
        .await;
    assert!(
        now_micros() < due,
        "placing took past the expiry: make it later"
    );

    let mut connection = database.connect().await;
    sqlx::raw_sql(
        "CREATE TABLE test_expired (count INTEGER NOT NULL); \
         INSERT INTO test_expired VALUES (0); \
         CREATE TRIGGER test_count AFTER UPDATE ON orders \
         WHEN NEW.status = 'expired' AND OLD.status <> 'expired' \
         BEGIN UPDATE test_expired SET count = count + 1; END; \
         CREATE TRIGGER test_refuse BEFORE UPDATE ON orders \
         WHEN NEW.status = 'expired' AND (SELECT count FROM test_expired) >= 2000 \
         BEGIN SELECT RAISE(ABORT, 'the test refuses this unit'); END;",
    )
    .execute(&mut connection)
    .await
    .expect("the triggers");
    // A refused batch is retried product by product, once, uncounted; the
    // second count is the rebuilt product's own expiry, refused in turn.
    let failures = |metrics: &str| value(metrics, "bidask_commit_failures_total");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let metrics = app.metrics().await;
        if failures(&metrics).is_some_and(|count| count >= 2.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no unit failed and was expired again:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed_by = format_micros(now_micros());
    let expired = "SELECT count(*) FROM orders WHERE status = 'expired'";
    let (landed,): (i64,) = sqlx::query_as(expired)
        .fetch_one(&mut connection)
        .await
        .expect("the count");
    assert_eq!(landed, 2_000, "the first unit kept its commit");
    sqlx::raw_sql("DROP TRIGGER test_refuse; DROP TRIGGER test_count; DROP TABLE test_expired;")
        .execute(&mut connection)
        .await
        .expect("the triggers dropped");

    let deadline = Instant::now() + Duration::from_secs(90);
    let book = loop {
        let book = app.book(product, "10").await;
        if book["asks"].as_array().is_some_and(Vec::is_empty) {
            break book;
        }
        assert!(Instant::now() < deadline, "the rest never expired: {book}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (count,): (i64,) = sqlx::query_as(expired)
        .fetch_one(&mut connection)
        .await
        .expect("the count");
    assert_eq!(count, ORDERS, "every order ends expired");
    // One level event per order, and no number taken by the failed unit.
    assert_eq!(book["seq"].as_i64(), Some(last_seq + ORDERS), "{book}");
    let channel = format!("product:{product}");
    let (mut feed, _) = WsClient::resuming(&app, &channel, last_seq).await;
    let events = feed
        .events_until(&channel, last_seq, last_seq + ORDERS)
        .await;
    let mut levels = std::collections::BTreeSet::new();
    for event in &events {
        assert_eq!(event["type"], "ASK_UPDATED", "{event}");
        assert_eq!(event["quantity"], 0, "{event}");
        levels.insert(event["price"].to_string());
    }
    assert_eq!(levels.len(), events.len(), "a level emptied twice");
    // The first unit's events are those of its commit, before the failure;
    // the rest came from commits after it, by the rebuilt product.
    let stamp = |event: &Value| event["ts"].as_str().expect("a ts").to_owned();
    let (first, rest) = events.split_at(2_000);
    let first_unit = first.iter().map(stamp).max().expect("a first unit");
    assert!(first_unit < failed_by, "{first_unit} after {failed_by}");
    assert!(
        rest.iter().all(|event| stamp(event) > first_unit),
        "the rest committed with the first unit"
    );
}

/// A server on `url` that was given no token secret, so that it keeps one
/// beside its SQLite file.
fn serve_with_kept_secret(url: &str) -> ServerProcess {
    let mut command = std::process::Command::new(SERVER);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env_remove("BIDASK_JWT_SECRET")
        .env("BIDASK_ADMIN_USERNAME", bidask_tests::ADMIN.0)
        .env("BIDASK_ADMIN_PASSWORD", bidask_tests::ADMIN.1);
    ServerProcess::spawn(command)
}

/// `bidask backup` copies the SQLite database while orders stream in. A
/// server started on the copy finds a market as whole as after a crash
/// (every order's fills equal its matches, every book its resting orders,
/// none crossed), with what was answered before the copy began and
/// without what was answered after it ended; it numbers `seq` on from the
/// copy's, and accepts the tokens of the original, whose secret came
/// along. Both files are their owner's alone. A second backup to the same
/// place is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_mid_stream_restores_a_whole_market() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let directory = tempfile::tempdir().expect("a directory");
    let copy = directory.path().join("copy.db");
    let server = serve_with_kept_secret(&database.url);
    let mut app = TestApp::connect(server.address.clone());
    let (product_id, traders) = setup(&mut app).await;
    let app = Arc::new(app);
    // More orders than get through: the streams go on until stopped.
    let streams = Streams::start(&app, &traders, product_id, 100_000);
    streams.until_acknowledged(150).await;

    let before = app.order(&traders[0], "bid", product_id, "9", "1.01").await;
    assert_eq!(before.status, 201, "{:?}", before.body);
    let back_up = {
        let (url, copy) = (database.url.clone(), copy.clone());
        move || {
            std::process::Command::new(SERVER)
                .arg("backup")
                .args(["--database-url", &url])
                .arg(&copy)
                .output()
                .expect("the binary runs")
        }
    };
    let made = tokio::task::spawn_blocking(back_up.clone())
        .await
        .expect("a backup");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let after = app.order(&traders[0], "bid", product_id, "9", "1.02").await;
    assert_eq!(after.status, 201, "{:?}", after.body);
    // It holds password hashes: its owner's alone, as its secret is.
    for file in [copy.clone(), bidask_store::beside(&copy, "jwt-secret")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    assert_eq!(streams.unavailable(), 0, "503s during the backup");
    let acknowledged = streams.stop().await;
    let again = tokio::task::spawn_blocking(back_up)
        .await
        .expect("a backup");
    assert!(
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );
    assert_eq!(server.terminate(), Some(0));

    let copy_url = format!("sqlite://{}", copy.display());
    let server = serve_with_kept_secret(&copy_url);
    let app = TestApp::connect(server.address.clone());
    let findings = audit(&app, &traders, product_id, &SIZES).await;
    let id = |reply: &bidask_tests::Reply| reply.body["order"]["id"].as_i64().expect("an id");
    assert!(
        findings.orders.contains_key(&id(&before)),
        "answered before"
    );
    assert!(!findings.orders.contains_key(&id(&after)), "answered after");
    assert!(
        findings.orders.len() >= 150 && findings.orders.len() < acknowledged.len(),
        "{} orders in the copy of {} acknowledged",
        findings.orders.len(),
        acknowledged.len()
    );
    numbering_goes_on(&app, &traders[0], product_id, findings.seq).await;
    drop(server);
}

/// `bidask backup` says what it cannot copy instead of copying nothing:
/// PostgreSQL (pointing to pg_dump), a file that is not there (which
/// connecting would create, empty), a database in memory; and where it
/// will not write: through a link.
#[test]
fn a_backup_of_what_cannot_be_copied_is_refused() {
    let directory = tempfile::tempdir().expect("a directory");
    let missing = directory.path().join("missing.db");
    for (url, said) in [
        ("postgres://bidask@127.0.0.1:1/bidask".to_owned(), "pg_dump"),
        (
            format!("sqlite://{}", missing.display()),
            "there is no database at",
        ),
        ("sqlite::memory:".to_owned(), "in-memory"),
    ] {
        let output = std::process::Command::new(SERVER)
            .args(["backup", "--database-url", &url])
            .arg(directory.path().join("copy.db"))
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.code() == Some(1) && stderr.contains(said),
            "{url}: {stderr}"
        );
    }
    assert!(!missing.exists(), "the missing database was created");
    assert!(!directory.path().join("copy.db").exists());

    // Nor does it write through a link, even one to nothing yet.
    let source = format!("sqlite://{}", directory.path().join("bidask.db").display());
    let migrated = std::process::Command::new(SERVER)
        .args(["migrate", "--database-url", &source])
        .status()
        .expect("the binary runs");
    assert!(migrated.success());
    let target = directory.path().join("elsewhere.db");
    let link = directory.path().join("link.db");
    std::os::unix::fs::symlink(&target, &link).expect("a link");
    let output = std::process::Command::new(SERVER)
        .args(["backup", "--database-url", &source])
        .arg(&link)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() == Some(1) && stderr.contains("already exists"),
        "{stderr}"
    );
    assert!(!target.exists(), "written through the link");

    // Nor into a directory that is not there, which it names (it named
    // the secret's copy, the first file it tried).
    std::fs::write(
        bidask_store::beside(&directory.path().join("bidask.db"), "jwt-secret"),
        "s".repeat(40) + "t",
    )
    .expect("a kept secret");
    let nowhere = directory.path().join("nowhere");
    let output = std::process::Command::new(SERVER)
        .args(["backup", "--database-url", &source])
        .arg(nowhere.join("copy.db"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() == Some(1)
            && stderr.contains(&format!(
                "there is no directory {} to write the backup into",
                nowhere.display()
            )),
        "{stderr}"
    );
}

/// A URL whose path is percent-encoded names the file SQLite opens, for
/// the backup and its kept secret as for the server: `my%20db.db` is
/// `my db.db`.
#[test]
fn a_backup_reads_a_percent_encoded_path_as_sqlite_does() {
    let directory = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}/my%20db.db", directory.path().display());
    let migrated = std::process::Command::new(SERVER)
        .args(["migrate", "--database-url", &url])
        .status()
        .expect("the binary runs");
    assert!(migrated.success());
    let file = directory.path().join("my db.db");
    assert!(file.exists(), "SQLite decodes %20");
    let secret = "s".repeat(40) + "t";
    std::fs::write(bidask_store::beside(&file, "jwt-secret"), &secret).expect("a kept secret");
    let copy = directory.path().join("copy.db");
    let output = std::process::Command::new(SERVER)
        .args(["backup", "--database-url", &url])
        .arg(&copy)
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(copy.exists());
    assert_eq!(
        std::fs::read(bidask_store::beside(&copy, "jwt-secret")).expect("the secret's copy"),
        secret.into_bytes()
    );
}

/// An embedded database, or a kept token secret, that users other than
/// its owner may read (made by an older bidask, copied, restored) is
/// pointed out by `migrate` and by `serve`, and left as it is; once it is
/// its owner's only, nothing is said.
#[test]
fn a_database_or_secret_others_may_read_is_pointed_out() {
    use std::os::unix::fs::PermissionsExt;

    let directory = tempfile::tempdir().expect("a directory");
    let database = directory.path().join("bidask.db");
    let secret = directory.path().join("bidask.db.jwt-secret");
    let url = format!("sqlite:{}", database.display());
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let migrate = || {
        let output = std::process::Command::new(SERVER)
            .args(["migrate", "--database-url", &url])
            .env("BIDASK_LOG_FORMAT", "json")
            .output()
            .expect("the binary runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Started with the kept secret, and stopped once it listens: what it
    // said by then is what there is to read.
    let serve = || {
        use std::io::BufRead;

        let mut child = std::process::Command::new(SERVER)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", &url)
            .env_remove("BIDASK_JWT_SECRET")
            .env_remove("BIDASK_ADMIN_USERNAME")
            .env_remove("BIDASK_ADMIN_PASSWORD")
            .env("BIDASK_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stdout = child.stdout.take().expect("its stdout");
        let (lines, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
        let mut log = String::new();
        loop {
            let Ok(line) = said.recv_timeout(Duration::from_secs(60)) else {
                let _ = child.kill();
                panic!("serve did not listen within 60 s: {log}");
            };
            log.push_str(&line);
            log.push('\n');
            if line.contains("bidask listening") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        log
    };
    let warned = |log: &str, path: &std::path::Path| {
        log.lines().any(|line| {
            line.contains("\"WARN\"")
                && line.contains("users other than its owner")
                && line.contains(&format!("\"path\":\"{}\"", path.display()))
        })
    };

    // A directory others may enter, or the files' modes would not matter.
    chmod(directory.path(), 0o755);
    let made = migrate();
    assert!(!warned(&made, &database), "made for its owner: {made}");
    std::fs::write(&secret, "k".repeat(64)).expect("a secret");
    chmod(&secret, 0o600);
    chmod(&database, 0o644);
    let log = migrate();
    assert!(warned(&log, &database), "{log}");
    assert!(!warned(&log, &secret), "{log}");
    // SQLite gives its journals the database's mode while it is open.
    for journal in ["bidask.db-wal", "bidask.db-shm"] {
        assert!(
            warned(&log, &directory.path().join(journal)),
            "{journal}: {log}"
        );
    }
    // Written by others is as bad as read.
    chmod(&secret, 0o620);
    for log in [migrate(), serve()] {
        assert!(warned(&log, &database) && warned(&log, &secret), "{log}");
    }
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("the file")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        (mode(&database), mode(&secret)),
        (0o644, 0o620),
        "left as they were"
    );
    chmod(&database, 0o600);
    chmod(&secret, 0o600);
    for log in [migrate(), serve()] {
        assert!(!warned(&log, &database) && !warned(&log, &secret), "{log}");
    }
    // A directory only its owner may enter keeps the others out of files
    // they could read; one the group may enter lets the group in.
    chmod(&database, 0o644);
    chmod(directory.path(), 0o700);
    let log = migrate();
    assert!(!warned(&log, &database), "{log}");
    chmod(directory.path(), 0o750);
    let log = migrate();
    assert!(warned(&log, &database), "{log}");
    chmod(directory.path(), 0o701);
    let log = migrate();
    assert!(warned(&log, &database), "{log}");
}

/// A `RUST_LOG` that does not parse is said, and the default levels
/// apply, instead of the directives being dropped without a word.
#[test]
fn a_bad_rust_log_is_said_and_the_default_levels_apply() {
    for (directives, warned) in [("bidask=loud", true), ("", false), ("info", false)] {
        let output = std::process::Command::new(SERVER)
            .args(["migrate", "--database-url", "sqlite::memory:"])
            .env("RUST_LOG", directives)
            .output()
            .expect("the binary runs");
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{directives:?}: {log}");
        assert_eq!(
            log.contains("RUST_LOG is not a valid filter"),
            warned,
            "{directives:?}: {log}"
        );
        assert!(log.contains("migrations applied"), "{directives:?}: {log}");
    }
}

/// PostgreSQL restarts while the server is quiet (a maintenance window, a
/// managed database's failover): every connection the server holds is
/// dead, but the first requests after it are answered, not refused,
/// since a connection idle for a while is tested before use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_while_quiet_costs_no_request_postgres() {
    let cluster = Cluster::start();
    let mut app = spawn_app_on(TestDatabase::at(cluster.url()), |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let placed = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let own = app.get("/api/v1/orders", Some(&traders[0].token)).await;
    assert_eq!(own.status, 200, "{:?}", own.body);

    cluster.halt();
    cluster.resume();
    // Quiet for longer than a connection may idle untested (2 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let placed = app
        .order(&traders[1], "bid", product_id, "9", "400.00")
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let own = app.get("/api/v1/orders", Some(&traders[0].token)).await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    let trader = &traders[2].username;
    let login = app.login(trader, &format!("password-of-{trader}")).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    app.stop().await;
}

/// PostgreSQL stops mid-stream (as in a crash) and comes back: requests
/// fail fast with 503 meanwhile, and the server recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_mid_stream_postgres() {
    let cluster = Cluster::start();
    let mut app = spawn_app_on(TestDatabase::at(cluster.url()), |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let app = Arc::new(app);
    let streams = Streams::start(&app, &traders, product_id, 100_000);
    streams.until_acknowledged(100).await;
    cluster.halt();

    // While it is down: a clear 503, quickly, and readiness says so.
    let started = Instant::now();
    let refused = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_storage_unavailable(&refused);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 took {:?}",
        started.elapsed()
    );
    assert_eq!(app.get("/readyz", None).await.status, 503);
    assert_eq!(app.get("/healthz", None).await.status, 200);

    cluster.resume();
    let resumed = Instant::now();
    // It recovers by itself: orders are accepted again within a bound.
    let ask = Retry::within_a_minute(&traders[1], "ask", product_id, "600.00");
    ask.until_accepted(&app).await;
    eprintln!(
        "recovered {:?} after the database came back",
        resumed.elapsed()
    );
    assert_eq!(app.get("/readyz", None).await.status, 200);
    let acknowledged = streams.stop().await;
    check_acknowledged(&app, &traders, product_id, &acknowledged).await;

    // And what the running server shows is what a restart rebuilds.
    let app = Arc::try_unwrap(app).unwrap_or_else(|_| panic!("all streams ended"));
    let before = audit(&app, &traders, product_id, &SIZES).await;
    let database = app.stop().await;
    let app = spawn_app_on(database, |_| {}).await;
    let after = audit(&app, &traders, product_id, &SIZES).await;
    assert_eq!(before.orders, after.orders);
    assert_eq!(before.seq, after.seq);
    app.stop().await;
}

/// SQLite's outage mid-stream: another process holds the write lock past
/// the busy timeout while orders stream in. Orders fail with 503 in
/// bounded time meanwhile; once the lock is let go the server recovers by
/// itself, every acknowledged order is there with its matches, and what
/// the running server shows is what a restart rebuilds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_locked_mid_stream_sqlite() {
    let mut app = spawn_app_on(TestDatabase::new(Backend::Sqlite).await, |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let app = Arc::new(app);
    let streams = Streams::start(&app, &traders, product_id, 100_000);
    streams.until_acknowledged(100).await;
    let mut lock = app
        .database
        .as_ref()
        .expect("the test's database")
        .connect()
        .await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .expect("the write lock");

    // While it is held: a clear 503, in bounded time (the store's busy
    // timeout is 5 s).
    let started = Instant::now();
    let refused = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_storage_unavailable(&refused);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 took {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqlx::query("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("the lock let go");
    sqlx::Connection::close(lock).await.expect("closed");
    assert!(streams.unavailable() > 0, "the streams met no outage");

    let ask = Retry::within_a_minute(&traders[1], "ask", product_id, "600.00");
    ask.until_accepted(&app).await;
    let acknowledged = streams.stop().await;
    check_acknowledged(&app, &traders, product_id, &acknowledged).await;

    let app = Arc::try_unwrap(app).unwrap_or_else(|_| panic!("all streams ended"));
    let before = audit(&app, &traders, product_id, &SIZES).await;
    let database = app.stop().await;
    let app = spawn_app_on(database, |_| {}).await;
    let after = audit(&app, &traders, product_id, &SIZES).await;
    assert_eq!(before.orders, after.orders);
    assert_eq!(before.seq, after.seq);
    app.stop().await;
}

/// PostgreSQL stops answering without going away (a frozen host): reads
/// and readiness get 503 within the request timeout instead of hanging,
/// market data from memory is still served, and the server carries on
/// when the database answers again. An order sent meanwhile waits past
/// the writer's commit bound, which drops its connection; the frozen
/// backend still commits it on waking, and the book must then hold it as
/// the database does, although its request got a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_that_hangs_postgres() {
    let cluster = Cluster::start();
    let mut app = spawn_app_on(TestDatabase::at(cluster.url()), |config| {
        config.request_timeout_secs = 2;
        // The late order must reach the frozen backend: a connection
        // tested first after a quiet spell would never send it.
        config.db_idle_check_ms = 3_600_000;
    })
    .await;
    let (product_id, traders) = setup(&mut app).await;
    let token = traders[0].token.as_str();
    let placed = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    assert_eq!(app.get("/api/v1/orders", Some(token)).await.status, 200);

    cluster.freeze();
    // Sent beside the reads, since it waits out the writer's bound.
    let late = app.order(&traders[0], "ask", product_id, "9", "450.00");
    let reads = async {
        let started = Instant::now();
        let read = app.get("/api/v1/orders", Some(token)).await;
        assert_storage_unavailable(&read);
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status, 503);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "two timed-out requests took {:?}",
            started.elapsed()
        );
        let book = app
            .get(&format!("/api/v1/products/{product_id}/book?size=9"), None)
            .await;
        assert_eq!(book.status, 200, "the book is served from memory");
        assert_eq!(book.body["asks"][0]["price"], "500.00");
        assert_eq!(app.get("/healthz", None).await.status, 200);
    };
    let (late, ()) = tokio::join!(late, reads);
    assert_storage_unavailable(&late);
    // Past the writer's ten-second commit bound.
    tokio::time::sleep(Duration::from_secs(11)).await;

    cluster.thaw();
    // Before any other order, whose events could collide with the late
    // commit's and so reveal it: the writer must find it by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let book = app
            .get(&format!("/api/v1/products/{product_id}/book?size=9"), None)
            .await;
        if book.body["asks"][0]["price"] == "450.00" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the late commit is not in the book: {:?}",
            book.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bid = Retry::within_a_minute(&traders[1], "bid", product_id, "400.00");
    bid.until_accepted(&app).await;
    let orders = app.get("/api/v1/orders", Some(token)).await;
    assert_eq!(orders.status, 200);
    let stored: Vec<&Value> = orders.body["items"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|order| &order["price"])
        .collect();
    assert_eq!(
        stored,
        [&json!("450.00"), &json!("500.00")],
        "the frozen backend committed the ask it had been sent"
    );
    // Books and open orders agree.
    audit(&app, &traders, product_id, &SIZES).await;
    app.stop().await;
}

/// A fill that is still being committed may yet fail, and its order then
/// rests again: a cancel of that order waits for the commit instead of
/// answering 409 ("already done") from a book ahead of the database. Here
/// the commit of a crossing bid waits on a lock until it is cancelled, so
/// the ask stays open, and cancelling it must then work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_behind_a_fill_still_committing_waits_for_it_postgres() {
    let mut app = spawn_app_on(TestDatabase::new(Backend::Postgres).await, |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let seller = &traders[0];
    let ask = app.order(seller, "ask", product_id, "9", "500.00").await;
    assert_eq!(ask.status, 201, "{:?}", ask.body);
    let path = format!("/api/v1/orders/{}", ask.body["order"]["id"]);
    let fill = json!({"product_id": product_id, "size": "9", "price": "500.00"});
    let cancel = app.delete(&path, Some(&seller.token));
    let cancel = behind_a_failing_commit(&app, &traders[1], &fill, cancel).await;
    assert_storage_unavailable(&cancel);
    let cancelled = until_served(|| app.delete(&path, Some(&seller.token))).await;
    assert_eq!(
        (cancelled.status, &cancelled.body["status"]),
        (200, &json!("cancelled")),
        "the ask rests again, so it can be cancelled: {:?}",
        cancelled.body
    );
    audit(&app, &traders, product_id, &SIZES).await;
    app.stop().await;
}

/// The same for an amendment below what has traded: the fill it is judged
/// against may fail, and then the order has traded nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_behind_a_fill_still_committing_waits_for_it_postgres() {
    let mut app = spawn_app_on(TestDatabase::new(Backend::Postgres).await, |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let seller = &traders[0];
    let ask = json!({"product_id": product_id, "size": "9", "price": "500.00", "quantity": 2});
    let ask = app.place(seller, "ask", &ask).await;
    assert_eq!(ask.status, 201, "{:?}", ask.body);
    let path = format!("/api/v1/orders/{}", ask.body["order"]["id"]);
    let fill = json!({"product_id": product_id, "size": "9", "price": "500.00"});
    let to_one = json!({"quantity": 1});
    let amend = app.patch(&path, Some(&seller.token), &to_one);
    let amend = behind_a_failing_commit(&app, &traders[1], &fill, amend).await;
    assert_storage_unavailable(&amend);
    let amended = until_served(|| app.patch(&path, Some(&seller.token), &to_one)).await;
    assert_eq!(
        (amended.status, &amended.body["quantity"]),
        (200, &json!(1)),
        "nothing traded, so the ask may shrink to one: {:?}",
        amended.body
    );
    audit(&app, &traders, product_id, &SIZES).await;
    app.stop().await;
}

/// Sends `buyer`'s bid `fill` and holds its commit on a lock (reads go on);
/// once the writer waits, sends `request`, requires it to wait too, then
/// fails the commit and returns `request`'s answer. The bid gets 503.
async fn behind_a_failing_commit(
    app: &TestApp,
    buyer: &Trader,
    fill: &Value,
    request: impl std::future::Future<Output = bidask_tests::Reply>,
) -> bidask_tests::Reply {
    let database = app.database.as_ref().expect("a database");
    let mut blocker = database.connect().await;
    let mut lock = sqlx::Connection::begin(&mut blocker)
        .await
        .expect("a transaction");
    sqlx::query("LOCK TABLE matches IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("the lock");
    let mut watcher = database.connect().await;
    let (bid, answer) = tokio::join!(app.place(buyer, "bid", fill), async {
        // Once the writer waits for the lock, the actor has decided the
        // fill in its book.
        let deadline = Instant::now() + Duration::from_secs(10);
        let writer: i32 = loop {
            let waiting: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_locks WHERE NOT granted \
                 AND relation = 'matches'::regclass",
            )
            .fetch_optional(&mut watcher)
            .await
            .expect("pg_locks");
            if let Some(pid) = waiting {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "the fill never reached the database"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::pin!(request);
        // While the fill's commit waits, the request has no true answer.
        if let Ok(early) = tokio::time::timeout(Duration::from_secs(1), &mut request).await {
            panic!(
                "answered while the fill was committing: {} {:?}",
                early.status, early.body
            );
        }
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(writer)
            .execute(&mut watcher)
            .await
            .expect("the writer's statement cancelled");
        request.await
    });
    lock.rollback().await.expect("the lock released");
    assert_storage_unavailable(&bid);
    answer
}

/// The first answer of `request` that is not a 503, within ten seconds:
/// the product rebuilds after the failed commit.
async fn until_served<F, R>(request: F) -> bidask_tests::Reply
where
    F: Fn() -> R,
    R: std::future::Future<Output = bidask_tests::Reply>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = request().await;
        if reply.status != 503 || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_backends!(feed_rows_the_writer_did_not_count_are_caught_up_with);

/// A batch can land after the writer counted it as failed (a database
/// that froze and resumed), so the database may hold a `seq` the writer
/// does not know of. Here a row is planted to stand for it. The batch that
/// collides with it is refused (503); the writer reads the counters back
/// and publishes what landed, so subscribers and a resume see it in order
/// before the next event; the product's actor rebuilds at once, not at its
/// next request; and the next order is accepted instead of colliding for
/// ever.
async fn feed_rows_the_writer_did_not_count_are_caught_up_with(backend: Backend) {
    let mut app = spawn_app_on(TestDatabase::new(backend).await, |_| {}).await;
    let product_id = app.create_product("SEQ-1", &["10"]).await;
    let channel = format!("product:{product_id}");
    let ann = app.register("ann").await;
    let first = app.order(&ann, "bid", product_id, "10", "100.00").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let seq = first.body["seq"].as_i64().expect("a seq");
    let mut live = WsClient::connect(&app).await;
    live.expect("welcome").await;
    assert_eq!(live.subscribe(&channel).await["seq"].as_i64(), Some(seq));

    let mut connection = app.database.as_ref().expect("a database").connect().await;
    let landed = json!({
        "type": "BID_UPDATED", "channel": channel, "seq": seq + 1,
        "ts": "2026-11-30T12:00:00.000000Z", "product_id": product_id, "size": "10",
        "price": "99.00", "quantity": 1, "orders": 1,
        "highest_bid": {"price": "100.00", "quantity": 1},
    });
    sqlx::query(
        "INSERT INTO feed_events (channel, seq, event_type, payload, created_at) \
         VALUES ($1, $2, 'BID_UPDATED', $3, $4)",
    )
    .bind(channel.clone())
    .bind(seq + 1)
    .bind(landed.to_string())
    .bind(bidask_server::clock::now_micros())
    .execute(&mut connection)
    .await
    .expect("a row the writer does not know of");

    let collided = app.order(&ann, "bid", product_id, "10", "101.00").await;
    assert_storage_unavailable(&collided);
    // Subscribers keep joining while the writer publishes what landed and
    // the actor rebuilds: each one's snapshot and the events after it
    // join without a gap, whichever side of the rebuild it read.
    let mut joiners = Vec::new();
    for _ in 0..12 {
        let mut joiner = WsClient::connect(&app).await;
        joiner.expect("welcome").await;
        let joined = joiner.subscribe(&channel).await["seq"]
            .as_i64()
            .expect("a seq");
        joiners.push((joiner, joined));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // No request comes: the actor rebuilds because the writer woke it.
    let started = Instant::now();
    while app.book(product_id, "10").await["seq"].as_i64() != Some(seq + 1) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the book still reports the seq before the landed event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let accepted = Retry {
        size: "10",
        within: Duration::from_secs(5),
        pause: Duration::from_millis(100),
        ..Retry::within_a_minute(&ann, "bid", product_id, "102.00")
    }
    .until_accepted(&app)
    .await;
    let next = accepted.body["seq"].as_i64().expect("a seq");
    assert_eq!(next, seq + 2);
    // The subscriber gets the landed event, then the next one, no gap.
    let events = live.events_until(&channel, seq, next).await;
    assert_eq!(events[0], landed);
    for (mut joiner, joined) in joiners {
        let events = joiner.events_until(&channel, joined, next).await;
        assert_eq!(events.last().map(|event| &event["seq"]), Some(&json!(next)));
    }
    let mut resumed = WsClient::connect(&app).await;
    resumed.expect("welcome").await;
    resumed
        .send(&json!({"type": "subscribe", "channels": [channel], "since_seq": seq}))
        .await;
    let subscribed = resumed.expect("subscribed").await;
    assert_eq!(subscribed.get("reset"), None, "{subscribed}");
    assert_eq!(resumed.events_until(&channel, seq, next).await[0], landed);
    app.stop().await;
}

/// Stores product `id` with `sku` (named `Sneaker {sku}`, one size `10`,
/// a one-cent tick) behind the server's back, as a creation whose commit
/// counted as failed but landed would have left it.
async fn plant_product(connection: &mut sqlx::AnyConnection, id: i64, sku: &str) {
    sqlx::query(
        "INSERT INTO products (id, sku, name, brand, tick_units, scale, created_at) \
         VALUES ($1, $2, $3, 'Nike', 1, 2, $4)",
    )
    .bind(id)
    .bind(sku.to_owned())
    .bind(format!("Sneaker {sku}"))
    .bind(bidask_server::clock::now_micros())
    .execute(&mut *connection)
    .await
    .expect("a product the server did not open");
    sqlx::query("INSERT INTO product_sizes (product_id, market, size) VALUES ($1, 0, '10')")
        .bind(id)
        .execute(&mut *connection)
        .await
        .expect("its size");
}

on_both_backends!(
    a_product_that_landed_unopened_is_opened_on_the_next_try,
    a_product_whose_creation_landed_late_is_opened_when_the_writer_finds_it
);

/// A product whose creation was answered 503 may be in the database all
/// the same (a commit that landed after it counted as failed; planted
/// here). The next try opens it, so it can be traded at once instead of
/// being refused by the database until a restart: the same request,
/// retried, gets its 201; a different one with that SKU gets 409.
async fn a_product_that_landed_unopened_is_opened_on_the_next_try(backend: Backend) {
    let mut app = spawn_app_on(TestDatabase::new(backend).await, |_| {}).await;
    let mut connection = app.database.as_ref().expect("a database").connect().await;
    for (id, sku) in [(500_i64, "LANDED-1"), (501, "LANDED-2")] {
        plant_product(&mut connection, id, sku).await;
    }

    let token = app.admin_token().await;
    let retried = app
        .post(
            "/api/v1/products",
            Some(&token),
            &json!({"sku": "LANDED-1", "name": "Sneaker LANDED-1", "brand": "Nike", "sizes": ["10"]}),
        )
        .await;
    assert_eq!(retried.status, 201, "{:?}", retried.body);
    assert_eq!(retried.body["id"], 500);
    let other = app
        .post(
            "/api/v1/products",
            Some(&token),
            &json!({"sku": "LANDED-2", "name": "Another shoe", "brand": "Nike", "sizes": ["10"]}),
        )
        .await;
    assert_eq!(
        (other.status, other.code()),
        (409, "sku_taken"),
        "{:?}",
        other.body
    );
    let ann = app.register("ann").await;
    for id in [500, 501] {
        let shown = app.get(&format!("/api/v1/products/{id}"), None).await;
        assert_eq!(shown.status, 200, "{:?}", shown.body);
        let bid = app.order(&ann, "bid", id, "10", "100.00").await;
        assert_eq!(bid.status, 201, "{:?}", bid.body);
    }
    app.stop().await;
}

/// A product creation that landed after it counted as failed leaves its
/// `NEW_PRODUCT` in the feed (planted here, with the product). When the
/// writer finds it, it opens the product and then publishes the event,
/// with no retry of the creation needed; a retry that comes afterwards
/// still gets its 201.
async fn a_product_whose_creation_landed_late_is_opened_when_the_writer_finds_it(backend: Backend) {
    let mut app = spawn_app_on(TestDatabase::new(backend).await, |_| {}).await;
    let mut catalog = WsClient::connect(&app).await;
    catalog.expect("welcome").await;
    let seq = catalog.subscribe("products").await["seq"]
        .as_i64()
        .expect("a seq");
    let mut connection = app.database.as_ref().expect("a database").connect().await;
    let landed = 600_i64;
    plant_product(&mut connection, landed, "LATE-1").await;
    let event = json!({
        "type": "NEW_PRODUCT", "channel": "products", "seq": seq + 1,
        "ts": "2026-11-30T12:00:00.000000Z", "product_id": landed, "sku": "LATE-1",
        "name": "Sneaker LATE-1", "brand": "Nike", "sizes": ["10"], "tick_size": "0.01",
    });
    sqlx::query(
        "INSERT INTO feed_events (channel, seq, event_type, payload, created_at) \
         VALUES ('products', $1, 'NEW_PRODUCT', $2, $3)",
    )
    .bind(seq + 1)
    .bind(event.to_string())
    .bind(bidask_server::clock::now_micros())
    .execute(&mut connection)
    .await
    .expect("its event");

    // The next creation collides with the planted seq and is refused.
    let token = app.admin_token().await;
    let body = json!({"sku": "NEXT-1", "name": "Sneaker NEXT-1", "brand": "Nike", "sizes": ["9"]});
    let collided = app.post("/api/v1/products", Some(&token), &body).await;
    assert_storage_unavailable(&collided);
    assert_eq!(
        catalog.events_until("products", seq, seq + 1).await[0],
        event
    );
    // Opened before its event was published, as at a creation.
    let shown = app.get(&format!("/api/v1/products/{landed}"), None).await;
    assert_eq!(shown.status, 200, "the landed product is not open");
    let ann = app.register("ann").await;
    let bid = app.order(&ann, "bid", landed, "10", "100.00").await;
    assert_eq!(bid.status, 201, "{:?}", bid.body);
    // Its own creation, which was answered 503, retried: the 201 it
    // should have had, once; the same again, or another product under
    // its SKU, is taken.
    let late = json!({"sku": "LATE-1", "name": "Sneaker LATE-1", "brand": "Nike", "sizes": ["10"]});
    let other = json!({"sku": "LATE-1", "name": "Another shoe", "brand": "Nike", "sizes": ["10"]});
    let answered = app.post("/api/v1/products", Some(&token), &other).await;
    assert_eq!((answered.status, answered.code()), (409, "sku_taken"));
    let answered = app.post("/api/v1/products", Some(&token), &late).await;
    assert_eq!(
        (answered.status, &answered.body["id"]),
        (201, &json!(landed)),
        "{:?}",
        answered.body
    );
    let answered = app.post("/api/v1/products", Some(&token), &late).await;
    assert_eq!((answered.status, answered.code()), (409, "sku_taken"));
    // The refused creation, retried, goes through after it.
    let retried = app.post("/api/v1/products", Some(&token), &body).await;
    assert_eq!(retried.status, 201, "{:?}", retried.body);
    assert_eq!(
        catalog.events_until("products", seq + 1, seq + 2).await[0]["product_id"],
        retried.body["id"]
    );
    app.stop().await;
}

/// One server per PostgreSQL database: a second one started on it waits
/// for the first's writer lock (which would be a dead server's last
/// commit finishing) and then refuses to start, naming why; the first
/// goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_does_not_start() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let second = bidask_tests::test_config(&TestDatabase::at(database.url.clone()));
    let mut app = spawn_app_on(database, |_| {}).await;
    let started = Instant::now();
    let refused = bidask_server::startup::Application::build(second).await;
    let error = refused.err().map(|error| error.to_string());
    assert!(
        error.as_deref().is_some_and(
            |error| error.contains("another bidask server is writing to this database")
        ),
        "{error:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(25),
        "it waited for the lock first"
    );
    let product = app.create_product("FENCE-1", &["10"]).await;
    let ann = app.register("ann").await;
    let placed = app.order(&ann, "bid", product, "10", "100.00").await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    app.stop().await;
}

/// One server per SQLite file too: the second is refused at once (a lock
/// file has no dead server's commit to wait for), however its URL spells
/// the file; the first goes on serving, and once it has stopped the file
/// is free for the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_sqlite_file_does_not_start() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let file = bidask_store::sqlite_file(&database.url).expect("a file");
    let directory = file.parent().expect("its directory").to_owned();
    let mut app = spawn_app_on(database, |_| {}).await;
    let link = directory.join("link.db");
    std::os::unix::fs::symlink(&file, &link).expect("a link to the database");
    for url in [
        format!("sqlite://{}", file.display()),
        format!("sqlite://{}/./bidask.db", directory.display()),
        format!("sqlite://{}", link.display()),
    ] {
        let second = bidask_tests::test_config(&TestDatabase::at(url.clone()));
        let refused = bidask_server::startup::Application::build(second).await;
        let error = refused.err().map(|error| error.to_string());
        assert!(
            error.as_deref().is_some_and(
                |error| error.contains("another bidask server is writing to this database")
            ),
            "{url}: {error:?}"
        );
    }
    let product = app.create_product("FENCE-2", &["10"]).await;
    let ann = app.register("ann").await;
    let placed = app.order(&ann, "bid", product, "10", "100.00").await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let database = app.stop().await;
    let app = spawn_app_on(database, |_| {}).await;
    assert_eq!(app.book(product, "10").await["bids"][0]["price"], "100.00");
    app.stop().await;
}

/// The writer's session dies (as in a database restart) and another
/// session takes the writer's lock before it can take it back (a script;
/// a second server would also claim the database, see the next test):
/// the database answers, but this
/// server can commit nothing, so it reports itself not ready instead of
/// taking orders it can only refuse; once the lock is free it recovers
/// by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_lock_was_taken_is_not_ready_postgres() {
    let mut app = spawn_app_on(TestDatabase::new(Backend::Postgres).await, |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let first = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);

    // The writer is idle, so the other session gets the lock first: its
    // `pg_advisory_lock` waits for the terminated backend to let go.
    let database = app.database.as_ref().expect("a database");
    database.terminate_writer().await;
    let mut other = database.connect().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(bidask_store::WRITER_LOCK)
        .execute(&mut other)
        .await
        .expect("the writer's lock taken");

    let refused = app
        .order(&traders[1], "ask", product_id, "9", "510.00")
        .await;
    assert_storage_unavailable(&refused);
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        ready.status, 503,
        "ready without its lock: {:?}",
        ready.body
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(bidask_store::WRITER_LOCK)
        .execute(&mut other)
        .await
        .expect("the lock let go");
    Retry::within_a_minute(&traders[1], "ask", product_id, "520.00")
        .until_accepted(&app)
        .await;
    assert_eq!(app.get("/readyz", None).await.status, 200);
    app.stop().await;
}

/// The database becomes read-only under the server (a standby promoted
/// the wrong way round after a failover, an operator's
/// `default_transaction_read_only`): orders and registrations are refused
/// as the storage being unavailable, not as an internal error, and once it
/// is writable again the server takes both by itself: neither the writer
/// nor the pool keeps the read-only sessions opened meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_turned_read_only_refuses_orders_until_it_is_writable_postgres() {
    let mut app = spawn_app_on(TestDatabase::new(Backend::Postgres).await, |_| {}).await;
    let (product_id, traders) = setup(&mut app).await;
    let first = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);

    // New sessions are read-only; the writer's next one is new.
    let database = app.database.as_ref().expect("a database");
    let mut admin = database.connect().await;
    let (name,): (String,) = sqlx::query_as("SELECT current_database()::text")
        .fetch_one(&mut admin)
        .await
        .expect("the database's name");
    let set = |value: &str| {
        format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = {value}")
    };
    sqlx::query(sqlx::AssertSqlSafe(set("on")))
        .execute(&mut admin)
        .await
        .expect("the database made read-only");
    // Every session but this one, the pool's too: those it opens next are
    // read-only.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .expect("the server's sessions ended");
    for price in ["510.00", "520.00"] {
        let refused = app.order(&traders[1], "ask", product_id, "9", price).await;
        assert_storage_unavailable(&refused);
    }
    // Reads go on, from the database: each of the pool's ended sessions
    // fails one and is dropped, then new ones are opened, read-only.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut in_a_row = 0;
    while in_a_row < 5 {
        assert!(
            Instant::now() < deadline,
            "no reads from a read-only database"
        );
        let read = app.get("/api/v1/orders", Some(&traders[0].token)).await;
        in_a_row = if read.status == 200 { in_a_row + 1 } else { 0 };
    }
    // Several of them: reads at once.
    let reads = (0..6).map(|_| app.get("/api/v1/orders", Some(&traders[0].token)));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.status, 200, "{:?}", read.body);
    }
    // A write on such a session is refused.
    let refused = app
        .post("/api/v1/auth/register", None, &newcomer("before"))
        .await;
    assert_storage_unavailable(&refused);

    sqlx::query(sqlx::AssertSqlSafe(set("off")))
        .execute(&mut admin)
        .await
        .expect("the database writable again");

    // The pool's sessions from the read-only time are replaced, not kept
    // until they are recycled (ten minutes idle): the first registration
    // goes through. (Before any order: the writer's recovery reads on new
    // sessions.)
    let after = app
        .post("/api/v1/auth/register", None, &newcomer("after"))
        .await;
    assert_eq!(after.status, 201, "{:?}", after.body);
    Retry::within_a_minute(&traders[1], "ask", product_id, "530.00")
        .until_accepted(&app)
        .await;
    assert_eq!(app.get("/readyz", None).await.status, 200);
    app.stop().await;
}

/// A server whose connection, and with it the writer's lock, was cut
/// while a second server claimed the database, wrote and stopped, must
/// not write again when it gets the lock back: its ids and feed counters
/// are the second one's too, and its orders would upsert over that one's
/// orders of the same ids. It refuses, and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_replaced_while_its_lock_was_lost_stops_postgres() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let mut first = ServerProcess::start(SERVER, &database.url);
    let mut app = TestApp::connect(first.address.clone());
    let (product_id, traders) = setup(&mut app).await;
    // The second server trades another product: its feed counters are not
    // the first one's, so only the order ids meet.
    let theirs_id = app.create_product("CRASH-2", &SIZES).await;
    let ours = app
        .order(&traders[0], "ask", product_id, "9", "500.00")
        .await;
    assert_eq!(ours.status, 201, "{:?}", ours.body);

    database.terminate_writer().await;
    // The second server's wait for the lock ends with the ended backend.
    let second = ServerProcess::start(SERVER, &database.url);
    let other = TestApp::connect(second.address.clone());
    let mut theirs = Vec::new();
    for (trader, price) in traders[1..4].iter().zip(["600.00", "610.00", "620.00"]) {
        let placed = other.order(trader, "ask", theirs_id, "9", price).await;
        assert_eq!(placed.status, 201, "{:?}", placed.body);
        theirs.push((trader, placed.body["order"].clone()));
    }
    assert_eq!(second.terminate(), Some(0));

    // The lock is free again: the first server takes it at once.
    let refused = app
        .order(&traders[4], "ask", product_id, "9", "700.00")
        .await;
    assert_storage_unavailable(&refused);
    // Unfenced, the first order fails on the dead connection anyway, and
    // this retry is the one that took the id of the second server's
    // 610.00 ask and wrote over it. (Refused or unanswered, as the server
    // may have gone already: either is right; the exit is checked next.)
    let retried = app
        .client
        .post(format!("{}/api/v1/asks", app.address))
        .bearer_auth(&traders[4].token)
        .json(&json!({"product_id": product_id, "size": "9", "price": "700.00"}))
        .send()
        .await
        .map(|response| response.status().as_u16());
    assert!(
        !matches!(retried, Ok(201)),
        "the replaced server took an order"
    );
    assert_eq!(
        first.exited_within(Duration::from_secs(30)),
        Some(Some(1)),
        "the replaced server kept running"
    );

    let third = ServerProcess::start(SERVER, &database.url);
    let check = TestApp::connect(third.address.clone());
    for (trader, placed) in theirs {
        let id = placed["id"].as_i64().expect("an order id");
        let stored = check
            .get(&format!("/api/v1/orders/{id}"), Some(&trader.token))
            .await;
        assert_eq!(stored.status, 200, "{:?}", stored.body);
        assert_eq!(stored.body, placed, "the second server's order changed");
    }
    for (product, prices) in [
        (product_id, &["500.00"][..]),
        (theirs_id, &["600.00", "610.00", "620.00"]),
    ] {
        let book = check.book(product, "9").await;
        let asks: Vec<&str> = book["asks"]
            .as_array()
            .expect("asks")
            .iter()
            .filter_map(|level| level["price"].as_str())
            .collect();
        assert_eq!(asks, prices, "product {product}");
    }
}

/// A second signal during start-up stops the server at once, with exit 1
/// as the README says: a supervisor must not record a start-up abandoned
/// halfway as a clean stop. Start-up waits here on a database another
/// connection holds the write lock of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_start_up_stops_with_exit_1() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    sqlx::any::install_default_drivers();
    let url = format!("{}?mode=rwc", database.url);
    let mut holder = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("the test's own connection");
    sqlx::raw_sql("PRAGMA journal_mode = WAL; BEGIN IMMEDIATE; CREATE TABLE hold (x INTEGER);")
        .execute(&mut holder)
        .await
        .expect("the write lock");
    let mut command = std::process::Command::new(SERVER);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &database.url)
        .env("BIDASK_JWT_SECRET", bidask_tests::JWT_SECRET);
    let mut server = ServerProcess::spawn_starting(command);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("INT");
    // Well before the 5 s the migrations wait for the lock, after which
    // start-up would fail with exit 1 by itself.
    assert_eq!(
        server.exited_within(Duration::from_secs(2)),
        Some(Some(1)),
        "a second signal did not stop start-up at once with exit 1"
    );
    drop(holder);
}

/// An operator's second signal during the drain stops the server at once
/// (exit 1, saying so) instead of waiting out a request that may never
/// finish arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain() {
    use std::io::Write;

    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut server = ServerProcess::start(SERVER, &database.url);
    let address = server.address.trim_start_matches("http://").to_owned();
    // A request whose body never comes: the drain waits for it until the
    // request timeout (15 s).
    let mut slow = std::net::TcpStream::connect(&address).expect("a connection");
    slow.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bidask\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    )
    .expect("a request head");
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.signal("TERM");
    assert_eq!(
        server.exited_within(Duration::from_millis(500)),
        None,
        "the drain did not wait for the request in flight"
    );
    server.signal("INT");
    assert_eq!(
        server.exited_within(Duration::from_secs(5)),
        Some(Some(1)),
        "a second signal did not end the drain"
    );
    drop(slow);
}
