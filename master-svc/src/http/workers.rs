//! Push workers: self-registration (renewed by re-sending it), listing, removal.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::{RegisterWorker, WorkerInfo, WorkerList};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};

/// `POST /workers`: registers or renews a worker for push dispatch.
pub async fn register(
    State(state): State<AppState>,
    ApiJson(registration): ApiJson<RegisterWorker>,
) -> Result<Json<WorkerInfo>, ApiError> {
    let info = state
        .dispatcher
        .register(registration)
        .map_err(ApiError::InvalidRequest)?;
    Ok(Json(info))
}

pub async fn list(State(state): State<AppState>) -> Json<WorkerList> {
    Json(WorkerList {
        workers: state.dispatcher.list(),
    })
}

pub async fn remove(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.dispatcher.remove(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("worker `{id}` not found")))
    }
}
