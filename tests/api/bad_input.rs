//! Bad input of every kind, table by table: each request gets its precise
//! status and error code in the contract's shape, and nothing is stored.

use bidask_server::clock::{DAY, SECOND, format_micros, now_micros};
use bidask_tests::ws::raw_request;
use bidask_tests::{Backend, JWT_SECRET, TestApp, Trader, on_both_backends, rust_words, spawn_app};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    bad_orders_are_refused_and_nothing_is_stored,
    bad_tokens_are_refused_and_nothing_is_stored,
    bad_registrations_and_amendments_are_refused_and_change_nothing,
    oversized_bodies_unknown_routes_and_wrong_methods_answer_in_json,
    bodies_declared_too_large_or_unreadable_are_refused_at_once,
    bodies_that_are_not_utf8_are_not_json,
);

/// One request and the error it must get.
struct Case {
    /// What is wrong with the request, for the failure report.
    what: String,
    method: Method,
    path: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
    /// The field a 422 names.
    field: Option<&'static str>,
}

impl Case {
    fn new(
        what: impl Into<String>,
        method: Method,
        path: impl Into<String>,
        token: Option<&str>,
        body: Option<String>,
        (status, code): (u16, &'static str),
    ) -> Self {
        Self {
            what: what.into(),
            method,
            path: path.into(),
            token: token.map(str::to_owned),
            headers: Vec::new(),
            body,
            status,
            code,
            field: None,
        }
    }

    /// A 422 naming `field`.
    fn invalid(
        what: impl Into<String>,
        method: Method,
        path: impl Into<String>,
        token: Option<&str>,
        body: String,
        field: &'static str,
    ) -> Self {
        Self {
            field: Some(field),
            ..Self::new(
                what,
                method,
                path,
                token,
                Some(body),
                (422, "validation_failed"),
            )
        }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Sends every case and describes each answer that is not the expected one.
async fn failures(app: &TestApp, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let reply = app
            .send(
                case.method.clone(),
                &case.path,
                case.token.as_deref(),
                case.body.clone(),
                &headers,
            )
            .await;
        let error = &reply.body["error"];
        let in_contract_shape = reply.body.as_object().is_some_and(|body| body.len() == 1)
            && error["code"].is_string()
            && error["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty());
        let field_as_expected = match case.field {
            Some(field) => error["field"] == field,
            None => error.get("field").is_none(),
        };
        let rust = error["message"].as_str().and_then(rust_words);
        if reply.status != case.status
            || rust.is_some()
            || reply.code() != case.code
            || !in_contract_shape
            || !field_as_expected
        {
            let body = case.body.as_deref().map_or_else(
                || "no body".to_owned(),
                |body| {
                    if body.len() > 200 {
                        format!("a body of {} bytes", body.len())
                    } else {
                        format!("body {body:?}")
                    }
                },
            );
            let rust = rust.map_or_else(String::new, |phrase| {
                format!(" (a message in Rust's words: {phrase:?})")
            });
            failures.push(format!(
                "{}: {} {} with {body}: expected {} {} (field {:?}), got {} {}{rust}",
                case.what,
                case.method,
                case.path,
                case.status,
                case.code,
                case.field,
                reply.status,
                reply.body,
            ));
        }
    }
    failures
}

fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} problems with {cases} bad requests (a wrong answer, or something stored):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A market with something on its book, a second one with a 0.05 tick,
/// a trader who has placed nothing, and a maker who has.
struct Setup {
    app: TestApp,
    product: i64,
    nickel: i64,
    trader: Trader,
    maker: Trader,
    maker_order: i64,
}

async fn setup(backend: Backend) -> Setup {
    let mut app = spawn_app(backend).await;
    let product = app.create_product("AJ1-CHI", &["10", "10.5"]).await;
    let token = app.admin_token().await;
    let nickel = app
        .post(
            "/api/v1/products",
            Some(&token),
            &json!({"sku": "NICKEL", "name": "Nickel Dunk", "brand": "Nike",
                    "sizes": ["10"], "tick_size": "0.05"}),
        )
        .await;
    assert_eq!(nickel.status, 201, "{:?}", nickel.body);
    let nickel = nickel.body["id"].as_i64().expect("an id");
    let maker = app.register("maker").await;
    let trader = app.register("trader").await;
    let ask = app.order(&maker, "ask", product, "10", "300.00").await;
    assert_eq!(ask.status, 201, "{:?}", ask.body);
    let bid = app.order(&maker, "bid", nickel, "10", "100.05").await;
    assert_eq!(bid.status, 201, "{:?}", bid.body);
    Setup {
        maker_order: ask.body["order"]["id"].as_i64().expect("an id"),
        app,
        product,
        nickel,
        trader,
        maker,
    }
}

/// Everything a stray order could change: both books, both products'
/// summaries, and the trader's and maker's orders and matches.
async fn state(setup: &Setup) -> Value {
    let app = &setup.app;
    let mut state = serde_json::Map::new();
    for (name, product) in [("product", setup.product), ("nickel", setup.nickel)] {
        state.insert(format!("{name} book"), app.book(product, "10").await);
        state.insert(
            format!("{name} summary"),
            app.get(&format!("/api/v1/products/{product}"), None)
                .await
                .body,
        );
    }
    state.insert(
        "other size".to_owned(),
        app.book(setup.product, "10.5").await,
    );
    for trader in [&setup.trader, &setup.maker] {
        for list in ["orders", "matches"] {
            let reply = app
                .get(&format!("/api/v1/{list}"), Some(&trader.token))
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            state.insert(format!("{} {list}", trader.username), reply.body);
        }
    }
    Value::Object(state)
}

/// Describes whatever changed since `before`: the trader must have placed
/// nothing, and nobody else's orders, the books or summaries may change.
async fn changes_since(setup: &Setup, before: &Value) -> Vec<String> {
    let after = state(setup).await;
    let mut changes = Vec::new();
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for (name, was) in before {
            let now = &after[name];
            if now != was {
                changes.push(format!("stored by mistake: {name} was {was}, is now {now}"));
            }
        }
    }
    changes
}

async fn bad_orders_are_refused_and_nothing_is_stored(backend: Backend) {
    let setup = setup(backend).await;
    let before = state(&setup).await;
    let token = Some(setup.trader.token.as_str());
    let product = setup.product;
    let nickel = setup.nickel;
    let unknown = product + nickel + 1_000;
    let now = now_micros();
    let past = format_micros(now - 60 * SECOND);
    let too_far = format_micros(now + 366 * DAY);

    let mut cases = Vec::new();
    let bid = |what: &str, body: String, status_code: (u16, &'static str)| {
        Case::new(
            what,
            Method::POST,
            "/api/v1/bids",
            token,
            Some(body),
            status_code,
        )
    };
    let invalid_bid = |what: &str, body: String, field: &'static str| {
        Case::invalid(what, Method::POST, "/api/v1/bids", token, body, field)
    };
    let invalid_ask = |what: &str, body: String, field: &'static str| {
        Case::invalid(what, Method::POST, "/api/v1/asks", token, body, field)
    };
    // A valid order with `fields` replaced (a `null` removes the field).
    let order = |product: i64, fields: Value| {
        let mut body = json!({"product_id": product, "size": "10", "price": "210.00"});
        if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
            for (name, value) in fields {
                if value.is_null() {
                    body.remove(&name);
                } else {
                    body.insert(name, value);
                }
            }
        }
        body.to_string()
    };
    let with = |fields: Value| order(product, fields);

    let malformed = (400, "malformed_json");
    cases.push(bid(
        "truncated JSON",
        "{\"product_id\": ".to_owned(),
        malformed,
    ));
    cases.push(bid(
        "text after the JSON",
        format!("{} x", with(json!({}))),
        malformed,
    ));
    cases.push(bid(
        "not JSON at all",
        "product_id=1&size=10".to_owned(),
        malformed,
    ));
    cases.push(bid(
        "single quotes",
        "{'product_id': 1}".to_owned(),
        malformed,
    ));
    cases.push(bid("empty body", String::new(), malformed));
    cases.push(invalid_bid("an empty array", "[]".to_owned(), "body"));
    cases.push(invalid_bid(
        "an array of an order",
        format!("[{}]", with(json!({}))),
        "body",
    ));
    cases.push(invalid_bid(
        "an array of the fields in order",
        format!("[{product}, \"10\", \"210.00\", 1, \"gtc\", null]"),
        "body",
    ));
    cases.push(invalid_bid("a string", "\"bid\"".to_owned(), "body"));
    cases.push(invalid_bid("null", "null".to_owned(), "body"));
    cases.push(invalid_bid("a number", "42".to_owned(), "body"));

    for (what, fields, field) in [
        ("quantity is a word", json!({"quantity": "x"}), "quantity"),
        (
            "product_id is a word",
            json!({"product_id": "abc"}),
            "product_id",
        ),
        (
            "product_id is a fraction",
            json!({"product_id": 1.5}),
            "product_id",
        ),
        (
            "product_id is an object",
            json!({"product_id": {"id": 1}}),
            "product_id",
        ),
        ("price is a boolean", json!({"price": true}), "price"),
        (
            "price is an object",
            json!({"price": {"amount": "210.00"}}),
            "price",
        ),
        ("price is an array", json!({"price": ["210.00"]}), "price"),
        ("size is an array", json!({"size": []}), "size"),
        ("size is a boolean", json!({"size": false}), "size"),
        ("size is an object", json!({"size": {}}), "size"),
        (
            "product_id is missing",
            json!({"product_id": null}),
            "product_id",
        ),
        ("size is missing", json!({"size": null}), "size"),
        ("price is missing", json!({"price": null}), "price"),
        ("price is zero", json!({"price": "0"}), "price"),
        ("price is zero as a number", json!({"price": 0}), "price"),
        ("price is 0.00", json!({"price": "0.00"}), "price"),
        ("price is negative", json!({"price": "-5.00"}), "price"),
        (
            "price is a negative number",
            json!({"price": -210}),
            "price",
        ),
        (
            "price has too many decimals",
            json!({"price": "210.001"}),
            "price",
        ),
        (
            "price number has too many decimals",
            json!({"price": 210.001}),
            "price",
        ),
        (
            "price has more decimals than a decimal holds",
            json!({"price": "210.000000000000000000000000001"}),
            "price",
        ),
        (
            "price in scientific notation has more digits than a decimal holds",
            json!({"price": "2.10000000000000000000000000001e2"}),
            "price",
        ),
        (
            "price is above the ceiling",
            json!({"price": "1000000.01"}),
            "price",
        ),
        ("price is a huge number", json!({"price": 1e30}), "price"),
        ("price is a huge string", json!({"price": "1e30"}), "price"),
        (
            "price is far above the ceiling",
            json!({"price": 1_000_001}),
            "price",
        ),
        ("price is a word", json!({"price": "abc"}), "price"),
        ("price is empty", json!({"price": ""}), "price"),
        (
            "price has two points",
            json!({"price": "210.00.00"}),
            "price",
        ),
        (
            "price has a currency sign",
            json!({"price": "$210"}),
            "price",
        ),
        ("price is NaN", json!({"price": "NaN"}), "price"),
        (
            "price has a digit separator",
            json!({"price": "2_10.00"}),
            "price",
        ),
        (
            "price ends in a separator",
            json!({"price": "210_"}),
            "price",
        ),
        // `i32::MIN` is the one exponent whose `abs()` overflows: a bound
        // written that way let it through, to a panic in a debug build
        // and a string of 2 GiB in a release one (or 0.5 for `.5e…`).
        (
            "price's exponent is the smallest 32-bit integer",
            json!({"price": "1e-2147483648"}),
            "price",
        ),
        (
            "price of a fraction times the smallest exponent",
            json!({"price": ".5e-2147483648"}),
            "price",
        ),
        ("quantity is zero", json!({"quantity": 0}), "quantity"),
        ("quantity is negative", json!({"quantity": -1}), "quantity"),
        (
            "quantity is above 10000",
            json!({"quantity": 10_001}),
            "quantity",
        ),
        (
            "quantity is a fraction",
            json!({"quantity": 1.5}),
            "quantity",
        ),
        (
            "quantity overflows 32 bits",
            json!({"quantity": 4_294_967_297_i64}),
            "quantity",
        ),
        (
            "product_id is unknown",
            json!({"product_id": unknown}),
            "product_id",
        ),
        ("product_id is zero", json!({"product_id": 0}), "product_id"),
        (
            "product_id is negative",
            json!({"product_id": -1}),
            "product_id",
        ),
        ("size is unknown", json!({"size": "99"}), "size"),
        ("size is empty", json!({"size": ""}), "size"),
        ("size of another product", json!({"size": "11"}), "size"),
        (
            "time_in_force is unknown",
            json!({"time_in_force": "day"}),
            "time_in_force",
        ),
        (
            "time_in_force is a number",
            json!({"time_in_force": 1}),
            "time_in_force",
        ),
        (
            "expires_at is in the past",
            json!({"expires_at": past}),
            "expires_at",
        ),
        (
            "expires_at is a word",
            json!({"expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            "expires_at is a date only",
            json!({"expires_at": "2030-01-01"}),
            "expires_at",
        ),
        (
            "expires_at has no offset",
            json!({"expires_at": "2030-01-01T00:00:00"}),
            "expires_at",
        ),
        (
            "expires_at is a number",
            json!({"expires_at": 1_900_000_000}),
            "expires_at",
        ),
        (
            "expires_at is more than 365 days away",
            json!({"expires_at": too_far}),
            "expires_at",
        ),
    ] {
        cases.push(invalid_bid(what, with(fields), field));
    }
    let huge_quantity =
        with(json!({"quantity": 0})).replace("\"quantity\":0", "\"quantity\":99999999999999999999");
    cases.push(invalid_bid(
        "quantity overflows 64 bits",
        huge_quantity,
        "quantity",
    ));
    cases.push(invalid_ask(
        "price as a number with the smallest 32-bit exponent",
        format!(r#"{{"product_id":{product},"size":"10","price":250e-2147483648}}"#),
        "price",
    ));
    // With a key, the request's hash reads the price first of all.
    cases.push(
        invalid_bid(
            "price's exponent is the smallest 32-bit integer, with a key",
            with(json!({"price": "1e-2147483648"})),
            "price",
        )
        .header("idempotency-key", "smallest-exponent"),
    );
    cases.push(invalid_bid(
        "off the 0.05 tick",
        order(nickel, json!({"price": "210.03"})),
        "price",
    ));
    cases.push(invalid_bid(
        "off the 0.05 tick as a number",
        order(nickel, json!({"price": 100.01})),
        "price",
    ));

    cases.push(invalid_ask(
        "ask without a price",
        with(json!({"price": null})),
        "price",
    ));
    cases.push(invalid_ask(
        "ask of no units",
        with(json!({"quantity": 0})),
        "quantity",
    ));
    cases.push(invalid_ask(
        "ask at a negative price",
        with(json!({"price": "-1"})),
        "price",
    ));
    cases.push(invalid_ask(
        "ask off the 0.05 tick",
        order(nickel, json!({"price": "300.01"})),
        "price",
    ));
    cases.push(invalid_ask(
        "ask with an unknown time_in_force",
        with(json!({"time_in_force": "GTC"})),
        "time_in_force",
    ));
    cases.push(Case::new(
        "ask that is not JSON",
        Method::POST,
        "/api/v1/asks",
        token,
        Some("{\"price\": 1,,}".to_owned()),
        malformed,
    ));

    let mut found = failures(&setup.app, &cases).await;
    found.extend(changes_since(&setup, &before).await);
    assert_no_failures(&found, cases.len());
    setup.app.stop().await;
}

/// Base64url without padding, as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = (u32::from(group[0]) << 16) | (u32::from(group[1]) << 8) | u32::from(group[2]);
        for index in 0..=chunk.len() {
            let sextet = (bits >> (18 - 6 * index)) & 0x3f;
            text.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    text
}

/// The bytes of unpadded base64url text.
fn base64url_decode(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> u32 {
        match byte {
            b'A'..=b'Z' => u32::from(byte - b'A'),
            b'a'..=b'z' => u32::from(byte - b'a') + 26,
            b'0'..=b'9' => u32::from(byte - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            other => panic!("{:?} is not base64url", char::from(other)),
        }
    };
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let bits = chunk.iter().enumerate().fold(0u32, |bits, (index, byte)| {
            bits | (value(*byte) << (18 - 6 * index))
        });
        for index in 0..chunk.len().saturating_sub(1) {
            bytes.push(((bits >> (16 - 8 * index)) & 0xff) as u8);
        }
    }
    bytes
}

/// Seconds since the epoch.
fn now_seconds() -> i64 {
    now_micros() / SECOND
}

/// A token of `claims` signed with `secret` by `algorithm`.
fn signed(claims: &Value, secret: &str, algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}

/// The claims the server itself would issue to `user_id`.
fn claims(user_id: i64, role: &str) -> Value {
    let now = now_seconds();
    json!({"sub": user_id.to_string(), "role": role, "iat": now, "exp": now + 3_600})
}

async fn bad_tokens_are_refused_and_nothing_is_stored(backend: Backend) {
    let setup = setup(backend).await;
    let before = state(&setup).await;
    let trader = &setup.trader;
    let body = json!({"product_id": setup.product, "size": "10", "price": "310.00"}).to_string();

    // The tokens below must be well formed apart from what each breaks:
    // this one, signed properly, is accepted.
    let control = signed(&claims(trader.id, "trader"), JWT_SECRET, Algorithm::HS256);
    let me = setup.app.get("/api/v1/me", Some(&control)).await;
    assert_eq!(
        me.status, 200,
        "a hand-made valid token works: {:?}",
        me.body
    );
    assert_eq!(me.body["id"], trader.id);
    // So is one with only the claims the contract names, `sub` written as
    // a string or as the integer it is.
    let exp = now_seconds() + 3_600;
    for sub in [json!(trader.id.to_string()), json!(trader.id)] {
        let minimal = signed(
            &json!({"sub": sub, "role": "trader", "exp": exp}),
            JWT_SECRET,
            Algorithm::HS256,
        );
        let me = setup.app.get("/api/v1/me", Some(&minimal)).await;
        assert_eq!(
            (me.status, &me.body["id"]),
            (200, &json!(trader.id)),
            "{sub}"
        );
    }

    let alg_none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(claims(trader.id, "trader").to_string().as_bytes()),
    );
    let alg_none_admin = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(claims(trader.id, "admin").to_string().as_bytes()),
    );
    let now = now_seconds();
    let expired = signed(
        &json!({"sub": trader.id.to_string(), "role": "trader", "iat": now - 7_200, "exp": now - 60}),
        JWT_SECRET,
        Algorithm::HS256,
    );
    let expired_minimal = signed(
        &json!({"sub": trader.id, "role": "trader", "exp": now - 60}),
        JWT_SECRET,
        Algorithm::HS256,
    );
    let wrong_secret = signed(
        &claims(trader.id, "trader"),
        "another-secret-another-secret-another!",
        Algorithm::HS256,
    );
    let other_algorithm = signed(&claims(trader.id, "trader"), JWT_SECRET, Algorithm::HS512);
    let unknown_user = signed(
        &claims(trader.id + 1_000, "trader"),
        JWT_SECRET,
        Algorithm::HS256,
    );
    let word_subject = signed(
        &json!({"sub": "trader", "role": "trader", "iat": now, "exp": now + 3_600}),
        JWT_SECRET,
        Algorithm::HS256,
    );
    let no_expiry = signed(
        &json!({"sub": trader.id.to_string(), "role": "trader", "iat": now}),
        JWT_SECRET,
        Algorithm::HS256,
    );

    // The trader's own token, made an admin's by changing its payload.
    let parts: Vec<&str> = trader.token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let payload = String::from_utf8(base64url_decode(parts[1])).expect("a UTF-8 payload");
    let admin_payload = payload.replace("\"trader\"", "\"admin\"");
    assert_ne!(
        payload, admin_payload,
        "the payload names the role: {payload}"
    );
    let tampered_role = format!(
        "{}.{}.{}",
        parts[0],
        base64url(admin_payload.as_bytes()),
        parts[2]
    );
    let other_user_payload = payload.replace(
        &format!("\"{}\"", trader.id),
        &format!("\"{}\"", setup.maker.id),
    );
    assert_ne!(
        payload, other_user_payload,
        "the payload names the user: {payload}"
    );
    let tampered_user = format!(
        "{}.{}.{}",
        parts[0],
        base64url(other_user_payload.as_bytes()),
        parts[2]
    );
    let mut signature = parts[2].to_owned();
    let last = signature.pop().expect("a signature");
    signature.push(if last == 'A' { 'B' } else { 'A' });
    let tampered_signature = format!("{}.{}.{signature}", parts[0], parts[1]);
    let unsigned = format!("{}.{}.", parts[0], parts[1]);

    let invalid = (401, "invalid_token");
    let mut cases = vec![Case::new(
        "no Authorization header",
        Method::POST,
        "/api/v1/bids",
        None,
        Some(body.clone()),
        (401, "missing_token"),
    )];
    for (what, header, expected) in [
        (
            "a garbage bearer token",
            "Bearer garbage".to_owned(),
            invalid,
        ),
        ("an empty bearer token", "Bearer ".to_owned(), invalid),
        // Another scheme sends no bearer token (RFC 6750, 3.1).
        (
            "Basic credentials",
            "Basic dHJhZGVyOnBhc3N3b3Jk".to_owned(),
            (401, "missing_token"),
        ),
        (
            "a token without a scheme",
            trader.token.clone(),
            (401, "missing_token"),
        ),
        ("alg none", format!("Bearer {alg_none}"), invalid),
        (
            "an expired token",
            format!("Bearer {expired}"),
            (401, "token_expired"),
        ),
        (
            "an expired token with only the contract's claims",
            format!("Bearer {expired_minimal}"),
            (401, "token_expired"),
        ),
        (
            "a token signed with another secret",
            format!("Bearer {wrong_secret}"),
            invalid,
        ),
        (
            "a token signed with HS512",
            format!("Bearer {other_algorithm}"),
            invalid,
        ),
        (
            "a token of a user that does not exist",
            format!("Bearer {unknown_user}"),
            invalid,
        ),
        (
            "a token whose sub is not an id",
            format!("Bearer {word_subject}"),
            invalid,
        ),
        (
            "a token without exp",
            format!("Bearer {no_expiry}"),
            invalid,
        ),
        (
            "a token whose role was changed",
            format!("Bearer {tampered_role}"),
            invalid,
        ),
        (
            "a token whose user was changed",
            format!("Bearer {tampered_user}"),
            invalid,
        ),
        (
            "a token whose signature was changed",
            format!("Bearer {tampered_signature}"),
            invalid,
        ),
        (
            "a token without its signature",
            format!("Bearer {unsigned}"),
            invalid,
        ),
    ] {
        cases.push(
            Case::new(
                what,
                Method::POST,
                "/api/v1/bids",
                None,
                Some(body.clone()),
                expected,
            )
            .header("authorization", &header),
        );
    }
    // Two good tokens of two users: the server does not pick one.
    cases.push(
        Case::new(
            "two Authorization headers",
            Method::POST,
            "/api/v1/bids",
            Some(&setup.trader.token),
            Some(body.clone()),
            invalid,
        )
        .header("authorization", &format!("Bearer {}", setup.maker.token)),
    );
    let product =
        json!({"sku": "FORGED", "name": "Forged", "brand": "Nike", "sizes": ["9"]}).to_string();
    for (what, token) in [
        (
            "create a product with a role-tampered token",
            &tampered_role,
        ),
        (
            "create a product with an alg none admin token",
            &alg_none_admin,
        ),
    ] {
        cases.push(
            Case::new(
                what,
                Method::POST,
                "/api/v1/products",
                None,
                Some(product.clone()),
                invalid,
            )
            .header("authorization", &format!("Bearer {token}")),
        );
    }
    cases.push(
        Case::new(
            "GET /me with alg none",
            Method::GET,
            "/api/v1/me",
            None,
            None,
            invalid,
        )
        .header("authorization", &format!("Bearer {alg_none}")),
    );
    cases.push(
        Case::new(
            "GET /orders with a tampered user",
            Method::GET,
            "/api/v1/orders",
            None,
            None,
            invalid,
        )
        .header("authorization", &format!("Bearer {tampered_user}")),
    );

    let mut found = failures(&setup.app, &cases).await;
    found.extend(changes_since(&setup, &before).await);
    let products = setup.app.get("/api/v1/products?q=forged", None).await;
    assert_eq!(products.body["items"], json!([]), "no forged product");
    assert_no_failures(&found, cases.len());
    setup.app.stop().await;
}

/// How many accounts the database holds.
async fn users(app: &TestApp) -> i64 {
    let mut connection = app
        .database
        .as_ref()
        .expect("the test's database")
        .connect()
        .await;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&mut connection)
        .await
        .expect("the count");
    count
}

async fn bad_registrations_and_amendments_are_refused_and_change_nothing(backend: Backend) {
    let setup = setup(backend).await;
    let app = &setup.app;
    let before = state(&setup).await;
    let users_before = users(app).await;
    let maker_order_before = app
        .get(
            &format!("/api/v1/orders/{}", setup.maker_order),
            Some(&setup.maker.token),
        )
        .await
        .body;

    let register = |what: &str, body: String, field: &'static str| {
        Case::invalid(
            what,
            Method::POST,
            "/api/v1/auth/register",
            None,
            body,
            field,
        )
    };
    let mut cases = vec![
        register(
            "a username too short",
            json!({"username": "ab", "password": "long-enough-password"}).to_string(),
            "username",
        ),
        register(
            "a username too long",
            json!({"username": "a".repeat(33), "password": "long-enough-password"}).to_string(),
            "username",
        ),
        register(
            "a username with a space",
            json!({"username": "carol smith", "password": "long-enough-password"}).to_string(),
            "username",
        ),
        register(
            "a username that is a number",
            json!({"username": 12345, "password": "long-enough-password"}).to_string(),
            "username",
        ),
        register(
            "a password too short",
            json!({"username": "carol", "password": "short"}).to_string(),
            "password",
        ),
        register(
            "a password too long",
            json!({"username": "carol", "password": "p".repeat(129)}).to_string(),
            "password",
        ),
        register(
            "no password",
            json!({"username": "carol"}).to_string(),
            "password",
        ),
        register(
            "no username",
            json!({"password": "long-enough-password"}).to_string(),
            "username",
        ),
        register("an array", "[]".to_owned(), "body"),
        register(
            "an array of the fields in order",
            json!(["positional", "long-enough-password"]).to_string(),
            "body",
        ),
        Case::new(
            "registration that is not JSON",
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some("{\"username\": \"carol\",".to_owned()),
            (400, "malformed_json"),
        ),
    ];

    let maker = Some(setup.maker.token.as_str());
    let order_path = format!("/api/v1/orders/{}", setup.maker_order);
    let amend = |what: &str, body: String, field: &'static str| {
        Case::invalid(what, Method::PATCH, order_path.clone(), maker, body, field)
    };
    for (what, body, field) in [
        ("amend with an empty object", json!({}), "body"),
        (
            "amend a price that is a word",
            json!({"price": "abc"}),
            "price",
        ),
        (
            "amend a price too precise",
            json!({"price": "300.001"}),
            "price",
        ),
        ("amend a price of zero", json!({"price": 0}), "price"),
        ("amend a negative price", json!({"price": "-300"}), "price"),
        (
            "amend a price above the ceiling",
            json!({"price": "1000000.01"}),
            "price",
        ),
        (
            "amend a price that is a boolean",
            json!({"price": true}),
            "price",
        ),
        ("amend to no units", json!({"quantity": 0}), "quantity"),
        (
            "amend to more than 10000",
            json!({"quantity": 10_001}),
            "quantity",
        ),
        (
            "amend a fractional quantity",
            json!({"quantity": 1.5}),
            "quantity",
        ),
        (
            "amend a quantity that is a word",
            json!({"quantity": "x"}),
            "quantity",
        ),
        (
            "amend a valid price with a bad quantity",
            json!({"price": "301.00", "quantity": -1}),
            "quantity",
        ),
        ("amend with an array", json!([]), "body"),
        (
            "amend with an array of the fields in order",
            json!(["301.00", 2]),
            "body",
        ),
    ] {
        cases.push(amend(what, body.to_string(), field));
    }
    for (what, body) in [
        ("amend with broken JSON", "{\"price\": "),
        ("amend with an empty body", ""),
    ] {
        cases.push(Case::new(
            what,
            Method::PATCH,
            order_path.clone(),
            maker,
            Some(body.to_owned()),
            (400, "malformed_json"),
        ));
    }
    // `%FF` does not decode to UTF-8: still JSON, not axum's plain text.
    for id in ["abc", "1.5", "-1", "%FF"] {
        cases.push(Case::new(
            format!("amend order {id}"),
            Method::PATCH,
            format!("/api/v1/orders/{id}"),
            maker,
            Some(json!({"price": "301.00"}).to_string()),
            (404, "not_found"),
        ));
        cases.push(Case::new(
            format!("cancel order {id}"),
            Method::DELETE,
            format!("/api/v1/orders/{id}"),
            maker,
            None,
            (404, "not_found"),
        ));
    }
    cases.push(Case::new(
        "the trader amends the maker's order",
        Method::PATCH,
        order_path.clone(),
        Some(setup.trader.token.as_str()),
        Some(json!({"price": "301.00"}).to_string()),
        (404, "not_found"),
    ));
    cases.push(Case::new(
        "the trader cancels the maker's order",
        Method::DELETE,
        order_path.clone(),
        Some(setup.trader.token.as_str()),
        None,
        (404, "not_found"),
    ));
    cases.push(Case::new(
        "amend without a token",
        Method::PATCH,
        order_path.clone(),
        None,
        Some(json!({"price": "301.00"}).to_string()),
        (401, "missing_token"),
    ));

    let mut found = failures(app, &cases).await;
    found.extend(changes_since(&setup, &before).await);
    let maker_order_after = app.get(&order_path, Some(&setup.maker.token)).await.body;
    if maker_order_after != maker_order_before {
        found.push(format!(
            "stored by mistake: the maker's order was {maker_order_before}, is now {maker_order_after}"
        ));
    }

    // None of the refused registrations created an account.
    let users_after = users(app).await;
    if users_after != users_before {
        found.push(format!(
            "stored by mistake: {users_before} accounts before the refused registrations, {users_after} after"
        ));
    }
    let carol_login = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "carol", "password": "short"}),
        )
        .await;
    assert_eq!(carol_login.status, 401, "{:?}", carol_login.body);
    let carol = app.register("carol").await;
    assert!(carol.id > setup.trader.id);
    let positional_login = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "positional", "password": "long-enough-password"}),
        )
        .await;
    if positional_login.status != 401 {
        found.push(format!(
            "stored by mistake: the positional registration made an account that logs in: {} {}",
            positional_login.status, positional_login.body
        ));
    }
    assert_no_failures(&found, cases.len());
    setup.app.stop().await;
}

async fn oversized_bodies_unknown_routes_and_wrong_methods_answer_in_json(backend: Backend) {
    let setup = setup(backend).await;
    let before = state(&setup).await;
    let token = Some(setup.trader.token.as_str());
    let padding = "x".repeat(17 * 1024);
    let oversized_order = json!({
        "product_id": setup.product,
        "size": "10",
        "price": "210.00",
        "note": padding,
    })
    .to_string();
    let oversized_user = json!({"username": "padded", "password": padding}).to_string();
    let too_large = (413, "payload_too_large");
    let not_found = (404, "not_found");
    let wrong_method = (405, "method_not_allowed");
    let cases = vec![
        Case::new(
            "a bid over 16 KiB",
            Method::POST,
            "/api/v1/bids",
            token,
            Some(oversized_order.clone()),
            too_large,
        ),
        Case::new(
            "an ask over 16 KiB",
            Method::POST,
            "/api/v1/asks",
            token,
            Some(oversized_order),
            too_large,
        ),
        Case::new(
            "a registration over 16 KiB",
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(oversized_user),
            too_large,
        ),
        Case::new(
            "a product id that is not UTF-8",
            Method::GET,
            "/api/v1/products/%FF",
            None,
            None,
            not_found,
        ),
        Case::new(
            "the book of a product id that is not UTF-8",
            Method::GET,
            "/api/v1/products/%FF/book?size=10",
            None,
            None,
            not_found,
        ),
        Case::new(
            "an order id that is not UTF-8",
            Method::GET,
            "/api/v1/orders/%FF",
            token,
            None,
            not_found,
        ),
        Case::new(
            "an unknown API route",
            Method::GET,
            "/api/v1/nope",
            None,
            None,
            not_found,
        ),
        Case::new(
            "an unknown route",
            Method::GET,
            "/nope",
            None,
            None,
            not_found,
        ),
        Case::new(
            "POST to an unknown API route",
            Method::POST,
            "/api/v1/bid",
            token,
            Some("{}".to_owned()),
            not_found,
        ),
        Case::new(
            "an unknown version",
            Method::GET,
            "/api/v2/products",
            None,
            None,
            not_found,
        ),
        Case::new(
            "PUT /bids",
            Method::PUT,
            "/api/v1/bids",
            token,
            Some("{}".to_owned()),
            wrong_method,
        ),
        Case::new(
            "GET /bids",
            Method::GET,
            "/api/v1/bids",
            token,
            None,
            wrong_method,
        ),
        Case::new(
            "DELETE /products",
            Method::DELETE,
            "/api/v1/products",
            token,
            None,
            wrong_method,
        ),
        Case::new(
            "POST /me",
            Method::POST,
            "/api/v1/me",
            token,
            Some("{}".to_owned()),
            wrong_method,
        ),
        Case::new(
            "PUT /orders/{id}",
            Method::PUT,
            format!("/api/v1/orders/{}", setup.maker_order),
            token,
            Some("{}".to_owned()),
            wrong_method,
        ),
        Case::new(
            "POST /healthz",
            Method::POST,
            "/healthz",
            None,
            None,
            wrong_method,
        ),
    ];
    let mut found = failures(&setup.app, &cases).await;
    found.extend(changes_since(&setup, &before).await);
    let padded = setup
        .app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "padded", "password": "long-enough-password"}),
        )
        .await;
    assert_eq!(
        padded.status, 401,
        "no account from an oversized registration"
    );
    assert_no_failures(&found, cases.len());
    setup.app.stop().await;
}

/// A body declared over the limit is refused before any of it is read
/// (not after the request timed out, and without a `100 Continue` first),
/// and one that cannot be read is a 400, not a 413.
async fn bodies_declared_too_large_or_unreadable_are_refused_at_once(backend: Backend) {
    let setup = setup(backend).await;
    let before = state(&setup).await;
    let authority = setup.app.address.trim_start_matches("http://").to_owned();
    let token = &setup.trader.token;
    let status_of = |head: &str| head.split(' ').nth(1).unwrap_or_default().to_owned();

    let declared = format!(
        "POST /api/v1/bids HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n"
    );
    let started = std::time::Instant::now();
    let (head, _stream) = raw_request(&authority, &declared).await;
    assert_eq!(status_of(&head), "413", "{head}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused at once, not when the request timed out"
    );

    let expecting = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: {authority}\r\nExpect: 100-continue\r\n\
         Content-Type: application/json\r\nContent-Length: 20000\r\n\r\n"
    );
    let (head, _stream) = raw_request(&authority, &expecting).await;
    assert_eq!(status_of(&head), "413", "not a 100 Continue first: {head}");

    let garbled = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {authority}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n\r\n0\r\n\r\n"
    );
    let (head, mut stream) = raw_request(&authority, &garbled).await;
    assert_eq!(status_of(&head), "400", "{head}");
    let mut body = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut body),
    )
    .await
    .expect("the body in time")
    .expect("the body");
    assert!(body.contains("\"malformed_request\""), "{body}");

    assert_eq!(state(&setup).await, before, "nothing was stored");
    setup.app.stop().await;
}

/// JSON is UTF-8: a body with a byte that is not is malformed (400), in a
/// field the API reads or in one it ignores, and nothing is stored. (The
/// cases are bytes, which the table's `String` bodies cannot hold.)
async fn bodies_that_are_not_utf8_are_not_json(backend: Backend) {
    let setup = setup(backend).await;
    let before = state(&setup).await;
    let app = &setup.app;
    // Each bid would cross the maker's ask at 300.00 if it were taken.
    let bid = |rest: &[u8]| {
        [
            format!(r#"{{"product_id": {}, "#, setup.product).as_bytes(),
            rest,
        ]
        .concat()
    };
    let cases = [
        (
            "a size that is not UTF-8",
            "/api/v1/bids",
            bid(b"\"size\": \"10\xff\", \"price\": \"310.00\"}"),
        ),
        (
            "a field the API ignores that is not UTF-8",
            "/api/v1/bids",
            bid(b"\"size\": \"10\", \"price\": \"310.00\", \"note\": \"\xc3\x28\"}"),
        ),
        (
            "a name cut inside a character",
            "/api/v1/auth/register",
            b"{\"username\": \"ren\xc3\", \"password\": \"long enough\"}".to_vec(),
        ),
    ];
    let accounts = users(app).await;
    let mut failures = Vec::new();
    for (what, path, body) in cases {
        let reply = app
            .client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&setup.trader.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = reply.status().as_u16();
        let body: Value = reply.json().await.expect("a JSON body");
        if status != 400 || body["error"]["code"] != "malformed_json" {
            failures.push(format!(
                "{what}: expected 400 malformed_json, got {status} {body}"
            ));
        }
    }
    failures.extend(changes_since(&setup, &before).await);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(users(app).await, accounts, "no account was made");
    setup.app.stop().await;
}
