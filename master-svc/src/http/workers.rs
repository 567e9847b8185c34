//! Push workers: self-registration (renewed by re-sending it), listing, removal.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::examples;
use common::openapi::{
    InvalidRequest, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType,
};
use common::{RegisterWorker, WorkerInfo, WorkerList};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};

/// Register a push worker
///
/// Registers or renews a worker for push dispatch: the master leases tasks from its `queues` on
/// its behalf and POSTs them to `{url}/do-task`. A registration lapses unless re-sent within
/// `ttl_secs` (send it every third of that).
#[utoipa::path(
    post, path = "/workers", operation_id = "registerWorker", tag = "workers",
    security(("apiToken" = []), ("workerToken" = [])),
    request_body(content = RegisterWorker, example = json!(examples::register_worker())),
    responses(
        (status = 200, description = "The worker as registered.", body = WorkerInfo,
            links(("removeWorker" = (operation_id = "removeWorker",
                parameters(("id" = "$response.body#/id"))))),
            example = json!(examples::worker_info())),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
    ),
)]
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

/// List push workers
///
/// Static, registered and DNS-discovered workers, with their health and tasks in flight.
#[utoipa::path(
    get, path = "/workers", operation_id = "listWorkers", tag = "workers",
    security(("apiToken" = []), ("workerToken" = [])),
    responses(
        (status = 200, description = "The push workers.", body = WorkerList,
            example = json!(examples::worker_list())),
        (status = 401, response = Unauthorized),
    ),
)]
pub async fn list(State(state): State<AppState>) -> Json<WorkerList> {
    Json(WorkerList {
        workers: state.dispatcher.list(),
    })
}

/// Remove a push worker
///
/// Its feeder stops taking tasks; those in flight finish.
#[utoipa::path(
    delete, path = "/workers/{id}", operation_id = "removeWorker", tag = "workers",
    security(("apiToken" = []), ("workerToken" = [])),
    params(("id" = String, Path, description = "The worker's id.", example = "w02")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = InvalidRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ),
)]
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
