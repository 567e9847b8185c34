//! Probes, metrics, and the fallbacks for unknown routes. The probes take no token even when the
//! master runs with one, and `/metrics` none but its own optional `--metrics-token`: their
//! operations declare an empty `security()` (`security: []` in the document), which tools read
//! as "open" rather than "undeclared".

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use common::Probe;
use common::openapi::Unavailable;

use super::AppState;
use super::error::ApiError;
use crate::metrics;

/// Liveness probe
///
/// The process answers. The worker answers it too, on its own port, without asking the master.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "probes",
    security(),
    responses((status = 200, description = "The process answers.", body = Probe,
        example = json!(Probe::OK))))]
pub(super) async fn healthz() -> Json<Probe> {
    Json(Probe::OK)
}

/// Readiness probe
///
/// The master is ready when its store answers; a worker, while it is not draining.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "probes",
    security(),
    responses(
        (status = 200, description = "Ready.", body = Probe, example = json!(Probe::READY)),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Probe>, ApiError> {
    state.engine.ready().await?;
    Ok(Json(Probe::READY))
}

/// Prometheus metrics
///
/// The text exposition format; names start with `leasehold_`. Queue gauges are read from the
/// store at scrape time. Open, unless the master runs with `--metrics-token`: then it takes that
/// bearer token, and no other.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "probes",
    security(),
    responses((status = 200, description = "Prometheus text format.", body = String,
        content_type = "text/plain; version=0.0.4",
        example = json!("# TYPE leasehold_tasks_submitted_total counter\nleasehold_tasks_submitted_total{queue=\"default\"} 5\n"))))]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::set_long_polls(state.engine.waiting());
    metrics::set_push_gauges(&state.dispatcher.list());
    let queues = state
        .engine
        .queues()
        .await
        .inspect_err(|e| tracing::warn!(error = %crate::chain::Chain(e), "queue gauges left out"))
        .ok();
    metrics::before_scrape(queues.as_deref().unwrap_or_default());
    state.metrics.run_upkeep();
    let mut text = state.metrics.render();
    if let Some(queues) = &queues {
        text.push_str(&metrics::queue_gauges(queues));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
