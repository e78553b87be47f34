//! `GET /api/openapi.json`: the OpenAPI document, generated from the
//! handlers' annotations and the types they read and write, so it cannot
//! drift from the code.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The answers an operation can give besides its own, added to every
/// operation here rather than on each handler, where a new route would
/// forget them: the rate limits and the request timeout apply to every
/// route, and so does a bug; a token, a body or a query can each be
/// refused.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_responses(operation);
            }
        }
    }
}

fn add_common_responses(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let has_body = operation.request_body.is_some();
    let has_query = operation.parameters.iter().flatten().any(|parameter| {
        matches!(parameter, RefOr::T(parameter) if parameter.parameter_in == ParameterIn::Query)
    });
    let mut answers = Vec::new();
    if has_body {
        answers.push((
            "400",
            "The body is not JSON (`malformed_json`) or could not be read (`malformed_request`).",
        ));
        answers.push((
            "408",
            "The body did not all arrive within the request time bound (`body_timeout`).",
        ));
        answers.push((
            "413",
            "The body is over the size limit (`payload_too_large`).",
        ));
    }
    if secured {
        answers.push((
            "401",
            "No token, or one that is invalid or expired (`missing_token`, `invalid_token`, `token_expired`).",
        ));
    }
    if has_body || has_query {
        answers.push((
            "422",
            "A value is refused (`validation_failed`, naming the field).",
        ));
    }
    answers.push((
        "429",
        "Over a rate limit (`rate_limited`); `Retry-After` says when to retry.",
    ));
    answers.push((
        "503",
        "The database is unavailable, or the request was not answered in time (`storage_unavailable`).",
    ));
    answers.push((
        "500",
        "A bug (`internal_error`); the cause is logged, never returned.",
    ));
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                let mut response = ResponseBuilder::new().description(description).content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                );
                if let Some((name, schema_type, text)) = header_of(status) {
                    let header = HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(schema_type)))
                        .description(Some(text))
                        .build();
                    response = response.header(name, header);
                }
                response.build().into()
            });
    }
}

/// The header an answer of `status` carries: its name, type and meaning.
fn header_of(status: &str) -> Option<(&'static str, Type, &'static str)> {
    match status {
        "401" => Some((
            "WWW-Authenticate",
            Type::String,
            "`Bearer`, with `error=\"invalid_token\"` when a token was refused.",
        )),
        "429" => Some((
            "Retry-After",
            Type::Integer,
            "Seconds to wait before trying again.",
        )),
        _ => None,
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "bidask", description = "A bid/ask marketplace: REST trading API. The WebSocket feed (GET /ws) is described in docs/api.md."),
    paths(
        super::users::register,
        super::users::login,
        super::users::me,
        super::products::list,
        super::products::create,
        super::products::show,
        super::products::book,
        super::products::matches,
        super::orders::place_bid,
        super::orders::place_ask,
        super::orders::list,
        super::orders::show,
        super::orders::amend,
        super::orders::cancel,
        super::account::matches,
        super::account::notifications,
        crate::gateway::stats,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics_text,
    ),
    // The body of every error, named here because `CommonResponses`
    // refers to it by name.
    components(schemas(super::error::ErrorBody)),
    modifiers(&BearerAuth, &CommonResponses)
)]
pub struct ApiDoc;
