//! PostgreSQL over TLS, as a managed database asks for it: with
//! `sslmode=verify-full` every connection the server opens is encrypted
//! and the database's certificate is checked against the authority given,
//! and a database that cannot prove itself gets no plain-text connection.

use bidask_store::{Store, StoreError, StoreOptions};
use bidask_tests::cluster::Cluster;
use bidask_tests::{TestDatabase, spawn_app_on};
use sqlx::Row;

/// Trades on a database that is reached over verified TLS, then asks the
/// database how each of the server's connections came in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_trades_over_verified_tls() {
    let cluster = Cluster::start_with_tls("127.0.0.1");
    let url = cluster.verified_url();
    let mut app = spawn_app_on(TestDatabase::at(url), |_| {}).await;
    let product = app.create_product("TLS-1", &["10"]).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    app.sell(&ann, &bob, product, "150.00").await;
    let sales = app
        .get(&format!("/api/v1/products/{product}/matches"), None)
        .await;
    assert_eq!(sales.body["items"].as_array().map(Vec::len), Some(1));

    let mut probe = app.database.as_ref().expect("a database").connect().await;
    let row = sqlx::query(
        "SELECT count(*) AS connections, count(*) FILTER (WHERE s.ssl) AS encrypted \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&mut probe)
    .await
    .expect("the connections of the server");
    let connections: i64 = row.get("connections");
    let encrypted: i64 = row.get("encrypted");
    // At least the pool's and the group commit's own connection.
    assert!(connections >= 2, "{connections} connections");
    assert_eq!(encrypted, connections, "a connection in plain text");
    app.stop().await;
}

/// `verify-full` without the authority: the system's roots do not hold it,
/// so the connection is refused rather than made without the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_authority_is_refused() {
    let cluster = Cluster::start_with_tls("127.0.0.1");
    let url = format!("{}?sslmode=verify-full", cluster.url());
    refused_over_tls(&url, "UnknownIssuer").await;
}

/// `verify-full` checks the name too: a certificate from the trusted
/// authority, but for another host, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    let cluster = Cluster::start_with_tls("db.invalid");
    let url = cluster.verified_url();
    refused_over_tls(&url, "not valid for name").await;
}

/// `require` against a database without TLS: no fallback to plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tls_is_not_given_up_for_plain_text() {
    let cluster = Cluster::start();
    let url = format!("{}?sslmode=require", cluster.url());
    refused_over_tls(&url, "does not support TLS").await;
}

/// Connecting to `url` fails, naming `reason` (which the server prints
/// when it cannot start). sqlx reports a refused certificate as an I/O
/// error from the handshake, and a server without TLS as a TLS error.
async fn refused_over_tls(url: &str, reason: &str) {
    let store = Store::connect_lazy(url, &StoreOptions::default()).expect("a valid URL");
    let error = store.ping().await.expect_err("no connection");
    assert!(
        matches!(
            error,
            StoreError::Unavailable(sqlx::Error::Tls(_) | sqlx::Error::Io(_))
        ),
        "{error:?}"
    );
    let chain = error_chain(&error);
    assert!(chain.contains(reason), "{chain}");
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
