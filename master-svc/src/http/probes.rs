//! Probes, metrics, and the fallbacks for unknown routes.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::metrics;

/// Liveness: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the store answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.engine.ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus text format. Queue gauges are read from the store at scrape time.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.engine.queues().await {
        Ok(queues) => metrics::set_queue_gauges(&queues, state.engine.waiting()),
        Err(e) => tracing::warn!(error = %e, "queue gauges not refreshed"),
    }
    metrics::set_push_gauges(&state.dispatcher.list());
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
