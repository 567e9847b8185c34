//! Worker endpoints: lease, heartbeat, result, release.

use axum::Json;
use axum::extract::State;
use common::{
    Heartbeat, HeartbeatAck, LeaseRequest, LeaseResponse, Release, Task, TaskId, TaskResult,
};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};

pub async fn lease(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    Ok(Json(state.engine.lease(request).await?))
}

pub async fn heartbeat(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TaskId>,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    Ok(Json(state.engine.heartbeat(id, beat).await?))
}

pub async fn result(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TaskId>,
    ApiJson(report): ApiJson<TaskResult>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.engine.report(id, report).await?))
}

pub async fn release(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TaskId>,
    ApiJson(release): ApiJson<Release>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.engine.release(id, release).await?))
}
