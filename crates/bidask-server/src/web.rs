//! The product page: plain HTML, CSS and JavaScript compiled into the
//! binary, so the one file that runs the server also serves its page.
//!
//! `/` is the catalog and `/products/{id}` a product; both are the same
//! document, which reads the path and talks to the public API and `/ws`
//! like any other client. A product the catalog does not hold gets that
//! document with a 404, and the page says there is no such sneaker.
//!
//! The files go gzipped to a browser that takes it: on a phone's network
//! the script is most of the page's weight, and shrinks to a third (43 KB
//! to 14). Only these routes are compressed; the API's answers are small
//! and on the order path, where the time would show.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LOCATION, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;

use crate::http::AppState;

/// Only this origin's scripts, styles and connections: a page that moves
/// money takes nothing from elsewhere.
const POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// A file of the page, with a validator made from its bytes: a browser
/// that has it asks again (`no-cache`, since a new binary may change it)
/// and gets a 304 instead of the file, which on a phone is most of the
/// page's weight.
struct Asset {
    content_type: &'static str,
    body: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(content_type: &'static str, body: &'static str) -> Self {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .expect("a quoted hex number is a valid header value");
        Self {
            content_type,
            body,
            etag,
        }
    }

    /// The file, or 304 when `If-None-Match` names its tag.
    fn serve(&self, request: &HeaderMap) -> Response {
        let answer = [
            (CONTENT_TYPE, HeaderValue::from_static(self.content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (ETAG, self.etag.clone()),
            // On every answer, the 304 and the uncompressed ones too: a
            // cache must keep the gzipped file apart from the plain one.
            (VARY, HeaderValue::from_static(ACCEPT_ENCODING.as_str())),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ];
        if self.known_to(request) {
            return (StatusCode::NOT_MODIFIED, answer).into_response();
        }
        (answer, self.body).into_response()
    }

    /// RFC 9110, section 13.1.2: `*`, or a list of tags compared weakly.
    fn known_to(&self, request: &HeaderMap) -> bool {
        let ours = self.etag.as_bytes();
        request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == ours)
    }
}

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    )
});
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("text/css; charset=utf-8", include_str!("../web/style.css")));

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(catalog))
        .route("/products/{id}", get(product))
        .route("/products/{id}/", get(without_slash))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::map_response(weaken_encoded_tag))
}

/// A gzipped file is another representation of it, with other bytes, so
/// its tag may only be weak (RFC 9110, section 8.8.1); the tag still
/// matches the file's own when a browser sends it back, as
/// `If-None-Match` compares weakly.
async fn weaken_encoded_tag(mut response: Response) -> Response {
    if !response.headers().contains_key(CONTENT_ENCODING) {
        return response;
    }
    let weak = response
        .headers()
        .get(ETAG)
        .filter(|tag| !tag.as_bytes().starts_with(b"W/"))
        .and_then(|tag| HeaderValue::from_bytes(&[b"W/", tag.as_bytes()].concat()).ok());
    if let Some(weak) = weak {
        response.headers_mut().insert(ETAG, weak);
    }
    response
}

async fn catalog(headers: HeaderMap) -> Response {
    page(INDEX.serve(&headers))
}

/// A product's page, or the same document with a 404 for an id the
/// catalog does not hold (the page then says so): a link checker, a
/// crawler or a proxy's cache learns that the address is wrong.
async fn product(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // Digits only, as the page reads its address: `+1` is no product's.
    let known = is_digits(&id)
        && id
            .parse::<i64>()
            .is_ok_and(|id| state.catalog.get(id).is_some());
    if known {
        return page(INDEX.serve(&headers));
    }
    // Without the document's tag: a cache that revalidated this 404 once
    // the product exists would be told it is still current.
    let mut missing = INDEX.serve(&HeaderMap::new());
    *missing.status_mut() = StatusCode::NOT_FOUND;
    missing.headers_mut().remove(ETAG);
    page(missing)
}

/// `/products/1/` is `/products/1`, as a person who typed it means. Only
/// digits are sent back in `Location`: nothing a link could smuggle in.
async fn without_slash(state: State<AppState>, Path(id): Path<String>) -> Response {
    if !is_digits(&id) {
        return product(state, Path(id), HeaderMap::new()).await;
    }
    let location = HeaderValue::try_from(format!("/products/{id}"))
        .expect("a path of ASCII digits is a valid header value");
    (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response()
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// The page's policy on its document.
fn page(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

async fn script(headers: HeaderMap) -> Response {
    SCRIPT.serve(&headers)
}

async fn style(headers: HeaderMap) -> Response {
    STYLE.serve(&headers)
}
