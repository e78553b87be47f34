//! Rate limits: past the burst, 429 with `Retry-After`, nothing stored.

use bidask_tests::{Backend, TestDatabase, on_both_backends, spawn_app_on};
use serde_json::json;

on_both_backends!(a_user_past_the_burst_gets_429_with_retry_after);
on_both_backends!(an_address_past_its_password_checks_gets_429_while_requests_go_on);

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
