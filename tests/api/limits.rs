//! Rate limits: past the burst, 429 with `Retry-After`, nothing stored.

use bidask_tests::{Backend, TestDatabase, on_both_backends, spawn_app_on};
use serde_json::json;

on_both_backends!(a_user_past_the_burst_gets_429_with_retry_after);

async fn a_user_past_the_burst_gets_429_with_retry_after(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let mut app = spawn_app_on(database, |config| config.rate_limit_user = 2).await;
    let product = app.create_product("LIMIT-1", &["10"]).await;
    let ann = app.register("ann").await;
    // A rate of 2/s bursts to 4: the fifth immediate request is refused.
    let mut statuses = Vec::new();
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
            assert!(
                reply
                    .retry_after
                    .as_deref()
                    .and_then(|value| value.parse::<u64>().ok())
                    .is_some_and(|seconds| seconds >= 1),
                "429 without a usable Retry-After: {:?}",
                reply.retry_after
            );
        }
        statuses.push(reply.status);
    }
    assert!(
        statuses.contains(&429),
        "no request was limited: {statuses:?}"
    );
    let placed = statuses.iter().filter(|status| **status == 201).count();
    // After the wait it asked for, the user is served again, and only the
    // orders that got a 201 exist.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let orders = app.get("/api/v1/orders", Some(&ann.token)).await;
    assert_eq!(orders.status, 200, "{:?}", orders.body);
    assert_eq!(orders.body["items"].as_array().map(Vec::len), Some(placed));
    app.stop().await;
}
