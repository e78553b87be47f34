//! The caller's own matches and notifications.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use bidask_store::reads::Page as StorePage;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

use super::error::ApiError;
use super::extract::User;
use super::json::Query;
use super::{AppState, Page, page_cursor, page_limit};
use crate::feed::UserMatch;
use crate::views::MatchView;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/matches", get(matches))
        .route("/notifications", get(notifications))
}

#[derive(Deserialize)]
struct MatchesQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/matches", tag = "account", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Items on a page, 50 by default."), ("cursor" = Option<String>, Query)),
    operation_id = "my_matches",
    responses((status = 200, description = "The caller's trades as buyer or seller, newest first.", body = Page<MatchView>)))]
async fn matches(
    State(state): State<AppState>,
    user: User,
    Query(query): Query<MatchesQuery>,
) -> Result<Json<Page<MatchView>>, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref())?;
    let records = state
        .store
        .user_matches(user.id, StorePage { before, limit })
        .await?;
    let last = records.last().map(|record| record.id);
    // As for the caller's orders: a missing product is a broken catalog.
    let items = records
        .iter()
        .map(|record| {
            state
                .catalog
                .get(record.product_id)
                .map(|product| MatchView::for_user(record, &product, user.id))
                .ok_or_else(|| {
                    ApiError::Internal(format!("match {} of unknown product", record.id))
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(Page::new(items, limit, last)))
}

/// A stored notification: the `MATCH_CREATED` message of the user's
/// channel, as it was published. It is served as the stored text, so no
/// type holds it whole: its schema is [`UserMatch`]'s with the message's
/// envelope added.
pub enum Notification {}

impl PartialSchema for Notification {
    fn schema() -> RefOr<Schema> {
        let mut schema = UserMatch::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let field = |schema_type: Type, description: &str| {
                ObjectBuilder::new()
                    .schema_type(schema_type)
                    .description(Some(description))
            };
            let envelope = [
                (
                    "type",
                    field(Type::String, "The event.").enum_values(Some(["MATCH_CREATED"])),
                ),
                (
                    "channel",
                    field(Type::String, "`user:{id}`, the caller's channel."),
                ),
                (
                    "seq",
                    field(Type::Integer, "Its place in the channel's feed.")
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
                ),
                (
                    "ts",
                    field(Type::String, "RFC 3339: when its commit began."),
                ),
            ];
            for (name, property) in envelope {
                object
                    .properties
                    .insert(name.to_owned(), property.build().into());
                object.required.push(name.to_owned());
            }
            object.description = Some(
                "A `MATCH_CREATED` message of the caller's channel, as it was published."
                    .to_owned(),
            );
        }
        schema
    }
}

impl ToSchema for Notification {}

#[derive(Deserialize)]
struct NotificationsQuery {
    after: Option<i64>,
    /// The other lists' name for where a page starts: a client that pages
    /// every list by passing `next_cursor` back as `cursor` would
    /// otherwise get the first page of notifications again and again.
    cursor: Option<String>,
    limit: Option<String>,
}

/// Notifications are the `MATCH_CREATED` messages of the user's channel,
/// returned exactly as they were sent, oldest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "account", security(("bearer" = [])),
    params(("after" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Items on a page, 50 by default.")),
    operation_id = "my_notifications",
    responses((status = 200, description = "The caller's `MATCH_CREATED` messages exactly as they were published on its channel, oldest first.", body = Page<Notification>)))]
async fn notifications(
    State(state): State<AppState>,
    user: User,
    Query(query): Query<NotificationsQuery>,
) -> Result<Json<Page<Box<RawValue>>>, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let after = match (query.after, page_cursor(query.cursor.as_deref())?) {
        (Some(after), None) if after < 0 => {
            return Err(ApiError::invalid(
                "after",
                "after must be a notification id",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "cursor",
                "give after or cursor, not both",
            ));
        }
        (after, cursor) => after.or(cursor).unwrap_or(0),
    };
    let records = state.store.notifications(user.id, after, limit).await?;
    let last = records.last().map(|record| record.id);
    let items = records
        .into_iter()
        .map(|record| {
            RawValue::from_string(record.payload)
                .map_err(|error| ApiError::Internal(format!("stored notification: {error}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(Page::new(items, limit, last)))
}
