//! Producer and operator endpoints on tasks.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{ListTasks, SubmitBatch, SubmitTask, Task, TaskId, TaskPage};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};

/// `POST /tasks`: `201` with the new task, or `200` with the one its idempotency key names.
pub async fn submit(
    State(state): State<AppState>,
    ApiJson(task): ApiJson<SubmitTask>,
) -> Result<Response, ApiError> {
    let (task, created) = state.engine.submit(task).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/tasks/{}", task.id);
    Ok((status, [(header::LOCATION, location)], Json(task)).into_response())
}

/// `POST /tasks/batch`: all tasks in one commit, in request order.
pub async fn submit_batch(
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<SubmitBatch>,
) -> Result<Response, ApiError> {
    let submitted = state.engine.submit_batch(batch.tasks).await?;
    let status = if submitted.created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(submitted)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TaskId>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.engine.get(id).await?))
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTasks>,
) -> Result<Json<TaskPage>, ApiError> {
    Ok(Json(state.engine.list(query).await?))
}

/// `DELETE /tasks/{id}`: a queued task is cancelled at once; a leased one is marked, and its
/// worker is told at its next heartbeat.
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TaskId>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.engine.cancel(id).await?))
}

pub async fn retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TaskId>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.engine.retry(id).await?))
}
