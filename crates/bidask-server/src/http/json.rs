//! Request bodies, query strings and path ids, parsed so that every
//! failure names what was wrong: a body that is not JSON is a 400, a field
//! of the wrong type or missing is a 422 naming that field, and no
//! failure is ever axum's plain-text rejection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::Uri;
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::error::ApiError;

/// A JSON body.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(request, state).await?;
        parse(&bytes).map(Json)
    }
}

/// A body as sent, within the size limit, for handlers that need its
/// bytes (an idempotency key is tied to them) before parsing it.
#[derive(Debug, Clone)]
pub struct Body(pub Bytes);

/// The body size limit, as a request extension for [`Body`] to read.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Set while [`Body`] waits for a request's bytes, so that the request
/// time bound can tell a client that sends its body too slowly (its
/// fault, 408) from a server too slow to answer (503).
#[derive(Debug, Clone, Default)]
pub struct BodyReading(Arc<AtomicBool>);

impl BodyReading {
    /// Whether the body was still being read. A read cut off by the time
    /// bound never clears the flag, which is what the bound asks.
    pub fn unfinished(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A body declared over the limit is refused before any of it is
        // read. Reading would refuse it too, but only once that many
        // bytes came: a client that declares them and sends nothing would
        // hold the request until it timed out, and one that sent
        // `Expect: 100-continue` would be told to go ahead first. Here,
        // after the handler's other extractors, so a request refused for
        // its token is still refused for that.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if let (Some(length), Some(BodyLimit(limit))) = (declared, request.extensions().get())
            && length > *limit as u64
        {
            return Err(ApiError::TooLarge);
        }
        let reading = request.extensions().get::<BodyReading>().cloned();
        if let Some(BodyReading(flag)) = &reading {
            flag.store(true, Ordering::Relaxed);
        }
        let read = Bytes::from_request(request, state).await;
        if let Some(BodyReading(flag)) = &reading {
            flag.store(false, Ordering::Relaxed);
        }
        read.map(Body).map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::TooLarge
            }
            // A chunked body that is not chunked, or one cut short.
            BytesRejection::FailedToBufferBody(FailedToBufferBody::UnknownBodyError(_)) => {
                ApiError::Malformed {
                    code: "malformed_request",
                    message: "the request body could not be read".to_owned(),
                }
            }
            other => ApiError::Malformed {
                code: "malformed_request",
                message: other.body_text(),
            },
        })
    }
}

/// Parses a JSON object into `T`.
///
/// The document is checked for well-formedness first, so that every error
/// of the typed pass is about a value: serde_json reports some wrong types
/// (a number where an enum's string belongs) as syntax errors.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON is UTF-8 (RFC 8259, 8.1). serde_json checks the strings it
    // reads but not those it skips, so a field the API ignores could carry
    // any bytes, and a bad byte in a field it reads was a 422 about a value.
    let text = std::str::from_utf8(bytes).map_err(|error| ApiError::Malformed {
        code: "malformed_json",
        message: format!("the body is not valid JSON: it is not UTF-8 ({error})"),
    })?;
    if let Err(error) = serde_json::from_str::<IgnoredAny>(text) {
        return Err(ApiError::Malformed {
            code: "malformed_json",
            message: format!("the body is not valid JSON: {error}"),
        });
    }
    // serde would fill a struct from an array by position; the API takes
    // objects only.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let (field, message) = described(&error, "body");
        ApiError::invalid(field, message)
    })
}

/// The field a typed pass over a JSON document failed at, and what is
/// wrong with it in the API's words; `whole` names the document itself.
pub fn described(
    error: &serde_path_to_error::Error<serde_json::Error>,
    whole: &str,
) -> (String, String) {
    let message = error.inner().to_string();
    // serde reports a missing or repeated field at the object's path;
    // the field's name is in its message.
    let field = named_field(&message).map_or_else(|| error.path().to_string(), str::to_owned);
    let field = if field == "." {
        whole.to_owned()
    } else {
        field
    };
    let message = plain(&field, strip_position(&message));
    (field, message)
}

/// serde's message about `field` in the API's words: "quantity must be a
/// whole number", not "invalid type: string \"x\", expected i64". A
/// client reads these, and Rust's type names tell it nothing. Messages
/// this does not know (the API's own deserializers' ones) pass as they are.
fn plain(field: &str, message: &str) -> String {
    let integers = ["i64", "u64", "i32", "u32", "u16", "u8", "usize"];
    // From the right: the variant sent may hold anything.
    if let Some((_, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.rsplit_once("`, expected "))
    {
        return format!("{field} must be {}", expected.replace('`', ""));
    }
    if named_field(message).is_some() {
        return if message.starts_with("missing") {
            format!("{field} is required")
        } else {
            format!("{field} is given more than once")
        };
    }
    match message.rsplit_once(", expected ") {
        Some((given, expected)) if integers.contains(&expected) => {
            if given.starts_with("invalid value: integer") || beyond_64_bits(given) {
                format!("{field} is out of range")
            } else if given.starts_with("invalid type: floating point") {
                // `2.0` and `1e3` are whole, but not written as integers.
                format!("{field} must be a whole number, written without a point or an exponent")
            } else {
                format!("{field} must be a whole number")
            }
        }
        Some((_, "a string")) => format!("{field} must be a string"),
        Some((_, "a boolean")) => format!("{field} must be true or false"),
        Some((_, "a sequence")) => format!("{field} must be a list"),
        _ => match message {
            // serde_urlencoded's, from the standard library's integer parse.
            "invalid digit found in string" => format!("{field} must be a whole number"),
            "number too large to fit in target type" | "number too small to fit in target type" => {
                format!("{field} is out of range")
            }
            other => other.to_owned(),
        },
    }
}

/// Whether serde's "invalid type: floating point `1e20`" is about a
/// number no 64-bit integer holds: serde_json reads an integer literal
/// beyond them as a float. The float only chooses the refusal's words;
/// nothing is taken from it.
fn beyond_64_bits(given: &str) -> bool {
    given
        .strip_prefix("invalid type: floating point `")
        .and_then(|rest| rest.strip_suffix('`'))
        .and_then(|number| number.parse::<f64>().ok())
        .is_some_and(|number| number.abs() >= 9_223_372_036_854_775_808.0)
}

/// The field of serde's "missing field `price`" or "duplicate field
/// `price`", which name it only in the message.
fn named_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("duplicate field `"))
        .and_then(|rest| rest.split('`').next())
}

/// serde_json appends "at line 1 column 12", which is noise to a client.
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |index| &message[..index])
}

/// A query string. A parameter with an empty value (`?status=`, as an
/// HTML form sends a field left blank) counts as absent.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        query(parts.uri.query().unwrap_or_default())
    }
}

fn query<T: DeserializeOwned>(text: &str) -> Result<Query<T>, ApiError> {
    let given: Vec<&str> = text
        .split('&')
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .collect();
    let uri: Uri = format!("/?{}", given.join("&"))
        .parse()
        .map_err(|_| ApiError::invalid("query", "the query string is not valid"))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|query| Query(query.0))
        .map_err(|rejection| {
            let text = rejection.body_text();
            let detail = text
                .strip_prefix("Failed to deserialize query string: ")
                .unwrap_or(&text);
            // "limit: invalid digit found in string", or a message that
            // names its field ("duplicate field `limit`").
            let (field, message) = match named_field(detail) {
                Some(field) => (field, detail),
                None => detail.split_once(": ").unwrap_or(("query", detail)),
            };
            ApiError::invalid(field, plain(field, message))
        })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only deserialization is under test")]
    struct Body {
        price: String,
        quantity: u32,
    }

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::Invalid { field, .. } => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_malformed_and_data_errors_name_the_field() {
        assert!(matches!(
            parse::<Body>(b"{\"price\": "),
            Err(ApiError::Malformed { .. })
        ));
        assert!(matches!(
            parse::<Body>(b"{} trailing"),
            Err(ApiError::Malformed { .. })
        ));
        assert_eq!(
            field_of(parse::<Body>(br#"{"price": "1", "quantity": "x"}"#).expect_err("refused")),
            "quantity"
        );
        assert_eq!(
            field_of(parse::<Body>(br#"{"quantity": 1}"#).expect_err("refused")),
            "price"
        );
        assert_eq!(field_of(parse::<Body>(b"[]").expect_err("refused")), "body");
        assert_eq!(
            field_of(
                parse::<Body>(br#"{"price": "1", "quantity": 1, "price": "2"}"#)
                    .expect_err("refused")
            ),
            "price"
        );
    }

    fn message_of(error: ApiError) -> String {
        match error {
            ApiError::Invalid { message, .. } => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Speed {
        Gtc,
        Ioc,
        Fok,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only deserialization is under test")]
    struct Terms {
        id: Option<i64>,
        speed: Option<Speed>,
        note: Option<String>,
        flag: Option<bool>,
    }

    #[test]
    fn messages_are_in_the_api_words_not_serde_s() {
        let body = |json: &str| message_of(parse::<Body>(json.as_bytes()).expect_err("refused"));
        let terms = |json: &str| message_of(parse::<Terms>(json.as_bytes()).expect_err("refused"));
        let filters = |text: &str| message_of(query::<Filters>(text).expect_err("refused"));
        for (message, expected) in [
            (
                body(r#"{"price": "1", "quantity": "x"}"#),
                "quantity must be a whole number",
            ),
            (
                body(r#"{"price": "1", "quantity": 1.5}"#),
                "quantity must be a whole number, written without a point or an exponent",
            ),
            (
                body(r#"{"price": "1", "quantity": 2.0}"#),
                "quantity must be a whole number, written without a point or an exponent",
            ),
            (
                terms(r#"{"id": 1e16}"#),
                "id must be a whole number, written without a point or an exponent",
            ),
            (
                terms(r#"{"id": -9223372036854775809}"#),
                "id is out of range",
            ),
            (
                terms(r#"{"speed": "x`, expected nothing"}"#),
                "speed must be one of gtc, ioc, fok",
            ),
            (
                body(r#"{"price": "1", "quantity": null}"#),
                "quantity must be a whole number",
            ),
            (
                body(r#"{"price": "1", "quantity": -1}"#),
                "quantity is out of range",
            ),
            (
                body(r#"{"price": "1", "quantity": 5000000000}"#),
                "quantity is out of range",
            ),
            (body(r#"{"quantity": 1}"#), "price is required"),
            (
                body(r#"{"price": "1", "quantity": 1, "price": "2"}"#),
                "price is given more than once",
            ),
            (
                body(r#"{"price": 1, "quantity": 1}"#),
                "price must be a string",
            ),
            (terms(r#"{"id": 1e20}"#), "id is out of range"),
            (
                terms(r#"{"id": 123456789012345678901234}"#),
                "id is out of range",
            ),
            (
                terms(r#"{"speed": "fast"}"#),
                "speed must be one of gtc, ioc, fok",
            ),
            (terms(r#"{"note": ["a"]}"#), "note must be a string"),
            (terms(r#"{"flag": "yes"}"#), "flag must be true or false"),
            (filters("limit=many"), "limit must be a whole number"),
            (filters("limit=-1.5"), "limit must be a whole number"),
            (
                filters("limit=99999999999999999999"),
                "limit is out of range",
            ),
            (
                filters("limit=-99999999999999999999"),
                "limit is out of range",
            ),
            (filters("limit=1&limit=2"), "limit is given more than once"),
        ] {
            assert_eq!(message, expected);
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Filters {
        status: Option<String>,
        limit: Option<i64>,
    }

    #[test]
    fn empty_query_parameters_are_absent_and_bad_ones_named() {
        let filters = |text: &str| query::<Filters>(text).map(|Query(filters)| filters);
        let none = Filters {
            status: None,
            limit: None,
        };
        assert_eq!(filters("").expect("no parameters"), none);
        assert_eq!(filters("status=&limit=").expect("blank ones"), none);
        assert_eq!(filters("status&limit=").expect("bare ones"), none);
        assert_eq!(
            filters("status=open&limit=").expect("one given"),
            Filters {
                status: Some("open".to_owned()),
                limit: None,
            }
        );
        assert_eq!(
            field_of(filters("status=&limit=many").expect_err("refused")),
            "limit"
        );
        assert_eq!(
            field_of(filters("limit=1&limit=2").expect_err("refused")),
            "limit"
        );
    }
}

/// An `{id}` of the path, as text for the handler's lookup. A segment that
/// does not percent-decode to UTF-8 (`/orders/%FF`) names nothing here:
/// it is passed on as an empty id, which every lookup answers with its
/// own JSON 404, like any other id that does not exist.
#[derive(Debug, Clone)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map(|axum::extract::Path(id)| id)
                .unwrap_or_default(),
        ))
    }
}
