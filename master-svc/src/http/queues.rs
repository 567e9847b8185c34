//! Operator endpoints on queues.

use axum::Json;
use axum::extract::State;
use common::{QueueInfo, QueueList};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiPath;

pub async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let queues = state.engine.queues().await?;
    Ok(Json(QueueList { queues }))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.engine.queue(&name).await?))
}

pub async fn seal(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.engine.set_sealed(&name, true).await?))
}

pub async fn unseal(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    Ok(Json(state.engine.set_sealed(&name, false).await?))
}
