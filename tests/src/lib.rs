//! The end-to-end test harness: a real server on port 0 against a fresh
//! database, and a typed client so that tests read like their scenarios.
//!
//! PostgreSQL tests need `BIDASK_TEST_POSTGRES_URL`, a URL of a server
//! where the tests may create databases; `scripts/test` starts a private
//! one and sets it. Without it those tests fail, they do not skip.
//!
//! The invariant the harness keeps: each test has a database and a server
//! of its own, so tests run in parallel and never see each other's data.

pub mod audit;
pub mod cluster;
pub mod process;
pub mod ws;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bidask_server::config::{DatabaseConfig, ServeConfig};
use bidask_server::startup::Application;
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The admin account every test server bootstraps.
pub const ADMIN: (&str, &str) = ("admin", "admin-password");
/// The token secret of every test server.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret!";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default, in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A fresh, empty database that lives as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// The SQLite file's directory.
    _directory: Option<TempDir>,
}

/// The first phrase of serde's or the standard library's in `message`, an
/// error message a client was given: those speak of Rust's types
/// ("expected i64") where the API must speak of its fields.
pub fn rust_words(message: &str) -> Option<&'static str> {
    [
        "invalid type",
        "invalid value",
        "invalid digit",
        "target type",
        "floating point",
        "unknown variant",
        "missing field",
        "duplicate field",
        "unknown field",
        "invalid length",
        "provided string was not",
        "expected i64",
        "expected u32",
        "expected usize",
        "expected a string",
    ]
    .into_iter()
    .find(|phrase| message.contains(phrase))
}

/// Whether `value` is a time as the API writes them: RFC 3339 in UTC with
/// microseconds, `2026-11-30T22:44:04.600400Z`.
pub fn is_utc_micros(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    text.len() == shape.len()
        && text
            .bytes()
            .zip(shape.bytes())
            .all(|(byte, want)| match want {
                b'd' => byte.is_ascii_digit(),
                _ => byte == want,
            })
}

/// The URL of the test PostgreSQL server's maintenance database.
pub fn postgres_admin_url() -> String {
    std::env::var("BIDASK_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "BIDASK_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts \
             a private PostgreSQL server (or point it at a server where tests may create databases)"
        )
    })
}

impl TestDatabase {
    /// A connection of the test's own, for writing behind the server's
    /// back what a crash or an old row would have left.
    pub async fn connect(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("the test database")
    }

    /// Ends the PostgreSQL backend holding the writer's lock in this
    /// database, as a database restart, an operator's
    /// `pg_terminate_backend` or a proxy's cut would. (`pg_locks` shows
    /// every database's locks: only this one's.)
    pub async fn terminate_writer(&self) {
        let (ended,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
             WHERE locktype = 'advisory' AND ((classid::bigint << 32) | objid::bigint) = $1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(bidask_store::WRITER_LOCK)
        .fetch_one(&mut self.connect().await)
        .await
        .expect("the writer's backend terminated");
        assert_eq!(ended, 1, "one session held the writer's lock");
    }

    /// A database someone else made (and cleans up).
    pub fn at(url: String) -> Self {
        Self {
            url,
            _directory: None,
        }
    }

    /// A new empty database of `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}/bidask.db", directory.path().display());
                Self {
                    url,
                    _directory: Some(directory),
                }
            }
            Backend::Postgres => Self::postgres_with("").await,
        }
    }

    /// A new empty PostgreSQL database made with `options` after `CREATE
    /// DATABASE name` (a locale, a template).
    pub async fn postgres_with(options: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = postgres_admin_url();
        let name = format!(
            "bidask_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            bidask_server::clock::now_micros() % 1_000_000
        );
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(&admin_url)
            .await
            .expect("the test PostgreSQL server (BIDASK_TEST_POSTGRES_URL) answers");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} {options}"
        )))
        .execute(&mut connection)
        .await
        .expect("a fresh test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            _directory: None,
        }
    }
}

/// The configuration of a test server on `database`.
pub fn test_config(database: &TestDatabase) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        database: DatabaseConfig {
            database_url: database.url.clone(),
        },
        demo: false,
        jwt_secret: Some(JWT_SECRET.to_owned()),
        token_lifetime_secs: 3_600,
        admin_username: Some(ADMIN.0.to_owned()),
        admin_password: Some(ADMIN.1.to_owned()),
        allowed_origins: bidask_server::origin::AllowedOrigins::default(),
        // Load from the tests would trip the production limits; the
        // rate-limit test turns them on.
        rate_limit_user: 0,
        rate_limit_address: 0,
        rate_limit_auth: 0,
        rate_limit_login: 0,
        trusted_proxies: bidask_server::proxies::TrustedProxies::default(),
        body_limit: 16 * 1024,
        request_timeout_secs: 15,
        db_connections: 4,
        db_idle_check_ms: 2_000,
        max_batch: 2_048,
        max_open_orders: 1_000,
        shutdown_timeout_secs: 10,
        feed_retention_secs: 7 * 86_400,
        ws_heartbeat_ms: 5_000,
        ws_queue: 1_024,
        ws_max_connections: 1_000,
        http_max_connections_per_address: 128,
        ws_max_connections_per_address: 0,
        ws_max_subscriptions: 64,
        ws_messages_per_sec: 0,
        ws_max_message_bytes: 16 * 1024,
        send_buffer: None,
    }
}

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:port`.
    pub address: String,
    /// Keep-alive client.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    /// The database, kept alive (and reusable after [`TestApp::stop`]).
    pub database: Option<TestDatabase>,
    admin_token: Option<String>,
}

/// A registered trader.
#[derive(Debug, Clone)]
pub struct Trader {
    /// The user id.
    pub id: i64,
    /// The name.
    pub username: String,
    /// A bearer token.
    pub token: String,
}

/// A response: status and JSON body (`Value::Null` if the body is empty, or
/// is not JSON outside `/api`).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// `Location`, if any.
    pub location: Option<String>,
}

impl Reply {
    /// The error code of a contract error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// Panics unless the error's message is in the API's words, not
    /// Rust's ([`rust_words`]).
    pub fn assert_plain_message(&self) {
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && rust_words(message).is_none(),
            "the message speaks Rust: {:?}",
            self.body
        );
    }
}

/// Server logs go to the test's captured output (shown when it fails);
/// `RUST_LOG` sets the level, warnings by default.
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Starts a server on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_on(TestDatabase::new(backend).await, |_| {}).await
}

/// Starts a server on `database`, with `configure` applied to its settings.
pub async fn spawn_app_on(
    database: TestDatabase,
    configure: impl FnOnce(&mut ServeConfig),
) -> TestApp {
    init_logging();
    let mut config = test_config(&database);
    configure(&mut config);
    let application = Application::build(config).await.expect("the server starts");
    let address = format!("http://{}", application.local_addr().expect("bound"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        application
            .run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs and stops cleanly");
    });
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client"),
        shutdown: Some(shutdown),
        server: Some(server),
        database: Some(database),
        admin_token: None,
    }
}

impl TestApp {
    /// A client for a server running elsewhere (another process).
    pub fn connect(address: String) -> Self {
        Self {
            address,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            shutdown: None,
            server: None,
            database: None,
            admin_token: None,
        }
    }

    /// Stops the server gracefully and waits until it has drained; returns
    /// the database for a restart.
    pub async fn stop(mut self) -> TestDatabase {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server task ends");
        }
        self.database.take().expect("a database this app started")
    }

    /// Sends a request with an optional bearer token and JSON body text.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let what = format!("{method} {path}");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after");
        let location = header("location");
        let text = response.text().await.expect("a body");
        // Every answer under /api is JSON: anything else is a failure, not
        // a `null` that a check for a missing field would take for a pass.
        let body = match serde_json::from_str(&text) {
            Ok(body) => body,
            Err(error) if path.starts_with("/api/") && !text.is_empty() => {
                let start: String = text.chars().take(200).collect();
                panic!("{what} answered {status} with non-JSON ({error}): {start:?}")
            }
            Err(_) => Value::Null,
        };
        Reply {
            status,
            body,
            retry_after,
            location,
        }
    }

    /// The text of `/metrics`, which must answer 200.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("/metrics answers");
        assert_eq!(response.status(), 200, "/metrics");
        response.text().await.expect("the metrics text")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, token, None, &[])
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            token,
            Some(body.to_string()),
            &[],
        )
        .await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(
            reqwest::Method::PATCH,
            path,
            token,
            Some(body.to_string()),
            &[],
        )
        .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(reqwest::Method::DELETE, path, token, None, &[])
            .await
    }

    /// `POST /auth/login` with these credentials.
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        let credentials = json!({"username": username, "password": password});
        self.post("/api/v1/auth/login", None, &credentials).await
    }

    /// Registers `username` (password `password-of-<username>`).
    pub async fn register(&self, username: &str) -> Trader {
        let reply = self
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"username": username, "password": format!("password-of-{username}")}),
            )
            .await;
        assert_eq!(reply.status, 201, "register {username}: {:?}", reply.body);
        Trader {
            id: reply.body["user"]["id"].as_i64().expect("a user id"),
            username: username.to_owned(),
            token: reply.body["token"].as_str().expect("a token").to_owned(),
        }
    }

    /// A token of the bootstrapped admin.
    pub async fn admin_token(&mut self) -> String {
        if let Some(token) = &self.admin_token {
            return token.clone();
        }
        let reply = self
            .post(
                "/api/v1/auth/login",
                None,
                &json!({"username": ADMIN.0, "password": ADMIN.1}),
            )
            .await;
        assert_eq!(reply.status, 200, "admin login: {:?}", reply.body);
        let token = reply.body["token"].as_str().expect("a token").to_owned();
        self.admin_token = Some(token.clone());
        token
    }

    /// Creates a product with `sizes` (one-cent tick) and returns its id.
    pub async fn create_product(&mut self, sku: &str, sizes: &[&str]) -> i64 {
        let token = self.admin_token().await;
        let reply = self
            .post(
                "/api/v1/products",
                Some(&token),
                &json!({"sku": sku, "name": format!("Sneaker {sku}"), "brand": "Nike", "sizes": sizes}),
            )
            .await;
        assert_eq!(reply.status, 201, "create product: {:?}", reply.body);
        reply.body["id"].as_i64().expect("a product id")
    }

    /// `POST /bids` or `/asks` (`side` is `bid` or `ask`) with `body`.
    pub async fn place(&self, trader: &Trader, side: &str, body: &Value) -> Reply {
        self.post(&format!("/api/v1/{side}s"), Some(&trader.token), body)
            .await
    }

    /// Places a one-unit gtc order at `price` and returns the reply.
    pub async fn order(
        &self,
        trader: &Trader,
        side: &str,
        product_id: i64,
        size: &str,
        price: &str,
    ) -> Reply {
        self.place(
            trader,
            side,
            &json!({"product_id": product_id, "size": size, "price": price}),
        )
        .await
    }

    /// One sale of one unit in size `10` at `price`: `seller`'s ask, then
    /// `buyer`'s bid that crosses it; both must be accepted.
    pub async fn sell(&self, seller: &Trader, buyer: &Trader, product_id: i64, price: &str) {
        for (trader, side) in [(seller, "ask"), (buyer, "bid")] {
            let reply = self.order(trader, side, product_id, "10", price).await;
            assert_eq!(reply.status, 201, "{side} at {price}: {:?}", reply.body);
        }
    }

    /// `count` asks of one unit in size 10 of `product_id`, each on a level
    /// of its own (300.00, 300.01, …) and expiring at `expires_at`, placed
    /// 25 at a time; every one must be accepted. The largest `seq` their
    /// replies carried.
    pub async fn asks_on_levels_of_their_own(
        &self,
        trader: &Trader,
        product_id: i64,
        count: usize,
        expires_at: &str,
    ) -> i64 {
        let mut last_seq = 0;
        for batch in (0..count).collect::<Vec<_>>().chunks(25) {
            let placed = futures_util::future::join_all(batch.iter().map(|index| {
                let body = serde_json::json!({
                    "product_id": product_id,
                    "size": "10",
                    "price": format!("{}.{:02}", 300 + index / 100, index % 100),
                    "expires_at": expires_at,
                });
                async move { self.place(trader, "ask", &body).await }
            }))
            .await;
            for reply in placed {
                assert_eq!(reply.status, 201, "{:?}", reply.body);
                last_seq = last_seq.max(reply.body["seq"].as_i64().expect("a seq"));
            }
        }
        last_seq
    }

    /// The book of one market.
    pub async fn book(&self, product_id: i64, size: &str) -> Value {
        self.book_depth(product_id, size, 50).await
    }

    /// The book of one market, `depth` levels a side.
    pub async fn book_depth(&self, product_id: i64, size: &str, depth: usize) -> Value {
        let reply = self
            .get(
                &format!("/api/v1/products/{product_id}/book?size={size}&depth={depth}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "book: {:?}", reply.body);
        reply.body
    }
}

/// Runs a scenario against both backends: `on_both_backends!(name, ...)`
/// makes a module per scenario with a `sqlite` and a `postgres` test.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$scenario($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}
