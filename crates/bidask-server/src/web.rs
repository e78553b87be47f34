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
//! to 14). Each is compressed once, when first asked for, not per request,
//! which would let one client spend a core on it. The API's answers are
//! not compressed: they are small and on the order path.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LOCATION, REFERRER_POLICY, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::http::AppState;

/// Only this origin's scripts, styles and connections: a page that moves
/// money takes nothing from elsewhere. No form is ever submitted (the
/// script sends what they hold): without the script, the sign-in form
/// would put the password in the page's address.
const POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// A file of the page, plain and gzipped, with a validator made from its
/// bytes: a browser that has it asks again (`no-cache`, since a new binary
/// may change it) and gets a 304 instead of the file, which on a phone is
/// most of the page's weight.
///
/// The validator is weak, on both forms: they are the same file in two
/// encodings, and a strong tag would have to differ between them (RFC
/// 9110, section 8.8.1), so that a 304 would need to know which form the
/// browser kept. Nothing here serves ranges, the one use of a strong tag.
struct Asset {
    content_type: &'static str,
    body: &'static str,
    gzipped: Vec<u8>,
    etag: HeaderValue,
}

impl Asset {
    fn new(content_type: &'static str, body: &'static str) -> Self {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        let etag = HeaderValue::from_str(&format!("W/\"{:016x}\"", hasher.finish()))
            .expect("a quoted hex number is a valid header value");
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let gzipped = encoder
            .write_all(body.as_bytes())
            .and_then(|()| encoder.finish())
            .expect("gzip into memory cannot fail");
        Self {
            content_type,
            body,
            gzipped,
            etag,
        }
    }

    /// The file, or 304 when `If-None-Match` names its tag.
    fn serve(&'static self, request: &HeaderMap) -> Response {
        if self.known_to(request) {
            return (StatusCode::NOT_MODIFIED, self.headers()).into_response();
        }
        self.send(request)
    }

    /// The file, in the encoding `request` takes.
    fn send(&'static self, request: &HeaderMap) -> Response {
        if takes_gzip(request) {
            let mut response = (self.headers(), self.gzipped.as_slice()).into_response();
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return response;
        }
        (self.headers(), self.body).into_response()
    }

    fn headers(&self) -> [(HeaderName, HeaderValue); 5] {
        [
            (CONTENT_TYPE, HeaderValue::from_static(self.content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (ETAG, self.etag.clone()),
            // On every answer, the 304 and the plain one too: a cache
            // must keep the gzipped file apart from the plain one.
            (VARY, HeaderValue::from_static(ACCEPT_ENCODING.as_str())),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ]
    }

    /// RFC 9110, section 13.1.2: `*`, or a list of tags compared weakly.
    fn known_to(&self, request: &HeaderMap) -> bool {
        let ours = weakly(self.etag.as_bytes());
        request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || weakly(tag.as_bytes()) == ours)
    }
}

/// A tag without its weakness mark, for the weak comparison.
fn weakly(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Whether `Accept-Encoding` takes gzip (RFC 9110, section 12.5.3): named,
/// as `gzip` or `x-gzip`, or else `*`, with a weight other than 0. Plain
/// is sent otherwise, never a 406: the file is small enough either way.
fn takes_gzip(request: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    let offers = request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for offer in offers {
        let mut parameters = offer.split(';');
        let coding = parameters.next().unwrap_or_default().trim();
        let weight = parameters
            .filter_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                name.trim().eq_ignore_ascii_case("q").then(|| value.trim())
            })
            .next_back();
        // A weight of 0 refuses; one that does not parse counts as given.
        let accepted = weight.is_none_or(|weight| {
            !(weight.starts_with('0') && weight.bytes().all(|byte| matches!(byte, b'0' | b'.')))
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            named = Some(accepted);
        } else if coding == "*" {
            any = Some(accepted);
        }
    }
    named.or(any).unwrap_or(false)
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
    // Never a 304, and without the document's tag: a cache that
    // revalidated this 404 once the product exists would be told it is
    // still current.
    let mut missing = INDEX.send(&headers);
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

/// The page's policy on its document, and no `Referer` from it: its
/// addresses name what a trader looks at.
fn page(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn script(headers: HeaderMap) -> Response {
    SCRIPT.serve(&headers)
}

async fn style(headers: HeaderMap) -> Response {
    STYLE.serve(&headers)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use axum::http::header::ACCEPT_ENCODING;

    use super::takes_gzip;

    fn accepting(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                ACCEPT_ENCODING,
                value.parse().expect("a valid header value"),
            );
        }
        headers
    }

    #[test]
    fn gzip_goes_where_it_is_taken_by_name_or_by_star_and_not_at_weight_zero() {
        for (values, gzip) in [
            (&[][..], false),
            (&["gzip, deflate, br, zstd"][..], true),
            (&["br", "GZip;q=0.5"][..], true),
            (&["x-gzip"][..], true),
            (&["*"][..], true),
            (&["identity"][..], false),
            (&["gzip;q=0"][..], false),
            (&["gzip; Q=0.000"][..], false),
            (&["gzip;q=0.001"][..], true),
            (&["*, gzip;q=0"][..], false),
            (&["*;q=0, identity"][..], false),
            (&["br;q=1, *;q=0.1"][..], true),
            (&["gzipped"][..], false),
        ] {
            assert_eq!(takes_gzip(&accepting(values)), gzip, "{values:?}");
        }
    }
}
