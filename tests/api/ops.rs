//! The operational endpoints: health, readiness, metrics, the OpenAPI
//! document, request ids, and what start-up refuses.

use bidask_tests::{Backend, TestDatabase, on_both_backends, spawn_app};
use serde_json::json;

on_both_backends!(health_metrics_openapi_and_request_ids);

async fn health_metrics_openapi_and_request_ids(backend: Backend) {
    let mut app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz", None).await.body["status"], "ok");
    assert_eq!(app.get("/readyz", None).await.body["status"], "ready");

    let product = app.create_product("OPS-1", &["10"]).await;
    let ann = app.register("ann").await;
    let placed = app.order(&ann, "ask", product, "10", "100.00").await;
    assert_eq!(placed.status, 201);
    let refused = app.order(&ann, "ask", product, "10", "100.001").await;
    assert_eq!(refused.status, 422);

    // Series that appear with their first event; those there from start
    // are counted in a process of their own (tests/crash), as the
    // recorder is the process's.
    let text = app.metrics().await;
    for name in [
        "bidask_orders_rejected_total{reason=\"validation_failed\"}",
        "bidask_commit_seconds_bucket",
        "bidask_commit_batch_units",
        "bidask_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    assert!(
        text.contains("route=\"/api/v1/asks\""),
        "no per-route latency for /asks"
    );

    let document = app.get("/api/openapi.json", None).await;
    assert_eq!(document.status, 200);
    assert!(
        document.body["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with('3'))
    );
    for path in [
        "/api/v1/bids",
        "/api/v1/asks",
        "/api/v1/orders/{id}",
        "/api/v1/products/{id}/book",
    ] {
        assert!(
            document.body["paths"].get(path).is_some(),
            "OpenAPI lacks {path}"
        );
    }
    assert!(
        document.body["components"]["schemas"]
            .get("OrderView")
            .is_some()
    );
    // The document describes the bodies the server sends, field for field,
    // and marks as required each field always sent (null or not).
    let schemas = &document.body["components"]["schemas"];
    let mut bodies = vec![
        ("PlacedOrder", placed.body.clone()),
        ("OrderView", placed.body["order"].clone()),
    ];
    let id = placed.body["order"]["id"].as_i64().expect("an order id");
    let amended = app
        .patch(
            &format!("/api/v1/orders/{id}"),
            Some(&ann.token),
            &serde_json::json!({"price": "101.00"}),
        )
        .await;
    assert_eq!(amended.status, 200, "{:?}", amended.body);
    bodies.push(("AmendedOrder", amended.body));
    let cancelled = app
        .delete(&format!("/api/v1/orders/{id}"), Some(&ann.token))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    bodies.push(("CancelledOrder", cancelled.body));
    let bob = app.register("bob").await;
    assert_eq!(
        app.order(&bob, "ask", product, "10", "100.00").await.status,
        201
    );
    assert_eq!(
        app.order(&ann, "bid", product, "10", "100.00").await.status,
        201
    );
    let shown = app.get(&format!("/api/v1/products/{product}"), None).await;
    bodies.push(("MarketView", shown.body["markets"][0].clone()));
    bodies.push(("ProductView", shown.body));
    bodies.push((
        "Page_OrderView",
        app.get("/api/v1/orders", Some(&ann.token)).await.body,
    ));
    let notifications = app.get("/api/v1/notifications", Some(&ann.token)).await;
    bodies.push(("Notification", notifications.body["items"][0].clone()));
    bodies.push(("Page_Notification", notifications.body));
    for (name, body) in &bodies {
        let (properties, required) = documented(schemas, name);
        assert_eq!(properties, sent(body), "{name}'s properties");
        assert_eq!(required, sent(body), "{name}'s required fields");
    }

    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok()),
        Some("trace-me-42")
    );
    let generated = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("an answer");
    assert!(
        generated.headers().get("x-request-id").is_some(),
        "no generated request id"
    );
    // A client's id is echoed up to 128 visible characters; an empty or
    // longer one, or two, are replaced by the server's own.
    let echoed = |ids: Vec<String>| {
        let mut request = app.client.get(format!("{}/healthz", app.address));
        for id in &ids {
            request = request.header("x-request-id", id);
        }
        async move {
            let response = request.send().await.expect("an answer");
            let id = response
                .headers()
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
                .expect("a request id");
            ids.contains(&id)
        }
    };
    assert!(echoed(vec!["k".repeat(128)]).await, "128 characters kept");
    assert!(!echoed(vec!["k".repeat(129)]).await, "129 characters kept");
    assert!(!echoed(vec!["a b".to_owned()]).await, "a space kept");
    assert!(!echoed(vec![String::new()]).await, "an empty id kept");
    assert!(
        !echoed(vec!["one".to_owned(), "two".to_owned()]).await,
        "one of two kept"
    );

    // Made-up methods share one label instead of a series each.
    for method in ["FOO1", "FOO2"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method token");
        let answer = app.send(method, "/healthz", None, None, &[]).await;
        assert_eq!(answer.status, 405);
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("method=\"other\""), "no shared label");
    assert!(!metrics.contains("FOO"), "a made-up method became a label");
    app.stop().await;
}

/// CORS for `BIDASK_ALLOWED_ORIGINS`: a listed origin's preflight is
/// answered for it, another origin's is not; `*` answers every origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_allowed_origins_only() {
    async fn preflight(app: &bidask_tests::TestApp, origin: &str) -> Option<String> {
        let response = app
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/bids", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .expect("a preflight answer");
        assert_eq!(response.status(), 200, "{origin}");
        response
            .headers()
            .get("access-control-allow-origin")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    let listed = bidask_tests::spawn_app_on(TestDatabase::new(Backend::Sqlite).await, |config| {
        config.allowed_origins = " https://Shop.Example, http://127.0.0.1:3000,"
            .parse()
            .expect("two origins");
        config.rate_limit_address = 1;
    })
    .await;
    assert_eq!(
        preflight(&listed, "https://shop.example").await.as_deref(),
        Some("https://shop.example")
    );
    assert_eq!(
        preflight(&listed, "http://127.0.0.1:3000").await.as_deref(),
        Some("http://127.0.0.1:3000")
    );
    assert_eq!(preflight(&listed, "https://evil.example").await, None);
    // A page of an allowed origin can read the 429 it gets past its rate.
    let mut limited = None;
    for _ in 0..10 {
        let response = listed
            .client
            .get(format!("{}/healthz", listed.address))
            .header("origin", "https://shop.example")
            .send()
            .await
            .expect("an answer");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a 429 within ten requests at 1/s");
    assert_eq!(
        limited
            .headers()
            .get("access-control-allow-origin")
            .and_then(|value| value.to_str().ok()),
        Some("https://shop.example")
    );
    let exposed = limited
        .headers()
        .get("access-control-expose-headers")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("retry-after")
            && exposed.contains("x-request-id")
            && exposed.contains("location"),
        "the page can read when to retry, and where a 201's resource is: {exposed:?}"
    );
    listed.stop().await;

    let any = bidask_tests::spawn_app_on(TestDatabase::new(Backend::Sqlite).await, |config| {
        config.allowed_origins = "*".parse().expect("any origin");
    })
    .await;
    assert_eq!(
        preflight(&any, "https://evil.example").await.as_deref(),
        Some("*")
    );
    any.stop().await;
}

/// Every answer the API gives is one its OpenAPI document lists: each
/// operation is sent what a client gets wrong most (no token, a body that
/// is not JSON, a body that is not an object, a query value out of range),
/// and whatever status comes back must be among the operation's
/// responses, with the contract's error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_answer_the_api_gives() {
    let app = spawn_app(Backend::Sqlite).await;
    let trader = app.register("documented").await;
    let document = app.get("/api/openapi.json", None).await.body;
    let paths = document["paths"].as_object().expect("paths");
    let mut probes = 0;
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1");
        for (method, operation) in item.as_object().expect("a path item") {
            // What OpenAPI 3.1 requires and code generators rely on: an
            // operation id unique in the document, and a description of
            // every response.
            let operation_id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(operation_id.to_owned()) && !operation_id.is_empty(),
                "{method} {path}: operation id {operation_id:?} missing or used twice"
            );
            for (status, response) in operation["responses"].as_object().expect("responses") {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|text| !text.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
            assert!(
                operation["responses"]["429"]["headers"]
                    .get("Retry-After")
                    .is_some(),
                "{method} {path}: 429 does not name Retry-After"
            );
            if let Some(created) = operation["responses"].get("201") {
                assert!(
                    created["headers"].get("Location").is_some(),
                    "{method} {path}: 201 does not name Location"
                );
            }
            if let Some(unauthorized) = operation["responses"].get("401")
                && operation["security"].is_array()
            {
                assert!(
                    unauthorized["headers"].get("WWW-Authenticate").is_some(),
                    "{method} {path}: 401 does not name WWW-Authenticate"
                );
            }
            let listed = |status: u16| operation["responses"].get(status.to_string()).is_some();
            let secured = operation["security"]
                .as_array()
                .is_some_and(|requirements| !requirements.is_empty());
            let has_body = operation.get("requestBody").is_some();
            let has_limit = operation["parameters"]
                .as_array()
                .is_some_and(|parameters| {
                    parameters
                        .iter()
                        .any(|parameter| parameter["name"] == "limit")
                });
            let method: reqwest::Method = method.to_uppercase().parse().expect("a method");
            // Without a token and a body whatever the document says the
            // operation takes, so that one it marks wrongly is probed too.
            let mut tries: Vec<(String, Option<&str>, Option<String>)> =
                vec![(concrete.clone(), None, None)];
            if has_body {
                tries.push((concrete.clone(), Some(&trader.token), Some("{".to_owned())));
                tries.push((concrete.clone(), Some(&trader.token), Some("[]".to_owned())));
            }
            if has_limit {
                tries.push((format!("{concrete}?limit=0"), Some(&trader.token), None));
            }
            for (target, token, body) in tries {
                let reply = app
                    .send(method.clone(), &target, token, body.clone(), &[])
                    .await;
                probes += 1;
                if secured && token.is_none() {
                    assert_eq!(reply.status, 401, "{method} {target} without a token");
                }
                assert!(
                    listed(reply.status),
                    "{method} {target} with {body:?} answered {} {}, which the document does not list",
                    reply.status,
                    reply.body
                );
                if reply.status >= 400 {
                    assert!(
                        reply.body["error"]["code"].is_string(),
                        "{method} {target}: {}",
                        reply.body
                    );
                }
            }
            for status in [429, 500, 503] {
                assert!(listed(status), "{method} {path} does not list {status}");
            }
            // Every page size and book depth declares the range the
            // server holds it to, so a generated client refuses what the
            // server would.
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let range = match parameter["name"].as_str() {
                    Some("limit") => (1, 100),
                    Some("depth") => (1, 1_000),
                    _ => continue,
                };
                let schema = &parameter["schema"];
                assert_eq!(
                    (schema["minimum"].as_i64(), schema["maximum"].as_i64()),
                    (Some(range.0), Some(range.1)),
                    "{method} {path}: {parameter}"
                );
            }
            // Every response's schema that is a reference names a schema
            // the document has.
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let reference = &response["content"]["application/json"]["schema"]["$ref"];
                if let Some(name) = reference
                    .as_str()
                    .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
                {
                    assert!(
                        document["components"]["schemas"].get(name).is_some(),
                        "{method} {path} {status} refers to a missing schema {name}"
                    );
                }
            }
        }
    }
    assert!(
        probes >= 20,
        "only {probes} probes: the document lost its operations"
    );
    app.stop().await;
}

/// The page and its files: their types, the page's content security
/// policy, and a validator, so a browser that has a file gets a 304
/// rather than the file again.
/// The API's answers carry tokens and a trader's own data: no cache may
/// keep them, and none may be read as another type than it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_are_not_stored_by_caches() {
    let app = spawn_app(Backend::Sqlite).await;
    let trader = app.register("ann").await;
    let credentials = json!({"username": "ann", "password": "password-of-ann"});
    for request in [
        app.client
            .post(format!("{}/api/v1/auth/login", app.address))
            .json(&credentials),
        app.client
            .get(format!("{}/api/v1/me", app.address))
            .bearer_auth(&trader.token),
        app.client.get(format!("{}/api/v1/orders", app.address)),
    ] {
        let response = request.send().await.expect("an answer");
        let headers = response.headers();
        let value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        assert_eq!(
            value("cache-control"),
            Some("no-store"),
            "{}",
            response.url()
        );
        assert_eq!(
            value("x-content-type-options"),
            Some("nosniff"),
            "{}",
            response.url()
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_with_validators() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let product = app.create_product("AJ1-CHI", &["10"]).await;
    let product_page = format!("/products/{product}");
    let fetch = |path: &str, tag: Option<String>| {
        let mut request = app.client.get(format!("{}{path}", app.address));
        if let Some(tag) = tag {
            request = request.header("if-none-match", tag);
        }
        request.send()
    };
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let mut tags = Vec::new();
    let mut page_tag = None;
    for (path, kind) in [
        ("/", "text/html"),
        (product_page.as_str(), "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let first = fetch(path, None).await.expect("an answer");
        assert_eq!(first.status(), 200, "{path}");
        assert!(
            header(&first, "content-type").is_some_and(|value| value.starts_with(kind)),
            "{path}"
        );
        assert_eq!(
            header(&first, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        if kind == "text/html" {
            assert!(
                header(&first, "content-security-policy").is_some_and(|policy| {
                    policy.contains("default-src 'self'") && policy.contains("form-action 'none'")
                }),
                "{path}"
            );
            assert_eq!(
                header(&first, "referrer-policy").as_deref(),
                Some("no-referrer"),
                "{path}"
            );
        }
        let tag = header(&first, "etag").expect("an ETag");
        assert!(!first.bytes().await.expect("a body").is_empty(), "{path}");

        let again = fetch(path, Some(tag.clone())).await.expect("an answer");
        assert_eq!(again.status(), 304, "{path} with its own tag");
        assert_eq!(header(&again, "etag").as_ref(), Some(&tag));
        assert!(again.bytes().await.expect("no body").is_empty(), "{path}");
        // The tag is weak (the file has a gzipped form too); compared
        // weakly, its strong spelling names it as well.
        let strong = tag.strip_prefix("W/").expect("a weak tag").to_owned();
        let listed = fetch(path, Some(format!("\"other\", {strong}")))
            .await
            .expect("an answer");
        assert_eq!(
            listed.status(),
            304,
            "{path} with its tag in a list, strong"
        );
        let stale = fetch(path, Some("\"stale\"".to_owned()))
            .await
            .expect("an answer");
        assert_eq!(stale.status(), 200, "{path} with another tag");
        if path == "/" {
            page_tag = Some(tag.clone());
        }
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 3, "one tag per file: {tags:?}");

    // An address that names no product is the page with a 404, its tag
    // notwithstanding, and without it (a cache must not revalidate a 404
    // into a product's page); one with a trailing slash is sent to its
    // form without. Only digits name a product, as the page reads them.
    let page_tag = page_tag.expect("the page's tag");
    for path in [
        format!("/products/{}", product + 1),
        "/products/abc".to_owned(),
        format!("/products/+{product}"),
    ] {
        let missing = fetch(&path, Some(page_tag.clone()))
            .await
            .expect("an answer");
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(header(&missing, "etag"), None, "{path}");
        assert!(
            header(&missing, "content-security-policy").is_some(),
            "{path}"
        );
        let text = missing.text().await.expect("a body");
        assert!(text.contains("/assets/app.js"), "{path}: {text}");
    }
    let unfollowed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let get = |path: String| unfollowed.get(format!("{}{path}", app.address)).send();
    let slashed = get(format!("{product_page}/")).await.expect("an answer");
    assert_eq!(slashed.status(), 308);
    assert_eq!(header(&slashed, "location"), Some(product_page));
    let odd = get("/products/%2F%2Fexample.com/".to_owned())
        .await
        .expect("an answer");
    assert_eq!(
        (odd.status(), header(&odd, "location")),
        (reqwest::StatusCode::NOT_FOUND, None)
    );
    app.stop().await;
}

/// The page's files go gzipped to a client that takes it, as the same
/// bytes, under the one weak tag both forms share, which revalidates
/// either; every answer says it varies with `Accept-Encoding`, so a cache
/// keeps the two apart. A client that takes neither gets the plain file.
/// The API's answers are not compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_s_files_are_gzipped_for_clients_that_take_it() {
    use std::io::Read;

    let mut app = spawn_app(Backend::Sqlite).await;
    let product = app.create_product("AJ1-GZ", &["10"]).await;
    let fetch = |path: &str, headers: &[(&str, &str)]| {
        let mut request = app.client.get(format!("{}{path}", app.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.expect("a body").to_vec();
            (status, headers, body)
        }
    };
    let header = |headers: &reqwest::header::HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let varies = |headers: &reqwest::header::HeaderMap| {
        header(headers, "vary").is_some_and(|vary| vary.eq_ignore_ascii_case("accept-encoding"))
    };
    let page = format!("/products/{product}");
    for path in ["/", page.as_str(), "/assets/app.js", "/assets/style.css"] {
        let (status, plain_headers, plain) = fetch(path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&plain_headers, "content-encoding"), None, "{path}");
        assert!(varies(&plain_headers), "{path}: {plain_headers:?}");
        let tag = header(&plain_headers, "etag").expect("an ETag");
        assert!(tag.starts_with("W/\""), "{path}: a weak tag, {tag}");

        let (status, headers, gzipped) = fetch(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&headers, "content-encoding").as_deref(),
            Some("gzip")
        );
        assert!(varies(&headers), "{path}: {headers:?}");
        assert_eq!(header(&headers, "etag").as_ref(), Some(&tag), "{path}");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_end(&mut unzipped)
            .expect("a gzip stream");
        assert_eq!(unzipped, plain, "{path}: the same file");
        if path == "/assets/app.js" {
            assert!(
                gzipped.len() * 2 < plain.len(),
                "the script is {} bytes gzipped, {} plain",
                gzipped.len(),
                plain.len()
            );
        }

        // A client that refuses both gets the plain file, not a 406.
        let (status, headers, refusing) =
            fetch(path, &[("accept-encoding", "gzip;q=0, identity;q=0")]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-encoding"), None, "{path}");
        assert_eq!(refusing, plain, "{path}");

        // The tag a browser keeps revalidates, gzipped or not, and the
        // 304 names the tag the file would have come with.
        for accept in ["gzip", "identity"] {
            let (status, headers, body) = fetch(
                path,
                &[("accept-encoding", accept), ("if-none-match", &tag)],
            )
            .await;
            assert_eq!(status, 304, "{path}, {accept}");
            assert!(body.is_empty(), "{path}");
            assert!(varies(&headers), "{path}, {accept}: {headers:?}");
            assert_eq!(header(&headers, "etag").as_ref(), Some(&tag), "{path}");
        }
    }

    // A product the catalog does not hold: the page, gzipped, under a 404
    // without a tag, whatever the request's tag.
    let missing = format!("/products/{}", product + 1);
    let (status, headers, body) = fetch(
        &missing,
        &[("accept-encoding", "gzip"), ("if-none-match", "*")],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        header(&headers, "content-encoding").as_deref(),
        Some("gzip")
    );
    assert_eq!(header(&headers, "etag"), None);
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("a gzip stream");
    assert!(unzipped.contains("/assets/app.js"), "{unzipped}");

    // The API and the operational answers stay as they are.
    for path in ["/api/v1/products", "/metrics", "/api/openapi.json"] {
        let (status, headers, _) = fetch(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-encoding"), None, "{path}");
    }
    app.stop().await;
}

/// The field names of a JSON object, sorted.
fn sent(body: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = body
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The field names the OpenAPI document gives schema `name`, and those it
/// marks required, each sorted: its own, and those of each part of an
/// `allOf` (how a flattened field is described), following `$ref`s.
fn documented(schemas: &serde_json::Value, name: &str) -> (Vec<String>, Vec<String>) {
    fn collect(
        schemas: &serde_json::Value,
        schema: &serde_json::Value,
        names: &mut (Vec<String>, Vec<String>),
    ) {
        if let Some(reference) = schema["$ref"].as_str() {
            let target = reference.rsplit('/').next().unwrap_or_default();
            collect(schemas, &schemas[target], names);
        }
        if let Some(properties) = schema["properties"].as_object() {
            names.0.extend(properties.keys().cloned());
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            names.1.extend(required.as_str().map(str::to_owned));
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            collect(schemas, part, names);
        }
    }
    let mut names = (Vec::new(), Vec::new());
    collect(schemas, &schemas[name], &mut names);
    names.0.sort();
    names.1.sort();
    names
}

/// Why a server built from `config` did not start; empty if it did.
async fn start_up_refusal(config: bidask_server::config::ServeConfig) -> String {
    bidask_server::startup::Application::build(config)
        .await
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default()
}

/// Start-up refusals an operator can act on: the address that cannot be
/// bound and the database that cannot be reached are named with their
/// settings (the pool alone said only that it timed out), and half of an
/// admin account is a mistake, not a server without one; so are a
/// placeholder token secret and a database from a newer version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_names_what_is_wrong() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("its address");
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut config = bidask_tests::test_config(&database);
    config.listen = address;
    let refused = start_up_refusal(config).await;
    assert!(
        refused.starts_with(&format!(
            "cannot listen on {address} (--listen, BIDASK_LISTEN): "
        )),
        "{refused}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a port")
        .port();
    for (url, named) in [
        (
            format!("postgres://ann:secret-password@127.0.0.1:{closed}/market"),
            format!("cannot connect to PostgreSQL at 127.0.0.1:{closed}, database \"market\""),
        ),
        (
            "sqlite:///no/such/directory/bidask.db".to_owned(),
            "cannot connect to the SQLite file /no/such/directory/bidask.db".to_owned(),
        ),
    ] {
        let database = TestDatabase::new(Backend::Sqlite).await;
        let mut config = bidask_tests::test_config(&database);
        config.database.database_url = url;
        let refused = start_up_refusal(config).await;
        assert!(
            refused.contains(&named) && refused.contains("DATABASE_URL"),
            "{refused}"
        );
        assert!(!refused.contains("secret-password"), "{refused}");
    }

    // SQLite databases a server cannot run on: in memory or temporary
    // (each connection would get its own), and read-only (it would start
    // beside the server writing the file, without the writer's lock).
    let file = bidask_store::sqlite_file(&database.url).expect("a file");
    for (url, named) in [
        ("sqlite::memory:".to_owned(), "in memory"),
        ("sqlite:".to_owned(), "in memory"),
        ("sqlite://?mode=memory&cache=shared".to_owned(), "in memory"),
        (format!("sqlite://{}?mode=ro", file.display()), "read-only"),
        (
            format!("sqlite://{}?immutable=1", file.display()),
            "read-only",
        ),
    ] {
        let mut config = bidask_tests::test_config(&database);
        config.database.database_url = url.clone();
        let refused = start_up_refusal(config).await;
        assert!(
            refused.contains(named) && refused.contains("DATABASE_URL"),
            "{url}: {refused}"
        );
    }

    // A file that is not a database says so (the pool said it timed out).
    let notes = file.with_file_name("notes.txt");
    std::fs::write(&notes, "hello, this is not a database\n").expect("a file");
    let mut config = bidask_tests::test_config(&database);
    config.database.database_url = format!("sqlite://{}", notes.display());
    let refused = start_up_refusal(config).await;
    assert!(
        refused.contains("not a database") && refused.contains("notes.txt"),
        "{refused}"
    );

    for (username, password, named) in [
        (Some("admin"), None, "BIDASK_ADMIN_USERNAME is set without"),
        (
            None,
            Some("a-long-password"),
            "BIDASK_ADMIN_PASSWORD is set without",
        ),
    ] {
        let database = TestDatabase::new(Backend::Sqlite).await;
        let mut config = bidask_tests::test_config(&database);
        config.admin_username = username.map(str::to_owned);
        config.admin_password = password.map(str::to_owned);
        let refused = start_up_refusal(config).await;
        assert!(refused.contains(named), "{refused}");
        // Refused before anything was made: no database, no secret.
        let file = bidask_store::sqlite_file(&database.url).expect("a file");
        assert!(!file.exists(), "{} made", file.display());
    }

    // A database a newer bidask migrated: this one would misread it.
    let database = TestDatabase::new(Backend::Sqlite).await;
    let store =
        bidask_store::Store::connect_lazy(&database.url, &Default::default()).expect("a store");
    store.migrate().await.expect("migrated");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, x'00', 1)",
    )
    .execute(&mut database.connect().await)
    .await
    .expect("a migration row");
    let refused = start_up_refusal(bidask_tests::test_config(&database)).await;
    assert!(
        refused.contains("migrated by a newer bidask") && refused.contains("9999"),
        "{refused}"
    );

    for (secret, named) in [
        ("short-secret", "at least 32 bytes"),
        (&" ".repeat(40), "one character repeated"),
        (&"x".repeat(32), "one character repeated"),
    ] {
        let database = TestDatabase::new(Backend::Sqlite).await;
        let mut config = bidask_tests::test_config(&database);
        config.jwt_secret = Some(secret.to_owned());
        let refused = start_up_refusal(config).await;
        assert!(
            refused.contains(named) && refused.contains("BIDASK_JWT_SECRET"),
            "{refused}"
        );
    }
}
