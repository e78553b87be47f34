//! The load generator against a real server on PostgreSQL: every request
//! of a short concurrent run succeeds, and afterwards every book is
//! exactly its resting orders and every order's fills equal its matches.
//! And its `fanout` scenario on SQLite: every subscriber gets every event.

use std::time::Duration;

use bidask_loadgen::{FanoutConfig, OrdersConfig};
use bidask_tests::audit::audit;
use bidask_tests::{Backend, TestDatabase, Trader, spawn_app_on};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_orders_run_has_no_errors_and_leaves_consistent_books() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let app = spawn_app_on(database, |config| config.demo = true).await;
    let report = bidask_loadgen::run(OrdersConfig {
        traders: 8,
        duration: Duration::from_secs(3),
        run_id: Some("ci".parse().expect("a run id")),
        progress: false,
        ..OrdersConfig::new(app.address.clone())
    })
    .await
    .expect("the run completes");
    assert!(
        report.accepted > 100,
        "only {} orders accepted",
        report.accepted
    );
    assert!(report.matches > 0, "the mix made no matches");
    assert_eq!(report.errors, 0, "errors: {:?}", report.errors_by_kind);

    // Log in as the run's traders and audit every product they traded.
    let mut traders = Vec::new();
    for index in 0..8 {
        let username = format!("lgci-{index}");
        let reply = app
            .post(
                "/api/v1/auth/login",
                None,
                &json!({"username": username, "password": format!("loadgen-{username}")}),
            )
            .await;
        assert_eq!(reply.status, 200, "{username}: {:?}", reply.body);
        traders.push(Trader {
            id: reply.body["user"]["id"].as_i64().expect("an id"),
            username,
            token: reply.body["token"].as_str().expect("a token").to_owned(),
        });
    }
    let products = app.get("/api/v1/products?limit=100", None).await;
    for product in products.body["items"].as_array().expect("products") {
        let sizes: Vec<String> = product["sizes"]
            .as_array()
            .expect("sizes")
            .iter()
            .map(|size| size.as_str().expect("a size").to_owned())
            .collect();
        let sizes: Vec<&str> = sizes.iter().map(String::as_str).collect();
        audit(
            &app,
            &traders,
            product["id"].as_i64().expect("an id"),
            &sizes,
        )
        .await;
    }
    app.stop().await;
}

/// An `orders` run of `traders` offering `rate` requests a second.
async fn open_loop(
    address: &str,
    traders: u32,
    duration: Duration,
    rate: u32,
) -> bidask_loadgen::OrdersReport {
    bidask_loadgen::run(OrdersConfig {
        traders,
        duration,
        rate: Some(rate),
        progress: false,
        ..OrdersConfig::new(address)
    })
    .await
    .expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_keeps_to_its_timetable() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| config.demo = true).await;
    let report = open_loop(&app.address, 8, Duration::from_secs(2), 150).await;
    assert_eq!(report.errors, 0, "errors: {:?}", report.errors_by_kind);
    assert_eq!(
        (report.offered_rate, report.offered),
        (Some(150), Some(300))
    );
    assert_eq!(report.unsent, Some(300 - report.requests));
    assert!(report.accepted > 0 && report.p99_ms > 0.0);
    // Sent on the timetable, not as fast as answers come: the last request
    // was due 299/150 s after the first.
    assert!(
        report.duration_s >= 299.0 / 150.0,
        "done in {} s",
        report.duration_s
    );
    let lag = report
        .start_lag_p99_ms
        .expect("an open loop reports its lag");
    assert!(report.start_lag_max_ms >= Some(lag) && report.start_lag_max_ms > Some(0.0));

    // One trader cannot send 20,000 requests a second: the requests wait
    // for it, and that wait is their latency, as it would be a user's.
    // Timed from the send instead, the median would be one exchange.
    let report = open_loop(&app.address, 1, Duration::from_secs(1), 20_000).await;
    assert_eq!(report.offered, Some(20_000));
    assert!(report.unsent > Some(10_000), "unsent: {:?}", report.unsent);
    assert!(report.p50_ms > 100.0, "p50 {} ms", report.p50_ms);
    assert!(
        report.start_lag_p99_ms > Some(100.0),
        "lag {:?}",
        report.start_lag_p99_ms
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fanout_run_delivers_every_event_to_every_subscriber() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| config.demo = true).await;
    let report = bidask_loadgen::run_fanout(FanoutConfig {
        clients: 20,
        rate: 25,
        duration: Duration::from_secs(2),
        settle: Duration::from_millis(200),
        drain: Duration::from_secs(5),
        // The server runs in this process: its memory is this process's.
        server_pid: Some(std::process::id()),
        run_id: Some("fanci".parse().expect("a run id")),
        progress: false,
        ..FanoutConfig::new(app.address.clone())
    })
    .await
    .expect("the run completes");
    assert_eq!(report.errors, 0, "errors: {:?}", report.errors_by_kind);
    assert_eq!(report.connections, 20);
    assert!(report.events_published > 0, "nothing was published");
    assert!(report.messages_per_sec > 0.0, "nothing was delivered");
    assert_eq!(
        report.messages_delivered + report.late_messages,
        report.events_published * 20,
        "every subscriber gets every event once"
    );
    assert_eq!((report.missing, report.out_of_order), (0, 0));
    assert!(report.p50_ms > 0.0 && report.p99_ms >= report.p50_ms);
    assert!(report.server_bytes_per_connection.is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_counted_as_cut_off_while_the_others_get_everything() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let app = spawn_app_on(database, |config| {
        config.demo = true;
        // Room for a reader that a busy machine holds back for a moment,
        // none for one that never reads.
        config.ws_queue = 64;
        config.send_buffer = Some(8 * 1024);
    })
    .await;
    let report = bidask_loadgen::run_fanout(FanoutConfig {
        clients: 10,
        stalled: 3,
        rate: 200,
        duration: Duration::from_secs(4),
        settle: Duration::from_millis(200),
        drain: Duration::from_secs(5),
        run_id: Some("stall".parse().expect("a run id")),
        progress: false,
        ..FanoutConfig::new(app.address.clone())
    })
    .await
    .expect("the run completes");
    assert_eq!(report.errors, 0, "errors: {:?}", report.errors_by_kind);
    assert_eq!((report.connections, report.stalled_subscribed), (10, 3));
    assert_eq!(
        report.messages_delivered + report.late_messages,
        report.events_published * 10,
        "every subscriber that reads gets every event once"
    );
    assert_eq!(report.slow_consumer_closes, 0);
    assert_eq!(
        report.stalled_endings.iter().collect::<Vec<_>>(),
        [("slow_consumer", 3)],
        "after {} events",
        report.events_published
    );
    println!(
        "{} events published; every stalled client was cut off",
        report.events_published
    );
    app.stop().await;
}
