//! `GET /api/openapi.json`: the OpenAPI document, generated from the
//! handlers' annotations and the types they read and write, so it cannot
//! drift from the code.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use crate::views::{MatchView, OrderView};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `POST /bids` and `POST /asks`: the order after matching, its matches,
/// and the product feed `seq` of the last event it caused.
#[derive(Serialize, ToSchema)]
pub struct PlacedOrder {
    order: OrderView,
    matches: Vec<MatchView>,
    seq: i64,
}

/// `PATCH /orders/{id}`: the order, with the matches the amendment made
/// and the feed `seq`.
#[derive(Serialize, ToSchema)]
pub struct AmendedOrder {
    #[serde(flatten)]
    order: OrderView,
    matches: Vec<MatchView>,
    seq: i64,
}

/// `DELETE /orders/{id}`: the cancelled order and the feed `seq`.
#[derive(Serialize, ToSchema)]
pub struct CancelledOrder {
    #[serde(flatten)]
    order: OrderView,
    seq: i64,
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
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
