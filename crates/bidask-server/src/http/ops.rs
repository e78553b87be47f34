//! Endpoints for operators: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ErrorBody};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`.", body = Object)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers, and the writer can commit: after a failed commit
/// it must read back what landed first, which takes its lock again, and a
/// server whose lock another took when the database restarted stays
/// unready rather than taking orders it can only refuse.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, description = "The database answers and the writer is ready: `{\"status\": \"ready\"}`.", body = Object),
        (status = 503, description = "Not ready: the database does not answer, or the writer has not read back a failed commit (`storage_unavailable`).", body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await?;
    if !state.markets.writer_ready() {
        tracing::warn!("not ready: the writer has not read back its last failed commit");
        return Err(ApiError::Unavailable);
    }
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus's text format.", body = String, content_type = "text/plain")))]
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
