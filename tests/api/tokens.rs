//! A token names an account, not only an id: after a reset or a restore
//! hands its id to someone else, and after the server resets the admin's
//! password, the tokens issued before stop working.

use bidask_tests::ws::{Connect, WsClient, refusal};
use bidask_tests::{Backend, TestApp, TestDatabase, on_both_backends, spawn_app, spawn_app_on};
use serde_json::json;

on_both_backends!(a_token_from_before_a_reset_does_not_act_as_the_new_owner_of_its_id);
on_both_backends!(an_account_taken_over_as_admin_refuses_its_earlier_tokens);

/// Every way a token reaches the server refuses `token`: REST (reading,
/// and cancelling order `order`) and the WebSocket upgrade.
async fn assert_refused(app: &TestApp, token: &str, order: i64) {
    let me = app.get("/api/v1/me", Some(token)).await;
    assert_eq!(
        (me.status, &me.body["error"]["code"]),
        (401, &json!("invalid_token")),
        "GET /me: {}",
        me.body
    );
    let cancel = app
        .delete(&format!("/api/v1/orders/{order}"), Some(token))
        .await;
    assert_eq!(cancel.status, 401, "DELETE the order: {}", cancel.body);
    let refused = WsClient::connect_with(
        app,
        &Connect {
            query_token: Some(token),
            ..Connect::default()
        },
    )
    .await
    .err()
    .expect("the upgrade is refused");
    assert_eq!(refusal(&refused), (401, "invalid_token".to_owned()));
}

/// The database is made anew while the secret stays (as with a kept
/// secret file, a configured secret, or a restored backup): ids are
/// handed out again, and Ann's token names Zed's id.
async fn a_token_from_before_a_reset_does_not_act_as_the_new_owner_of_its_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.register("ann").await;
    app.stop().await;

    let mut app = spawn_app(backend).await;
    let zed = app.register("zed").await;
    assert_eq!(zed.id, ann.id, "the id was handed out again");
    let product = app.create_product("RESET-1", &["10"]).await;
    let placed = app.order(&zed, "ask", product, "10", "250.00").await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let order = placed.body["order"]["id"].as_i64().expect("an id");

    assert_refused(&app, &ann.token, order).await;
    let still = app
        .get(&format!("/api/v1/orders/{order}"), Some(&zed.token))
        .await;
    assert_eq!(
        (still.status, &still.body["status"]),
        (200, &json!("open")),
        "{}",
        still.body
    );
    app.stop().await;
}

/// `BIDASK_ADMIN_USERNAME` names an account a trader registered: the
/// account becomes the admin's with the configured password, and the
/// trader's token stops working. A restart with the same password keeps
/// the admin's tokens; a new password ends them, and so does naming
/// another account, which leaves this one a trader's.
async fn an_account_taken_over_as_admin_refuses_its_earlier_tokens(backend: Backend) {
    let admin = |password: &'static str| {
        move |config: &mut bidask_server::config::ServeConfig| {
            config.admin_username = Some("boss".to_owned());
            config.admin_password = Some(password.to_owned());
        }
    };
    let database = TestDatabase::new(backend).await;
    let app = spawn_app_on(database, |config| {
        config.admin_username = None;
        config.admin_password = None;
    })
    .await;
    let squatter = app.register("Boss").await;
    let database = app.stop().await;

    let app = spawn_app_on(database, admin("the-operators-password")).await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "boss", "password": "the-operators-password"}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["user"]["id"], squatter.id, "the same account");
    let token = login.body["token"].as_str().expect("a token").to_owned();
    assert_refused(&app, &squatter.token, 1).await;
    let database = app.stop().await;

    let app = spawn_app_on(database, admin("the-operators-password")).await;
    let me = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(
        (me.status, &me.body["role"]),
        (200, &json!("admin")),
        "the same password keeps the admin's tokens: {}",
        me.body
    );
    let database = app.stop().await;

    let app = spawn_app_on(database, admin("a-new-password-for-boss")).await;
    assert_refused(&app, &token, 1).await;
    let boss = json!({"username": "boss", "password": "a-new-password-for-boss"});
    let login = app.post("/api/v1/auth/login", None, &boss).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.body["token"].as_str().expect("a token").to_owned();
    let database = app.stop().await;

    // The environment names another admin: boss is a trader now, its
    // admin's tokens end, and it signs in with its password as a trader.
    let app = spawn_app_on(database, |config| {
        config.admin_username = Some("chief".to_owned());
        config.admin_password = Some("the-new-operators-password".to_owned());
    })
    .await;
    assert_refused(&app, &token, 1).await;
    let login = app.post("/api/v1/auth/login", None, &boss).await;
    assert_eq!(
        (login.status, &login.body["user"]["role"]),
        (200, &json!("trader")),
        "{}",
        login.body
    );
    let token = login.body["token"].as_str().expect("a token");
    let product = json!({"sku": "DEMOTED-1", "name": "Dunk", "brand": "Nike", "sizes": ["10"]});
    let created = app.post("/api/v1/products", Some(token), &product).await;
    assert_eq!(created.status, 403, "{}", created.body);
    app.stop().await;
}

/// A 401 about a bearer token says how to authenticate, and whether the
/// token sent was refused (RFC 6750, 3); a refused login challenges none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_answered_with_a_challenge() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register("ann").await;
    let me = format!("{}/api/v1/me", app.address);
    let challenge = |response: &reqwest::Response| {
        response
            .headers()
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let missing = app.client.get(&me).send().await.expect("an answer");
    assert_eq!(missing.status(), 401);
    assert_eq!(challenge(&missing).as_deref(), Some("Bearer"));
    let forged = app
        .client
        .get(&me)
        .bearer_auth("not.a.token")
        .send()
        .await
        .expect("an answer");
    assert_eq!(forged.status(), 401);
    assert_eq!(
        challenge(&forged).as_deref(),
        Some("Bearer error=\"invalid_token\"")
    );
    // Another scheme is no bearer token, and none was refused.
    let basic = app
        .client
        .get(&me)
        .basic_auth("ann", Some("her password"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(basic.status(), 401);
    assert_eq!(challenge(&basic).as_deref(), Some("Bearer"));
    let login = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({"username": "ann", "password": "not her password"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(login.status(), 401);
    assert_eq!(challenge(&login), None);
    app.stop().await;
}
