//! The product page: plain HTML, CSS and JavaScript compiled into the
//! binary, so the one file that runs the server also serves its page.
//!
//! `/` is the catalog and `/products/{id}` a product; both are the same
//! document, which reads the path and talks to the public API and `/ws`
//! like any other client.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");

/// Only this origin's scripts, styles and connections: a page that moves
/// money takes nothing from elsewhere.
const POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/products/{id}", get(page))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Small files, and a new binary may change them: revalidate.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
}

async fn page() -> impl IntoResponse {
    (
        [(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY))],
        asset("text/html; charset=utf-8", INDEX),
    )
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
